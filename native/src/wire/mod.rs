//! Borrowed views of protobuf wire bytes.
//!
//! `inspect`: the receiver's intake check, on the request's bytes with no object tree.

pub mod fields;
pub mod inspect;

#[cfg(feature = "python")]
pub mod python {
    use pyo3::exceptions::PyTypeError;
    use pyo3::prelude::*;
    use pyo3::types::PyBytes;

    /// The items an OTLP export request `kind` ("traces", "logs", "metrics" or the request's
    /// full name) holds (spans, log records, metric data points), when its protobuf bytes
    /// `wire` are certainly what upb parses and no item has an id the receiver rejects;
    /// else -1: the caller then parses with upb and inspects in Python, as before (also for a
    /// `wire` that is not `bytes`, whose buffer could change while the GIL is released).
    /// Runs without the GIL.
    #[pyfunction]
    pub fn inspect(py: Python<'_>, kind: &str, wire: &Bound<'_, PyAny>) -> PyResult<i64> {
        let signal = super::inspect::Signal::of(kind)
            .ok_or_else(|| PyTypeError::new_err(format!("not an OTLP export request: {kind}")))?;
        let Ok(wire) = wire.downcast::<PyBytes>() else {
            return Ok(-1);
        };
        let wire = wire.as_bytes();
        Ok(
            match py.allow_threads(|| super::inspect::inspect(signal, wire)) {
                Some(n) => n as i64,
                None => -1,
            },
        )
    }
}
