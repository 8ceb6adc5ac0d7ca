//! otlp-router's native core (issue #17), imported from Python as `otlp_router._native`.
//!
//! The OTLP JSON <-> protobuf transcoder (`json`), pure Rust with no Python objects on its
//! path, and privacy on the wire (`privacy`), which asks Python only what the type rules make of
//! a span and, rarely, what to salvage from content; the `python` feature adds the PyO3
//! bindings.  Routing (`routing`): match rules, selection and partitioning on the wire.

// SAFETY: nothing to justify: the crate forbids unsafe code, so the compiler checks its absence.
#![forbid(unsafe_code)]

// Only the core's own allocations (Python objects keep Python's allocator); not in the fuzz
// builds, whose sanitizer watches the C library's malloc.
#[cfg(feature = "python")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A map keyed by what clients send (attribute keys, span and trace ids): foldhash, seeded at
/// random per process. The core's unseeded hashers (FNV for the GenAI table, Fx for privacy's
/// rules) serve the config's own keys; keys chosen to collide under them would make each
/// insertion into a map of them scan the others, and a request of thousands such attributes
/// take quadratic time. (SipHash, std's, cost privacy 28% more CPU per span.)
pub type ClientMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub mod compress;
pub mod files;
pub mod genai;
pub mod json;
pub mod privacy;
pub mod routing;
pub mod shaping;
pub mod wire;

pub use json::decode::{decode as json_to_wire, MAX_NESTING};
pub use json::encode::encode as wire_to_json;
pub use json::error::DecodeError;
pub use json::table::message_index;

#[cfg(feature = "python")]
mod python {
    use pyo3::create_exception;
    use pyo3::exceptions::{PyTypeError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
    use std::sync::Mutex;

    use crate::privacy::{
        self, Attr, Caches, ClassifyQuery, Hooks, Kv, RuleSets, Rules, Scalar, Signal,
    };

    use crate::json::error::DecodeError;
    use crate::json::table::message_index;
    use crate::wire::python::text;

    create_exception!(
        _native,
        JsonDecodeError,
        PyValueError,
        "The body is not OTLP JSON for the requested type."
    );
    create_exception!(
        _native,
        JsonSyntaxError,
        JsonDecodeError,
        "The body is not JSON (message from orjson)."
    );

    fn message_of(kind: &str) -> PyResult<usize> {
        message_index(kind)
            .ok_or_else(|| PyTypeError::new_err(format!("not an OTLP message type: {kind}")))
    }

    /// OTLP JSON `body` (UTF-8 bytes) of message `kind` ("traces", "logs", "metrics" or an OTLP
    /// message's full name) as protobuf wire bytes.  Raises JsonDecodeError naming the JSON
    /// path and the problem, exactly as the former Python codec did (JsonSyntaxError, with
    /// orjson's message, when the body is not JSON at all).
    #[pyfunction]
    fn json_to_proto<'py>(
        py: Python<'py>,
        kind: &str,
        body: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
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
    fn proto_to_json<'py>(
        py: Python<'py>,
        kind: &str,
        wire: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let root = message_of(kind)?;
        match py.allow_threads(|| crate::wire_to_json(root, wire)) {
            Ok(json) => Ok(PyBytes::new(py, &json)),
            Err(e) => Err(PyValueError::new_err(format!(
                "invalid protobuf for {kind}: {}",
                e.0
            ))),
        }
    }

    /// Privacy compiled from a conventions table (otlp_router/routing/privacy.py builds one per
    /// table).  `classify(typed, span_name, scope_name, scope_version, rule_resource) -> bool`
    /// answers whether a span is a model call; `salvage(dropped, present, scope_name) ->
    /// list[bytes]` gives the serialised KeyValues to append for the dropped salvage keys
    /// (`dropped`: (key, AnyValue bytes) pairs; `present`: every key of the span);
    /// `value_of(AnyValue bytes)` reads an array or kvlist value.
    #[pyclass(frozen, module = "otlp_router._native")]
    struct Privacy {
        rules: Rules,
        caches: Mutex<Caches>,
        classify: Py<PyAny>,
        salvage: Py<PyAny>,
        value_of: Py<PyAny>,
    }

    struct PyHooks<'py, 'h> {
        py: Python<'py>,
        classify: &'h Bound<'py, PyAny>,
        salvage: &'h Bound<'py, PyAny>,
        value_of: &'h Bound<'py, PyAny>,
    }

    impl<'py> PyHooks<'py, '_> {
        /// `value_of(kv.value)`: scalars here, arrays and kvlists (and anything odd) by Python.
        fn value(&self, kv: &Kv) -> PyResult<Bound<'py, PyAny>> {
            let py = self.py;
            let wire = kv.value_wire();
            let scalar = privacy::scalar(&wire)
                .map_err(|e| PyValueError::new_err(format!("invalid protobuf: {}", e.0)))?;
            Ok(match scalar {
                Some(Scalar::None) => py.None().into_bound(py),
                Some(Scalar::Str(s)) if std::str::from_utf8(s).is_ok() => text(py, s)?.into_any(),
                Some(Scalar::Bool(b)) => b.into_pyobject(py)?.to_owned().into_any(),
                Some(Scalar::Int(i)) => i.into_pyobject(py)?.into_any(),
                Some(Scalar::Double(x)) => x.into_pyobject(py)?.into_any(),
                Some(Scalar::Bytes(b)) => PyBytes::new(py, b).into_any(),
                Some(Scalar::Strindex(i)) => i.into_pyobject(py)?.into_any(),
                _ => self.value_of.call1((PyBytes::new(py, &wire),))?,
            })
        }
    }

    impl<'py> Hooks for PyHooks<'py, '_> {
        type Error = PyErr;

        fn classify(&mut self, q: &ClassifyQuery) -> PyResult<bool> {
            let py = self.py;
            let typed = PyDict::new(py);
            for kv in q.resource_typed.iter().chain(q.span_typed) {
                typed.set_item(text(py, kv.key)?, self.value(kv)?)?;
            }
            let rule = PyDict::new(py);
            for kv in q.resource_rule {
                rule.set_item(text(py, kv.key)?, self.value(kv)?)?;
            }
            let args = (
                typed,
                text(py, q.name)?,
                text(py, q.scope_name)?,
                text(py, q.scope_version)?,
                rule,
            );
            self.classify.call1(args)?.is_truthy()
        }

        fn salvage(&mut self, attrs: &[Attr], scope_name: &[u8]) -> PyResult<Vec<Vec<u8>>> {
            let py = self.py;
            let dropped = PyList::empty(py);
            let present = PyList::empty(py);
            for a in attrs {
                let key = text(py, a.kv.key)?;
                if a.drop && a.decision.salvage() {
                    dropped.append(PyTuple::new(
                        py,
                        [
                            key.clone().into_any(),
                            PyBytes::new(py, &a.kv.value_wire()).into_any(),
                        ],
                    )?)?;
                }
                present.append(key)?;
            }
            let got = self
                .salvage
                .call1((dropped, present, text(py, scope_name)?))?;
            let mut out = Vec::new();
            for item in got.try_iter()? {
                out.push(item?.downcast::<PyBytes>()?.as_bytes().to_vec());
            }
            Ok(out)
        }
    }

    #[pymethods]
    impl Privacy {
        #[new]
        #[pyo3(signature = (*, content_keys, content_prefixes, not_content, content_events, keep_keys,
                            keep_prefixes, type_keys, resource_keys, salvage_keys, classify, salvage, value_of))]
        #[allow(clippy::too_many_arguments)]
        fn new(
            content_keys: Vec<String>,
            content_prefixes: Vec<String>,
            not_content: Vec<String>,
            content_events: Vec<String>,
            keep_keys: Vec<String>,
            keep_prefixes: Vec<String>,
            type_keys: Vec<String>,
            resource_keys: Vec<String>,
            salvage_keys: Vec<String>,
            classify: Py<PyAny>,
            salvage: Py<PyAny>,
            value_of: Py<PyAny>,
        ) -> Self {
            let rules = Rules::new(&RuleSets {
                content_keys: &content_keys,
                content_prefixes: &content_prefixes,
                not_content: &not_content,
                content_events: &content_events,
                keep_keys: &keep_keys,
                keep_prefixes: &keep_prefixes,
                type_keys: &type_keys,
                resource_keys: &resource_keys,
                salvage_keys: &salvage_keys,
            });
            Privacy {
                rules,
                caches: Mutex::new(Caches::default()),
                classify,
                salvage,
                value_of,
            }
        }

        /// The export request `wire` of `signal` ("traces", "logs", "metrics") without its
        /// content: `(new bytes, how many attributes, events and bodies were removed)`, or
        /// None when nothing was (the bytes stand).
        fn strip<'py>(
            &self,
            py: Python<'py>,
            signal: &str,
            wire: &[u8],
        ) -> PyResult<Option<(Bound<'py, PyBytes>, u64)>> {
            let signal = Signal::from_name(signal)
                .ok_or_else(|| PyTypeError::new_err(format!("not a signal: {signal}")))?;
            let mut hooks = PyHooks {
                py,
                classify: self.classify.bind(py),
                salvage: self.salvage.bind(py),
                value_of: self.value_of.bind(py),
            };
            // The hooks run Python, which may let another thread in to strip with this table:
            // that one works with caches of its own rather than wait (with the GIL) for these.
            let mut own = None;
            let mut guard = self.caches.try_lock().ok();
            let caches = match guard.as_deref_mut() {
                Some(c) => c,
                None => own.insert(Caches::default()),
            };
            match privacy::strip(&self.rules, caches, signal, wire, &mut hooks) {
                Ok(None) => Ok(None),
                Ok(Some((out, removed))) => Ok(Some((PyBytes::new(py, &out), removed))),
                Err(privacy::Error::Hook(e)) => Err(e),
                Err(privacy::Error::Wire(e)) => Err(PyValueError::new_err(format!(
                    "invalid protobuf for {}: {e}",
                    match signal {
                        Signal::Traces => "traces",
                        Signal::Logs => "logs",
                        Signal::Metrics => "metrics",
                    }
                ))),
            }
        }

        /// (content, kept on a model call, typed) of `key`: `Table.decide`, for the tests.
        fn decide(&self, key: &str) -> (bool, bool, bool) {
            let d = self.rules.decide(key.as_bytes());
            (d.content(), d.kept(), d.typed())
        }
    }

    #[pymodule]
    fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_class::<Privacy>()?;
        m.add_class::<crate::genai::python::GenAI>()?;
        m.add_function(wrap_pyfunction!(crate::genai::python::trace_spans, m)?)?;
        m.add_function(wrap_pyfunction!(crate::genai::python::cbor_of, m)?)?;
        m.add_function(wrap_pyfunction!(crate::genai::python::cbor_of_json, m)?)?;
        m.add_class::<crate::shaping::python::Redaction>()?;
        m.add_class::<crate::shaping::python::Actions>()?;
        m.add_function(wrap_pyfunction!(crate::compress::python::gzip, m)?)?;
        m.add_function(wrap_pyfunction!(crate::compress::python::crc32, m)?)?;
        m.add_function(wrap_pyfunction!(crate::files::python::resolve_under, m)?)?;
        m.add_function(wrap_pyfunction!(json_to_proto, m)?)?;
        m.add_function(wrap_pyfunction!(proto_to_json, m)?)?;
        m.add_function(wrap_pyfunction!(crate::wire::python::inspect, m)?)?;
        m.add_function(wrap_pyfunction!(crate::shaping::python::sample, m)?)?;
        m.add_class::<crate::routing::python::Routes>()?;
        m.add_function(wrap_pyfunction!(crate::routing::python::select, m)?)?;
        m.add_function(wrap_pyfunction!(crate::routing::python::item_keys, m)?)?;
        m.add_function(wrap_pyfunction!(crate::routing::python::regex_problem, m)?)?;
        crate::genai::value::python::register(m)?;
        m.add("JsonDecodeError", m.py().get_type::<JsonDecodeError>())?;
        m.add("JsonSyntaxError", m.py().get_type::<JsonSyntaxError>())?;
        m.add("MAX_NESTING", crate::MAX_NESTING)?;
        Ok(())
    }
}
