//! The GenAI storage formats in the core: the conventions table compiled (`table`), the value
//! model (`value`), the table's readers (`read`), the canonical view of a span (`view`), the
//! per-trace JSON document (`document`), the Aperture record (`aperture`) and cost estimates
//! from the price table's rates (`prices`).  Each follows its
//! Python counterpart (otlp_router/model/genai.py, destinations/formats/trace_json.py and
//! aperture.py) to the byte; where a span needs what only Python can say, the core answers
//! `Python` and Python makes that document or record.

pub mod aperture;
pub mod document;
pub mod prices;
#[cfg(feature = "python")]
pub mod python;
pub mod read;
pub mod table;
pub mod value;
pub mod view;
