//! The OTLP JSON <-> protobuf transcoder.

pub mod decode;
pub mod encode;
pub mod error;
pub mod parse;
pub mod table;
pub mod tables;
