//! Borrowed views of protobuf wire bytes.
//!
//! `inspect`: the receiver's intake check, on the request's bytes with no object tree;
//! `fields`: field occurrences, attributes and AnyValues read in place, length-delimited fields
//! rewritten; `otlp`: the signals and their field numbers.

pub mod fields;
pub mod inspect;
pub mod otlp;

#[cfg(feature = "python")]
pub mod python {
    use pyo3::exceptions::PyTypeError;
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyString};

    /// A protobuf `string`'s bytes as a Python str; not UTF-8 is damaged bytes.
    pub fn text<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyString>> {
        match std::str::from_utf8(b) {
            Ok(s) => Ok(PyString::new(py, s)),
            Err(_) => Err(PyValueError::new_err(
                "invalid protobuf: a string field is not UTF-8",
            )),
        }
    }

    /// The items an OTLP export request `kind` ("traces", "logs", "metrics" or the request's
    /// full name) holds (spans, log records, metric data points), when its protobuf bytes
    /// `wire` are certainly what upb parses and no item has an id the receiver rejects;
    /// else -1: the caller then parses with upb and inspects in Python, as before (also for a
    /// `wire` that is not `bytes`, whose buffer could change while the GIL is released).
    /// `transcoded`: `wire` is what `json_to_proto` wrote (`inspect_transcoded`). Runs without
    /// the GIL.
    #[pyfunction]
    #[pyo3(signature = (kind, wire, transcoded=false))]
    pub fn inspect(
        py: Python<'_>,
        kind: &str,
        wire: &Bound<'_, PyAny>,
        transcoded: bool,
    ) -> PyResult<i64> {
        let signal = super::inspect::Signal::of(kind)
            .ok_or_else(|| PyTypeError::new_err(format!("not an OTLP export request: {kind}")))?;
        let Ok(wire) = wire.downcast::<PyBytes>() else {
            return Ok(-1);
        };
        let wire = wire.as_bytes();
        let check = if transcoded {
            super::inspect::inspect_transcoded
        } else {
            super::inspect::inspect
        };
        Ok(match py.allow_threads(|| check(signal, wire)) {
            Some(n) => n as i64,
            None => -1,
        })
    }
}
