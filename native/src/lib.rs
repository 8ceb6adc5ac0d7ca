//! otlp-router's native core (issue #17), imported from Python as `otlp_router._native`.
//!
//! First part: the OTLP JSON <-> protobuf transcoder (`json`), pure Rust with no Python
//! objects on its path; the `python` feature adds the PyO3 bindings.  No `unsafe` code here.

pub mod json;

pub use json::decode::{decode as json_to_wire, MAX_NESTING};
pub use json::encode::encode as wire_to_json;
pub use json::error::DecodeError;
pub use json::table::message_index;

#[cfg(feature = "python")]
mod python {
    use pyo3::create_exception;
    use pyo3::exceptions::{PyTypeError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyString};

    use crate::json::error::DecodeError;
    use crate::json::table::message_index;

    create_exception!(_native, JsonDecodeError, PyValueError, "The body is not OTLP JSON for the requested type.");
    create_exception!(_native, JsonSyntaxError, JsonDecodeError, "The body is not JSON (message from orjson).");

    fn message_of(kind: &str) -> PyResult<usize> {
        message_index(kind).ok_or_else(|| PyTypeError::new_err(format!("not an OTLP message type: {kind}")))
    }

    /// OTLP JSON `body` (UTF-8 bytes) of message `kind` ("traces", "logs", "metrics" or an OTLP
    /// message's full name) as protobuf wire bytes.  Raises JsonDecodeError naming the JSON
    /// path and the problem, exactly as the former Python codec did (JsonSyntaxError, with
    /// orjson's message, when the body is not JSON at all).
    #[pyfunction]
    fn json_to_proto<'py>(py: Python<'py>, kind: &str, body: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let root = message_of(kind)?;
        match py.allow_threads(|| crate::json_to_wire(root, body)) {
            Ok(wire) => Ok(PyBytes::new(py, &wire)),
            Err(DecodeError::Syntax(e)) => {
                // the words orjson uses (the former codec's message), asked of orjson itself
                let loads = py.import("orjson")?.getattr("loads")?;
                let message = match loads.call1((PyBytes::new(py, body),)) {
                    Err(err) => format!("invalid JSON: {}", err.value(py).str()?.to_str()?),
                    Ok(_) => format!("invalid JSON: {} at byte {}", e.what, e.at),
                };
                Err(JsonSyntaxError::new_err(message))
            }
            Err(DecodeError::Problem(p)) => {
                let repr = |s: &str| -> String {
                    PyString::new(py, s)
                        .repr()
                        .and_then(|r| r.to_str().map(str::to_owned))
                        .unwrap_or_else(|_| crate::json::error::approx_python_str_repr(s))
                };
                Err(JsonDecodeError::new_err(p.render(&repr)))
            }
        }
    }

    /// Protobuf wire bytes of message `kind` as compact OTLP JSON (UTF-8 bytes).
    #[pyfunction]
    fn proto_to_json<'py>(py: Python<'py>, kind: &str, wire: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let root = message_of(kind)?;
        match py.allow_threads(|| crate::wire_to_json(root, wire)) {
            Ok(json) => Ok(PyBytes::new(py, &json)),
            Err(e) => Err(PyValueError::new_err(format!("invalid protobuf for {kind}: {}", e.0))),
        }
    }

    #[pymodule]
    fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_function(wrap_pyfunction!(json_to_proto, m)?)?;
        m.add_function(wrap_pyfunction!(proto_to_json, m)?)?;
        m.add("JsonDecodeError", m.py().get_type::<JsonDecodeError>())?;
        m.add("JsonSyntaxError", m.py().get_type::<JsonSyntaxError>())?;
        m.add("MAX_NESTING", crate::MAX_NESTING)?;
        Ok(())
    }
}
