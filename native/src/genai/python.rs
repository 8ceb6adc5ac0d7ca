//! `_native.GenAI`: the conventions table compiled for the core (otlp_router/model/genai.py
//! `native_table` builds the spec it is given), and the per-trace JSON document made from it.

use std::collections::HashMap as StdHashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use super::table::{HashMap, HashSet};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::aperture;
use super::document::{resource_attributes, split_traces, trace_document, SpanPart};
use super::prices::{self, Band, Key, Rates};
use super::read::Python as InPython;
use super::table::{role_of, Case, Field, Read, Source, Suppress, Table, TypeRule};
use super::value::{Map, Value};
use super::view::{Attrs, Estimate, Priced};

/// A Python value (from the table: constants, value maps; from the test hooks) as a Value.
fn value_of(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.downcast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = v.downcast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(Value::Int(v.extract::<i128>()?));
    }
    if let Ok(f) = v.downcast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = v.downcast::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_string()));
    }
    if let Ok(d) = v.downcast::<PyDict>() {
        let mut m = Map::new();
        for (k, x) in d.iter() {
            m.insert(k.str()?.to_str()?.to_string(), value_of(&x)?);
        }
        return Ok(Value::Map(m));
    }
    if let Ok(l) = v.downcast::<PyList>() {
        return Ok(Value::List(
            l.iter().map(|x| value_of(&x)).collect::<PyResult<_>>()?,
        ));
    }
    if let Ok(t) = v.downcast::<PyTuple>() {
        return Ok(Value::List(
            t.iter().map(|x| value_of(&x)).collect::<PyResult<_>>()?,
        ));
    }
    Err(PyValueError::new_err(format!("not a table value: {v}")))
}

fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("spec: missing {key}")))
}

fn opt<'py, T: FromPyObject<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>> {
    let v = item(d, key)?;
    if v.is_none() {
        Ok(None)
    } else {
        v.extract().map(Some)
    }
}

fn source_of(
    d: &Bound<'_, PyDict>,
    fields: &mut Vec<Field>,
    names: &mut HashMap<String, usize>,
) -> PyResult<Source> {
    let mut compose = Vec::new();
    for member in item(d, "compose")?.downcast::<PyList>()?.iter() {
        let member = member.downcast::<PyTuple>()?;
        let name: String = member.get_item(0)?.extract()?;
        let mut options = Vec::new();
        for option in member.get_item(1)?.downcast::<PyList>()?.iter() {
            options.push(source_of(option.downcast::<PyDict>()?, fields, names)?);
        }
        compose.push((name, options));
    }
    let field: String = item(d, "field")?.extract()?;
    let index = match names.get(&field) {
        Some(&i) => i,
        None => {
            let role = role_of(&field)
                .ok_or_else(|| PyValueError::new_err(format!("spec: unknown field {field}")))?;
            fields.push(Field {
                merged: field == "metadata" || field == "usage.other",
                dict: field == "model_parameters",
                name: field.clone(),
                role,
            });
            names.insert(field, fields.len() - 1);
            fields.len() - 1
        }
    };
    let read = Read::from_name(&item(d, "read")?.extract::<String>()?);
    let values = item(d, "values")?;
    Ok(Source {
        field: index,
        priority: item(d, "priority")?.extract()?,
        read,
        key: opt(d, "key")?,
        prefix: opt(d, "prefix")?,
        events: item(d, "events")?.extract()?,
        attribute: opt(d, "attribute")?,
        compose,
        require: item(d, "require")?.extract()?,
        merge: item(d, "merge")?.extract()?,
        in_python: read == Read::InPython,
        span_names: item(d, "span_names")?
            .extract::<Vec<String>>()?
            .into_iter()
            .collect(),
        constant: value_of(&item(d, "constant")?)?,
        path: item(d, "path")?.extract()?,
        pick: opt(d, "pick")?,
        values: if values.is_none() {
            None
        } else {
            match value_of(&values)? {
                Value::Map(m) => Some(m),
                _ => return Err(PyValueError::new_err("spec: values is not a mapping")),
            }
        },
        unit: item(d, "unit")?.extract()?,
        exclude: item(d, "exclude")?
            .extract::<Vec<String>>()?
            .into_iter()
            .collect(),
        known: item(d, "known")?.extract()?,
        when: opt(d, "when")?,
        prepend: opt(d, "prepend")?,
        scopes: opt(d, "scopes")?,
        system_instructions: item(d, "system_instructions")?.extract()?,
        fast: item(d, "fast")?.extract()?,
    })
}

fn rule_of(d: &Bound<'_, PyDict>) -> PyResult<TypeRule> {
    let case: String = item(d, "case")?.extract()?;
    Ok(TypeRule {
        key: opt(d, "key")?,
        values: opt::<StdHashMap<String, String>>(d, "values")?.map(|m| m.into_iter().collect()),
        prefixes: item(d, "prefixes")?.extract()?,
        name_prefixes: item(d, "name_prefixes")?.extract()?,
        span_names: opt::<StdHashMap<String, String>>(d, "span_names")?
            .map(|m| m.into_iter().collect()),
        any_of: item(d, "any_of")?.extract()?,
        ty: opt(d, "type")?,
        requires_any: item(d, "requires_any")?.extract()?,
        case: match case.as_str() {
            "lower" => Case::Lower,
            "upper" => Case::Upper,
            _ => Case::Exact,
        },
        scopes: opt(d, "scopes")?,
        resource: opt::<StdHashMap<String, String>>(d, "resource")?
            .map(|m| m.into_iter().collect()),
        version_at_most: opt(d, "scope_version_at_most")?,
    })
}

fn set(d: &Bound<'_, PyDict>, key: &str) -> PyResult<HashSet<String>> {
    Ok(item(d, key)?
        .extract::<Vec<String>>()?
        .into_iter()
        .collect())
}

/// `prices.estimate` asked from the core; an exception is Python's to raise (the trace is Python's).
fn priced(estimate: &Bound<'_, PyAny>, q: &Priced) -> Result<Option<Estimate>, InPython> {
    let count = |n: Option<i128>| n.map(|n| n as i64);
    let got = estimate
        .call1((
            q.model,
            q.provider,
            q.at_unix_nano,
            count(q.input),
            count(q.output),
            count(q.cache_read),
            count(q.cache_write),
            count(q.reasoning),
        ))
        .map_err(|_| InPython)?;
    if got.is_none() {
        return Ok(None);
    }
    let f = |name: &str| -> Result<f64, InPython> {
        got.getattr(name)
            .and_then(|x| x.extract())
            .map_err(|_| InPython)
    };
    let t = |name: &str| -> Result<String, InPython> {
        got.getattr(name)
            .and_then(|x| x.extract())
            .map_err(|_| InPython)
    };
    Ok(Some(Estimate {
        input: f("input")?,
        output: f("output")?,
        total: f("total")?,
        model: t("model")?,
        provider: t("provider")?,
    }))
}

/// Rates kept per model and day, at most (a client names the models: the map is emptied when full).
const MAX_RATES: usize = 4096;

/// The conventions table compiled for the core, with the price table's `estimate` (called for
/// model calls that carry no cost), its name (`prices.source()`) and, optionally, its `rates`
/// (`prices.rates`: then a model's calls are priced in the core from rates asked once a day).
#[pyclass(frozen, module = "otlp_router._native")]
pub struct GenAI {
    table: Table,
    estimate: Py<PyAny>,
    price_source: String,
    rates: Option<Py<PyAny>>,
    known_rates: Mutex<StdHashMap<Key, Option<Arc<Rates>>>>,
}

impl GenAI {
    /// The estimate for `q`: from the rates in the core where it has them, else `estimate`'s.
    fn price(&self, py: Python<'_>, q: &Priced) -> Result<Option<Estimate>, InPython> {
        self.price_after(py, q, &mut None)
    }

    /// A pricer for one call's spans: the last model's rates are kept (the spans of a request
    /// mostly call one model), so most are priced without the lock, a hash and a key's strings.
    fn pricer<'s>(
        &'s self,
        py: Python<'s>,
    ) -> impl FnMut(&Priced) -> Result<Option<Estimate>, InPython> + 's {
        let mut last = None;
        move |q| self.price_after(py, q, &mut last)
    }

    fn price_after(
        &self,
        py: Python<'_>,
        q: &Priced,
        last: &mut Option<(Key, Option<Arc<Rates>>)>,
    ) -> Result<Option<Estimate>, InPython> {
        if let Some(rates_of) = &self.rates {
            let known = match last {
                Some((key, rates)) if key.matches(q) => rates.clone(),
                _ => {
                    let Some(key) = prices::key(q) else {
                        return Ok(None);
                    };
                    let rates = self.rates(rates_of.bind(py), key.clone())?;
                    *last = Some((key, rates.clone()));
                    rates
                }
            };
            match known {
                None => return Ok(None),
                Some(rates) => {
                    if let Some(bands) = &rates.bands {
                        return Ok(prices::estimate(&rates, bands, q));
                    }
                }
            }
        }
        priced(self.estimate.bind(py), q)
    }

    /// `prices.rates` of a key, asked once; an exception is Python's to raise (through estimate).
    fn rates(&self, rates_of: &Bound<'_, PyAny>, key: Key) -> Result<Option<Arc<Rates>>, InPython> {
        if let Some(known) = self.known_rates.lock().expect("rates").get(&key) {
            return Ok(known.clone());
        }
        // Not under the lock: Python may let another thread in, which may price too.
        let got = rates_of
            .call1((key.model.as_str(), key.provider.as_deref(), key.day))
            .map_err(|_| InPython)?;
        let rates = if got.is_none() {
            None
        } else {
            type Got = (String, String, Vec<i128>, Option<Vec<Band>>);
            let (model, provider, starts, bands): Got = got.extract().map_err(|_| InPython)?;
            Some(Arc::new(Rates {
                model,
                provider,
                starts,
                bands,
            }))
        };
        let mut known = self.known_rates.lock().expect("rates");
        if known.len() >= MAX_RATES {
            known.clear();
        }
        known.insert(key, rates.clone());
        Ok(rates)
    }
}

#[pymethods]
impl GenAI {
    #[new]
    #[pyo3(signature = (spec, estimate, price_source, rates=None))]
    fn new(
        spec: &Bound<'_, PyDict>,
        estimate: Py<PyAny>,
        price_source: String,
        rates: Option<Py<PyAny>>,
    ) -> PyResult<GenAI> {
        let mut fields = Vec::new();
        let mut names = HashMap::default();
        let mut sources = Vec::new();
        let mut compose_keys = Vec::new();
        for (rank, s) in item(spec, "sources")?
            .downcast::<PyList>()?
            .iter()
            .enumerate()
        {
            let d = s.downcast::<PyDict>()?;
            sources.push(source_of(d, &mut fields, &mut names)?);
            let keys: Vec<String> = item(d, "compose_keys")?.extract()?;
            if !keys.is_empty() {
                compose_keys.push((rank, keys));
            }
        }
        let mut rules = Vec::new();
        for r in item(spec, "type_rules")?.downcast::<PyList>()?.iter() {
            rules.push(rule_of(r.downcast::<PyDict>()?)?);
        }
        let mut suppress = Vec::new();
        for r in item(spec, "suppress")?.downcast::<PyList>()?.iter() {
            let d = r.downcast::<PyDict>()?;
            let fields: HashSet<String> = set(d, "fields")?;
            suppress.push(Suppress {
                key: item(d, "key")?.extract()?,
                values: set(d, "values")?,
                model: fields.contains("model"),
                usage: fields.contains("usage"),
                cost: fields.contains("cost"),
            });
        }
        let table = Table::new(
            fields,
            sources,
            compose_keys,
            rules,
            set(spec, "type_keys")?,
            suppress,
            item(spec, "estimate_cost")?.extract()?,
            (
                set(spec, "content_keys")?,
                item(spec, "content_prefixes")?.extract()?,
                set(spec, "not_content")?,
            ),
            (
                set(spec, "mapped_keys")?,
                item(spec, "mapped_prefixes")?.extract()?,
            ),
        );
        Ok(GenAI {
            table,
            estimate,
            price_source,
            rates,
            known_rates: Mutex::new(StdHashMap::new()),
        })
    }

    /// The per-trace JSON document of `parts` ((span bytes, resource bytes, scope name, scope
    /// version) each), or None when a span needs what only Python reads (then Python writes it).
    fn trace_document<'py>(
        &self,
        py: Python<'py>,
        trace_id: &[u8],
        parts: Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, String, String)>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let spans: Vec<SpanPart> = parts
            .iter()
            .map(|(span, resource, name, version)| SpanPart {
                span: span.as_bytes(),
                resource: resource.as_bytes(),
                scope_name: name,
                scope_version: version,
            })
            .collect();
        let mut pricer = self.pricer(py);
        match trace_document(
            &self.table,
            trace_id,
            &spans,
            &mut pricer,
            &self.price_source,
        ) {
            Ok(doc) => Ok(Some(PyBytes::new(py, &doc))),
            Err(InPython) => Ok(None),
        }
    }

    /// The estimate the core makes for these counts, as (input, output, total, model,
    /// provider) or None; "python" where Python would be asked to raise.  For the tests.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (model, provider, at_unix_nano, input, output, cache_read=None, cache_write=None, reasoning=None))]
    fn _estimate<'py>(
        &self,
        py: Python<'py>,
        model: Option<&str>,
        provider: Option<&str>,
        at_unix_nano: u64,
        input: Option<i128>,
        output: Option<i128>,
        cache_read: Option<i128>,
        cache_write: Option<i128>,
        reasoning: Option<i128>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = Priced {
            model,
            provider,
            at_unix_nano,
            input,
            output,
            cache_read,
            cache_write,
            reasoning,
        };
        Ok(match self.price(py, &q) {
            Ok(None) => py.None().into_bound(py),
            Ok(Some(e)) => (e.input, e.output, e.total, e.model, e.provider)
                .into_pyobject(py)?
                .into_any(),
            Err(InPython) => PyString::new(py, "python").into_any(),
        })
    }

    /// The Aperture record (CBOR) of a span: its bytes; False when the span is no model call;
    /// None when Python is to make it. The batcher asks `aperture_records` once per request;
    /// this one span at a time is what the differential tests hold against Python's format.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (span, resource, scope_name, scope_version, record_id, privacy, api_key_name))]
    fn aperture_record<'py>(
        &self,
        py: Python<'py>,
        span: &[u8],
        resource: &[u8],
        scope_name: &str,
        scope_version: &str,
        record_id: &Bound<'py, PyAny>,
        privacy: bool,
        api_key_name: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Ok(record_id) = record_id.extract::<i128>() else {
            return Ok(py.None().into_bound(py)); // past what the core writes: Python's (cbor2's bignums)
        };
        let part = SpanPart {
            span,
            resource,
            scope_name,
            scope_version,
        };
        let mut pricer = self.pricer(py);
        Ok(
            match aperture::record(
                &self.table,
                &part,
                record_id,
                privacy,
                api_key_name,
                &mut pricer,
            ) {
                Ok(Some(cbor)) => PyBytes::new(py, &cbor).into_any(),
                Ok(None) => PyBool::new(py, false).to_owned().into_any(),
                Err(InPython) => py.None().into_bound(py),
            },
        )
    }

    /// The Aperture records of a traces request's spans from position `start` on, in one call
    /// (what the batcher asks per request): `(cbor, made, stop)`, see `RecordsOut`. Record ids
    /// go on as the batcher numbers them: each the larger of the previous id + 1 (`last_id`
    /// before the first) and `base` + the record's rank in this call + 1. `stop` is the first
    /// span Python is to make (None: the core made every span it was given). None when Python
    /// is to split the request, or the ids are past what the core writes.
    #[pyo3(signature = (request, start, last_id, base, privacy, api_key_name))]
    #[allow(clippy::too_many_arguments)]
    fn aperture_records<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        start: usize,
        last_id: &Bound<'py, PyAny>,
        base: &Bound<'py, PyAny>,
        privacy: bool,
        api_key_name: Option<&str>,
    ) -> PyResult<Option<RecordsOut<'py>>> {
        let (Ok(mut last), Ok(base)) = (last_id.extract::<i128>(), base.extract::<i128>()) else {
            return Ok(None);
        };
        let Ok(split) = split_traces(request) else {
            return Ok(None);
        };
        // Each Resource read once, when a span of it is first met (None: Python's to read).
        let mut resources: Vec<Option<Option<Rc<Attrs>>>> = vec![None; split.resources.len()];
        let mut pricer = self.pricer(py);
        // records are about twice their spans (a capture holds each body as text and bytes)
        let mut cbor = Vec::with_capacity(request.len() * 2);
        let mut made = Vec::new();
        let mut stop = None;
        for (position, (_, span_id, span, r, name, version)) in
            split.spans.iter().enumerate().skip(start)
        {
            let resource =
                resources[*r].get_or_insert_with(|| resource_attributes(split.resources[*r]).ok());
            let id = (made.len() as i128)
                .checked_add(base)
                .and_then(|n| n.checked_add(1))
                .zip(last.checked_add(1))
                .map(|(ranked, next)| ranked.max(next));
            let (Some(resource), Some(id)) = (resource.as_ref(), id) else {
                stop = Some(position);
                break;
            };
            let part = SpanPart {
                span,
                resource: split.resources[*r],
                scope_name: name,
                scope_version: version,
            };
            let at = cbor.len();
            match aperture::record_into(
                &mut cbor,
                &self.table,
                &part,
                resource,
                id,
                privacy,
                api_key_name,
                &mut pricer,
            ) {
                Ok(true) => {
                    made.push((
                        position,
                        PyBytes::new(py, span_id),
                        cbor.len() - at,
                        py_int(py, id)?,
                    ));
                    last = id;
                }
                Ok(false) => {}
                Err(InPython) => {
                    stop = Some(position);
                    break;
                }
            }
        }
        Ok(Some((PyBytes::new(py, &cbor), made, stop)))
    }
}

type SplitOut<'py> = (Vec<Bound<'py, PyBytes>>, Vec<Bound<'py, PyTuple>>);

/// `n` as a Python int: through an i64 where it fits (pyo3 builds a 128-bit int from two halves
/// with a shift and an or, in Python).
fn py_int(py: Python<'_>, n: i128) -> PyResult<Bound<'_, PyAny>> {
    Ok(match i64::try_from(n) {
        Ok(small) => small.into_pyobject(py)?.into_any(),
        Err(_) => n.into_pyobject(py)?.into_any(),
    })
}

/// `aperture_records`' answer: the records' CBOR one after another, per record `(position,
/// span id, length, record id)`, and the position of the span Python is to make.
type RecordsOut<'py> = (
    Bound<'py, PyBytes>,
    Vec<(usize, Bound<'py, PyBytes>, usize, Bound<'py, PyAny>)>,
    Option<usize>,
);

/// A traces request's spans as the trace assembler keeps them: `(resources, spans)`, the
/// Resource messages' bytes and, per span, `(trace id, span id, span bytes, resource index,
/// scope name, scope version)`; None when Python is to split it (bytes upb would read otherwise
/// than plainly).
#[pyfunction]
pub fn trace_spans<'py>(py: Python<'py>, request: &[u8]) -> PyResult<Option<SplitOut<'py>>> {
    let Ok(split) = split_traces(request) else {
        return Ok(None);
    };
    let resources = split
        .resources
        .iter()
        .map(|r| PyBytes::new(py, r))
        .collect();
    let mut scope: Option<(&str, &str, Bound<'py, PyString>, Bound<'py, PyString>)> = None;
    let mut spans = Vec::with_capacity(split.spans.len());
    for (trace_id, span_id, span, resource, name, version) in &split.spans {
        // the spans of one scope share its strings
        if !matches!(&scope, Some((n, v, _, _)) if n == name && v == version) {
            scope = Some((
                name,
                version,
                PyString::new(py, name),
                PyString::new(py, version),
            ));
        }
        let (_, _, name, version) = scope.as_ref().expect("set above");
        spans.push(PyTuple::new(
            py,
            [
                PyBytes::new(py, trace_id).into_any(),
                PyBytes::new(py, span_id).into_any(),
                PyBytes::new(py, span).into_any(),
                resource.into_pyobject(py)?.into_any(),
                name.clone().into_any(),
                version.clone().into_any(),
            ],
        )?);
    }
    Ok(Some((resources, spans)))
}

/// `cbor2.dumps(value)` as the core writes it (aperture.rs `write_cbor`): a test hook.
#[pyfunction]
#[pyo3(name = "_genai_cbor_of")]
pub fn cbor_of<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    aperture::write_cbor(&value_of(value)?, &mut out);
    Ok(PyBytes::new(py, &out))
}

/// `cbor2.dumps(orjson.loads(text))` as the core writes it, None where orjson.loads raises: a
/// test hook.
#[pyfunction]
#[pyo3(name = "_genai_cbor_of_json")]
pub fn cbor_of_json<'py>(py: Python<'py>, text: &str) -> Option<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    aperture::write_cbor(&super::value::parse_json(text)?, &mut out);
    Some(PyBytes::new(py, &out))
}
