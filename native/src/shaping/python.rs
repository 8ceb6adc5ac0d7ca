//! The PyO3 bindings of shaping (registered in lib.rs).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::sync::Mutex;

use crate::privacy::Error;
use crate::wire::otlp::Signal;
use crate::wire::python::text;

use super::redaction::{self, Redact};
use super::sampling::{self, Decide, Session};

struct PyDecide<'py, 'h> {
    py: Python<'py>,
    decide: &'h Bound<'py, PyAny>,
}

impl Decide for PyDecide<'_, '_> {
    type Error = PyErr;
    fn decide(
        &mut self,
        sessions: &[Session],
        traces: &[&[u8]],
        lone: &[&[u8]],
    ) -> PyResult<(Vec<bool>, Vec<bool>)> {
        let py = self.py;
        let bytes = |b: &[u8]| PyBytes::new(py, b);
        let sessions = PyList::new(
            py,
            sessions
                .iter()
                .map(|(t, v)| PyTuple::new(py, [bytes(t), bytes(v)]))
                .collect::<PyResult<Vec<_>>>()?,
        )?;
        let traces = PyList::new(py, traces.iter().map(|t| bytes(t)))?;
        let lone = PyList::new(py, lone.iter().map(|b| bytes(b)))?;
        self.decide.call1((sessions, traces, lone))?.extract()
    }
}

/// Deterministic sampling of the export request `wire` of `signal` ("traces" or "logs"):
/// `decide(sessions, traces, lone) -> (keep per trace, keep per lone item)` is asked once, with
/// every item's first `session.id` attribute as (trace id, AnyValue bytes) when `by_session`,
/// the distinct trace ids and the bytes of the items without one.  (new bytes, items removed),
/// or None when every item is kept.
#[pyfunction]
pub fn sample<'py>(
    py: Python<'py>,
    signal: &str,
    wire: &[u8],
    by_session: bool,
    decide: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyBytes>, u64)>> {
    let kind = Signal::from_name(signal)
        .ok_or_else(|| PyTypeError::new_err(format!("not a signal: {signal}")))?;
    match sampling::sample(kind, wire, by_session, &mut PyDecide { py, decide }) {
        Ok(None) => Ok(None),
        Ok(Some((out, removed))) => Ok(Some((PyBytes::new(py, &out), removed))),
        Err(Error::Hook(e)) => Err(e),
        Err(Error::Wire(e)) => Err(PyValueError::new_err(format!(
            "invalid protobuf for {signal}: {e}"
        ))),
    }
}

/// Redaction compiled from a destination's config (otlp_router/routing/redaction.py builds one
/// per config): `masks` the configured mask kinds ("email", "card", "bearer", "api_key",
/// "pattern"), `keys` whether blocked keys or an allow-list are set; `drop(key) -> bool` decides
/// a key (asked once per key), `mask(text) -> str` masks a string that may hold a secret.
#[pyclass(frozen, module = "otlp_router._native")]
pub struct Redaction {
    rules: redaction::Rules,
    cache: Mutex<redaction::Cache>,
    drop: Py<PyAny>,
    mask: Py<PyAny>,
}

struct PyRedact<'py, 'h> {
    py: Python<'py>,
    drop: &'h Bound<'py, PyAny>,
    mask: &'h Bound<'py, PyAny>,
}

impl Redact for PyRedact<'_, '_> {
    type Error = PyErr;
    fn drop(&mut self, key: &[u8]) -> PyResult<bool> {
        self.drop.call1((text(self.py, key)?,))?.extract()
    }
    fn mask(&mut self, b: &[u8]) -> PyResult<Option<Vec<u8>>> {
        let original = text(self.py, b)?;
        let masked = self.mask.call1((&original,))?;
        let masked = masked.downcast::<PyString>()?;
        if masked.as_any().eq(&original)? {
            return Ok(None);
        }
        Ok(Some(masked.to_str()?.as_bytes().to_vec()))
    }
}

#[pymethods]
impl Redaction {
    #[new]
    #[pyo3(signature = (*, masks, keys, drop, mask))]
    fn new(masks: Vec<String>, keys: bool, drop: Py<PyAny>, mask: Py<PyAny>) -> PyResult<Self> {
        let mut m = redaction::Masks::default();
        for kind in &masks {
            match kind.as_str() {
                "email" => m.email = true,
                "card" => m.card = true,
                "bearer" => m.bearer = true,
                "api_key" => m.api_key = true,
                "pattern" => m.pattern = true,
                other => return Err(PyValueError::new_err(format!("not a mask: {other}"))),
            }
        }
        Ok(Redaction {
            rules: redaction::Rules { masks: m, keys },
            cache: Mutex::new(redaction::Cache::default()),
            drop,
            mask,
        })
    }

    /// The export request `wire` of `signal` redacted; None when nothing changed.
    fn redact<'py>(
        &self,
        py: Python<'py>,
        signal: &str,
        wire: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let kind = Signal::from_name(signal)
            .ok_or_else(|| PyTypeError::new_err(format!("not a signal: {signal}")))?;
        let mut hooks = PyRedact {
            py,
            drop: self.drop.bind(py),
            mask: self.mask.bind(py),
        };
        // The hooks run Python, which may let another thread in: that one works with a cache
        // of its own rather than wait (with the GIL) for this one.
        let mut own = None;
        let mut guard = self.cache.try_lock().ok();
        let cache = match guard.as_deref_mut() {
            Some(c) => c,
            None => own.insert(redaction::Cache::default()),
        };
        match redaction::redact(&self.rules, cache, kind, wire, &mut hooks) {
            Ok(None) => Ok(None),
            Ok(Some(out)) => Ok(Some(PyBytes::new(py, &out))),
            Err(Error::Hook(e)) => Err(e),
            Err(Error::Wire(e)) => Err(PyValueError::new_err(format!(
                "invalid protobuf for {signal}: {e}"
            ))),
        }
    }
}
