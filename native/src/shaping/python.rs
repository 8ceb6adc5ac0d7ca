//! The PyO3 bindings of shaping (registered in lib.rs).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::privacy::Error;
use crate::wire::otlp::Signal;

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
