//! Shaping on the wire (issue #17): what a destination does to the items it takes, on the
//! protobuf bytes of an export request, with the same result byte for byte as the former Python
//! transforms on upb messages (for the canonical bytes upb writes).
//!
//! `sampling`: whole traces (or sessions) kept or dropped, items without a trace decided alone;
//! `redaction`: attributes dropped by key, secrets masked inside strings; `actions`: the
//! attribute actions.

pub mod actions;
pub mod redaction;
pub mod sampling;

#[cfg(feature = "python")]
pub mod python;
