//! The PyO3 bindings of shaping (registered in lib.rs).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::sync::Mutex;

use crate::privacy::Error;
use crate::wire::otlp::Signal;
use crate::wire::python::text;

use super::actions;
use super::redaction::{self, Redact};
use super::sampling::{self, Decide, Session};

/// `f` with the config's cache. The hooks run Python, which may let another thread in: that one
/// works with a cache of its own rather than wait (with the GIL) for this one.
fn with_cache<C: Default, R>(cache: &Mutex<C>, f: impl FnOnce(&mut C) -> R) -> R {
    let mut own = None;
    let mut guard = cache.try_lock().ok();
    f(match guard.as_deref_mut() {
        Some(c) => c,
        None => own.insert(C::default()),
    })
}

/// A transform's new bytes (None: unchanged) as Python's, damaged bytes a ValueError.
fn new_bytes<'py>(
    py: Python<'py>,
    signal: &str,
    got: Result<Option<Vec<u8>>, Error<PyErr>>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    match got {
        Ok(out) => Ok(out.map(|out| PyBytes::new(py, &out))),
        Err(Error::Hook(e)) => Err(e),
        Err(Error::Wire(e)) => Err(PyValueError::new_err(format!(
            "invalid protobuf for {signal}: {e}"
        ))),
    }
}

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
        let got = with_cache(&self.cache, |cache| {
            redaction::redact(&self.rules, cache, kind, wire, &mut hooks)
        });
        new_bytes(py, signal, got)
    }
}

/// Attribute actions compiled from a destination's list (otlp_router/routing/actions.py builds
/// one per list): each action a tuple (name, key, value AnyValue bytes or None, from_attribute
/// or None, to or None; a delete by pattern has no key); `deletes(index, key) -> bool` is
/// action `index`'s delete pattern, `hash(index, AnyValue bytes) -> str` its digest.
#[pyclass(frozen, module = "otlp_router._native")]
pub struct Actions {
    actions: Vec<actions::Action>,
    cache: Mutex<actions::Cache>,
    deletes: Py<PyAny>,
    hash: Py<PyAny>,
}

struct PyActionHooks<'py, 'h> {
    py: Python<'py>,
    deletes: &'h Bound<'py, PyAny>,
    hash: &'h Bound<'py, PyAny>,
}

impl actions::Hooks for PyActionHooks<'_, '_> {
    type Error = PyErr;
    fn deletes(&mut self, index: usize, key: &[u8]) -> PyResult<bool> {
        self.deletes.call1((index, text(self.py, key)?))?.extract()
    }
    fn hash(&mut self, index: usize, value: &[u8]) -> PyResult<Vec<u8>> {
        let digest = self.hash.call1((index, PyBytes::new(self.py, value)))?;
        Ok(digest.downcast::<PyString>()?.to_str()?.as_bytes().to_vec())
    }
}

type ActionSpec = (
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
);

#[pymethods]
impl Actions {
    #[new]
    #[pyo3(signature = (*, actions, deletes, hash))]
    fn new(actions: Vec<ActionSpec>, deletes: Py<PyAny>, hash: Py<PyAny>) -> PyResult<Self> {
        use actions::{Action, Source};
        let mut out = Vec::with_capacity(actions.len());
        for (name, key, value, from, to) in actions {
            let key = key.map(String::into_bytes);
            let need = |k: Option<Vec<u8>>| k.ok_or_else(|| PyValueError::new_err("no key"));
            let source = || match (&value, &from) {
                (Some(v), _) => Ok(Source::Value(v.clone())),
                (None, Some(f)) => Ok(Source::From(f.as_bytes().to_vec())),
                _ => Err(PyValueError::new_err("no value")),
            };
            out.push(match name.as_str() {
                "insert" => Action::Insert(need(key)?, source()?),
                "update" => Action::Update(need(key)?, source()?),
                "upsert" => Action::Upsert(need(key)?, source()?),
                "rename" => Action::Rename(need(key)?, need(to.map(String::into_bytes))?),
                "delete" => match key {
                    Some(k) => Action::Delete(k),
                    None => Action::DeleteMatching,
                },
                "hash" => Action::Hash(need(key)?),
                other => return Err(PyValueError::new_err(format!("not an action: {other}"))),
            });
        }
        Ok(Actions {
            actions: out,
            cache: Mutex::new(actions::Cache::default()),
            deletes,
            hash,
        })
    }

    /// The export request `wire` of `signal` with the actions applied; None when nothing
    /// changed.  `applies`: None (every action applies to every item), or one byte per item and
    /// action (item-major, request order), non-zero where the action applies.
    #[pyo3(signature = (signal, wire, applies=None))]
    fn apply<'py>(
        &self,
        py: Python<'py>,
        signal: &str,
        wire: &[u8],
        applies: Option<&[u8]>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let kind = Signal::from_name(signal)
            .ok_or_else(|| PyTypeError::new_err(format!("not a signal: {signal}")))?;
        let width = self.actions.len();
        let applies = |item: usize, action: usize| match applies {
            None => true,
            Some(flags) => flags.get(item * width + action).is_some_and(|&f| f != 0),
        };
        let mut hooks = PyActionHooks {
            py,
            deletes: self.deletes.bind(py),
            hash: self.hash.bind(py),
        };
        let got = with_cache(&self.cache, |cache| {
            actions::apply(&self.actions, cache, kind, wire, &applies, &mut hooks)
        });
        new_bytes(py, signal, got)
    }
}
