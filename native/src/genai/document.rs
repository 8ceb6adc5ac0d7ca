//! The per-trace JSON document (trace_json.py's `trace_document` + `encode_document`) from the
//! spans' protobuf bytes: the canonical view of each span, its observation, the trace's fields.

use std::collections::hash_map::Entry;
use std::collections::BTreeSet;
use std::rc::Rc;

use super::read::{self, Python};
use super::table::{HashMap, HashSet, Table};
use super::value::{self, Map, Value};
use super::view::{self, Attrs, Event, Pricer, SpanInfo, View};
use crate::wire::fields::{parse_kv, Fields};

/// One span as the assembler keeps it.
pub struct SpanPart<'a> {
    pub span: &'a [u8],
    pub resource: &'a [u8],
    pub scope_name: &'a str,
    pub scope_version: &'a str,
}

/// A span's fields as the document reads them (upb's reading of its bytes).
#[derive(Default)]
pub struct Span<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: &'a str,
    pub start: u64,
    pub end: u64,
    pub attributes: Vec<&'a [u8]>,
    pub events: Vec<Event>,
    pub status_code: i64,
    pub status_message: &'a str,
}

fn utf8(b: &[u8]) -> Result<&str, Python> {
    std::str::from_utf8(b).map_err(|_| Python)
}

fn fixed64(d: &[u8]) -> Result<u64, Python> {
    Ok(u64::from_le_bytes(d.try_into().map_err(|_| Python)?))
}

fn varint(d: &[u8]) -> Result<u64, Python> {
    let mut i = 0;
    crate::json::encode::read_varint(d, &mut i).map_err(|_| Python)
}

/// Reads a Span message.  Anything upb would merge or treat otherwise than plainly (a field
/// repeated that is not, a wrong wire type) is Python's.
pub fn parse_span(b: &[u8]) -> Result<Span<'_>, Python> {
    let mut s = Span::default();
    let mut seen = 0u32;
    for f in Fields::new(b) {
        let f = f.map_err(|_| Python)?;
        let once = |seen: &mut u32, n: u64| {
            let bit = 1u32 << n;
            let again = *seen & bit != 0;
            *seen |= bit;
            if again {
                Err(Python)
            } else {
                Ok(())
            }
        };
        match (f.number, f.wire) {
            (1, 2) => {
                once(&mut seen, 1)?;
                s.trace_id = f.data
            }
            (2, 2) => {
                once(&mut seen, 2)?;
                s.span_id = f.data
            }
            (4, 2) => {
                once(&mut seen, 4)?;
                s.parent_span_id = f.data
            }
            (5, 2) => {
                once(&mut seen, 5)?;
                s.name = utf8(f.data)?
            }
            (7, 1) => {
                once(&mut seen, 7)?;
                s.start = fixed64(f.data)?
            }
            (8, 1) => {
                once(&mut seen, 8)?;
                s.end = fixed64(f.data)?
            }
            (9, 2) => s.attributes.push(f.data),
            (11, 2) => s.events.push(event_of(f.data)?),
            (15, 2) => {
                once(&mut seen, 15)?;
                for g in Fields::new(f.data) {
                    let g = g.map_err(|_| Python)?;
                    match (g.number, g.wire) {
                        (2, 2) => s.status_message = utf8(g.data)?,
                        (3, 0) => s.status_code = varint(g.data)? as i32 as i64,
                        (2 | 3, _) => return Err(Python),
                        _ => {}
                    }
                }
            }
            (3, 2) | (6, 0) | (10, 0) | (12, 0) | (13, 2) | (14, 0) | (16, 5) => {}
            (1..=16, _) => return Err(Python),
            _ => {}
        }
    }
    Ok(s)
}

/// A span event: its name and its attributes as listed (repeats kept: one reader takes the first).
fn event_of(b: &[u8]) -> Result<Event, Python> {
    let mut name = None;
    let mut kvs = Vec::new();
    for f in Fields::new(b) {
        let f = f.map_err(|_| Python)?;
        match (f.number, f.wire) {
            (2, 2) if name.is_none() => name = Some(utf8(f.data)?.to_string()),
            (3, 2) => {
                let kv = parse_kv(f.data).map_err(|_| Python)?;
                let v = value::from_any_value(&kv.value_wire()).map_err(|_| Python)?;
                kvs.push((utf8(kv.key)?.to_string(), v));
            }
            (1, 1) | (4, 0) => {}
            (1..=4, _) => return Err(Python),
            _ => {}
        }
    }
    Ok(Event {
        name: name.unwrap_or_default(),
        kvs,
    })
}

/// `attributes_of`: KeyValues as a dict (the last of repeated keys wins, at the first place),
/// added to `out` as the span's own.
pub fn attributes_of<'a>(kvs: &[&'a [u8]], mut out: Attrs<'a>) -> Result<Attrs<'a>, Python> {
    out.reserve(kvs.len());
    for body in kvs {
        let kv = parse_kv(body).map_err(|_| Python)?;
        let key = utf8(kv.key)?;
        let v = value::from_any_value(&kv.value_wire()).map_err(|_| Python)?;
        out.insert_own(key, v);
    }
    Ok(out)
}

/// A span's attributes (its resource's first, its own over them) and its view (`view::view`'s
/// `model_calls_only`).
pub fn span_view<'a>(
    table: &Table,
    span: &Span<'a>,
    part: &SpanPart,
    resource: &Rc<Attrs<'a>>,
    pricer: &mut Pricer,
    model_calls_only: bool,
) -> Result<(Attrs<'a>, View), Python> {
    let attrs = attributes_of(&span.attributes, Attrs::over(resource))?;
    let info = SpanInfo {
        name: span.name,
        scope_name: part.scope_name,
        scope_version: part.scope_version,
        status_code: span.status_code,
        status_message: span.status_message,
        start_unix_nano: span.start,
        events: &span.events,
    };
    let v = view::view(
        table,
        &attrs,
        &info,
        Some(&**resource),
        pricer,
        model_calls_only,
    )?;
    Ok((attrs, v))
}

/// A Resource message's attributes, for its spans to share.
pub fn resource_attributes(b: &[u8]) -> Result<Rc<Attrs<'_>>, Python> {
    let mut kvs = Vec::new();
    for f in Fields::new(b) {
        let f = f.map_err(|_| Python)?;
        match (f.number, f.wire) {
            (1, 2) => kvs.push(f.data),
            (1, _) => return Err(Python),
            _ => {}
        }
    }
    let mut attrs = attributes_of(&kvs, Attrs::default())?;
    attrs.disown();
    Ok(Rc::new(attrs))
}

pub(crate) fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

const LANGFUSE_SDK_SCOPE: &str = "langfuse-sdk";

/// An observation's metadata: the span's custom metadata, then where it came from (Langfuse's
/// reserved keys win over custom ones of the same name) and what priced it.
fn observation_metadata(
    table: &Table,
    part: &SpanPart,
    v: &View,
    attrs: &Attrs,
    resource: &Value,
    price_source: &str,
) -> Result<Map, Python> {
    let Value::Map(metadata) = &v.metadata else {
        return Err(Python);
    };
    let mut metadata = metadata.clone();
    if !part.scope_name.starts_with(LANGFUSE_SDK_SCOPE) {
        // The span's own keys are distinct already: pushed, not inserted (a linear search each,
        // quadratic for a span of thousands of attributes).
        let mut shown = Map::new();
        for (k, x) in attrs.own() {
            if table.key_info(k).shown {
                shown
                    .0
                    .push((k.to_string(), Value::Str(value::stringified(x))));
            }
        }
        metadata.insert("attributes".into(), Value::Map(shown));
    }
    metadata.insert("resourceAttributes".into(), resource.clone());
    metadata.insert(
        "scope".into(),
        Value::Map(Map(vec![
            ("name".into(), s(part.scope_name)),
            ("version".into(), s(part.scope_version)),
        ])),
    );
    if let Some(e) = &v.estimate {
        metadata.insert(
            "costEstimate".into(),
            Value::Map(Map(vec![
                ("source".into(), s(price_source)),
                ("model".into(), s(&e.model)),
                ("provider".into(), s(&e.provider)),
            ])),
        );
    }
    Ok(metadata)
}

/// `,"name":` (no comma before the first member).
fn member(out: &mut Vec<u8>, name: &str) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    crate::json::encode::push_json_string(out, text);
}

fn write_hex(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(hex(b).as_bytes());
    out.push(b'"');
}

/// The observation of a span (`_observation`), written as JSON.
fn write_observation(out: &mut Vec<u8>, span: &Span, v: View, metadata: Map) {
    out.push(b'{');
    member(out, "id");
    write_hex(out, span.span_id);
    member(out, "traceId");
    write_hex(out, span.trace_id);
    member(out, "parentObservationId");
    if span.parent_span_id.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        write_hex(out, span.parent_span_id);
    }
    member(out, "type");
    write_str(out, &v.ty);
    member(out, "name");
    if v.name.truthy() {
        value::write_json(&v.name, out);
    } else {
        write_str(out, span.name);
    }
    member(out, "startTime");
    write_str(out, &read::rfc3339(span.start));
    member(out, "endTime");
    if span.end != 0 {
        write_str(out, &read::rfc3339(span.end));
    } else {
        out.extend_from_slice(b"null");
    }
    member(out, "completionStartTime");
    match &v.completion_start_time {
        Some(t) => write_str(out, t),
        None => out.extend_from_slice(b"null"),
    }
    for (name, x) in [
        ("model", &v.model),
        ("modelParameters", &v.model_parameters),
        ("input", &v.input),
        ("output", &v.output),
    ] {
        member(out, name);
        value::write_json(x, out);
    }
    member(out, "usageDetails");
    match &v.usage_details {
        Some(m) => value::write_json(&Value::Map(m.clone()), out),
        None => out.extend_from_slice(b"{}"),
    }
    member(out, "costDetails");
    value::write_json(&Value::Map(v.cost_details), out);
    member(out, "metadata");
    value::write_json(&Value::Map(metadata), out);
    member(out, "environment");
    value::write_json(&v.environment, out);
    member(out, "level");
    write_str(out, &v.level);
    member(out, "statusMessage");
    match &v.status_message {
        Some(m) if !m.is_empty() => write_str(out, m),
        _ => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

fn first<'a>(values: impl IntoIterator<Item = &'a Value>) -> Value {
    values
        .into_iter()
        .find(|v| !matches!(v, Value::Null))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The document of one trace's spans (any order, repeats allowed), as JSON bytes.
pub fn trace_document(
    table: &Table,
    trace_id: &[u8],
    parts: &[SpanPart],
    pricer: &mut Pricer,
    price_source: &str,
) -> Result<Vec<u8>, Python> {
    // a span delivered twice is one observation: the last copy, at the first one's place
    let mut spans: Vec<(Span, &SpanPart)> = Vec::with_capacity(parts.len());
    let mut at: crate::ClientMap<&[u8], usize> = crate::ClientMap::default();
    for part in parts {
        let span = parse_span(part.span)?;
        match at.get(span.span_id) {
            Some(&i) => spans[i] = (span, part),
            None => {
                at.insert(span.span_id, spans.len());
                spans.push((span, part));
            }
        }
    }
    spans.sort_by(|a, b| (a.0.start, a.0.span_id).cmp(&(b.0.start, b.0.span_id)));
    let ids: HashSet<&[u8]> = spans.iter().map(|(s, _)| s.span_id).collect();

    let mut resources: HashMap<*const u8, (Rc<Attrs>, Value)> = HashMap::default();
    let mut views: Vec<View> = Vec::with_capacity(spans.len());
    let mut span_attrs: Vec<Attrs> = Vec::with_capacity(spans.len());
    for (span, part) in &spans {
        let resource = match resources.entry(part.resource.as_ptr()) {
            Entry::Occupied(e) => &e.into_mut().0,
            Entry::Vacant(e) => {
                let attrs = resource_attributes(part.resource)?;
                let shown = Value::Map(Map(attrs
                    .iter()
                    .map(|(k, x)| (k.to_string(), Value::Str(value::stringified(x))))
                    .collect()));
                &e.insert((attrs, shown)).0
            }
        };
        let (attrs, v) = span_view(table, span, part, resource, pricer, false)?;
        views.push(v);
        span_attrs.push(attrs);
    }

    let root = spans
        .iter()
        .position(|(s, _)| s.parent_span_id.is_empty() || !ids.contains(s.parent_span_id))
        .unwrap_or(0);
    let priority: Vec<usize> = if views.is_empty() {
        vec![]
    } else {
        std::iter::once(root)
            .chain(0..root)
            .chain(root + 1..views.len())
            .collect()
    };
    let by_priority: Vec<&View> = priority.iter().map(|&i| &views[i]).collect();

    let mut metadata = Map::new();
    for v in by_priority.iter().rev() {
        let Value::Map(m) = &v.metadata else {
            return Err(Python);
        };
        for (k, x) in m.iter() {
            metadata.insert(k.clone(), x.clone());
        }
    }
    let generations: Vec<&View> = views.iter().filter(|v| v.ty == "GENERATION").collect();
    let mut input = first(by_priority.iter().map(|v| &v.trace_input));
    if matches!(input, Value::Null) {
        input = first(
            by_priority
                .iter()
                .take(1)
                .chain(generations.iter())
                .map(|v| &v.input),
        );
    }
    let mut output = first(by_priority.iter().map(|v| &v.trace_output));
    if matches!(output, Value::Null) {
        output = first(
            by_priority
                .iter()
                .take(1)
                .chain(generations.iter().rev())
                .map(|v| &v.output),
        );
    }
    let mut name = first(by_priority.iter().map(|v| &v.trace_name));
    if matches!(name, Value::Null) && !views.is_empty() {
        // the root observation's name, unless empty
        let root_name = if views[root].name.truthy() {
            views[root].name.clone()
        } else {
            s(spans[root].0.name)
        };
        if root_name.truthy() {
            name = root_name;
        }
    }
    let default = s("default");
    let environment = by_priority
        .iter()
        .map(|v| &v.environment)
        .find(|e| **e != default)
        .cloned()
        .unwrap_or(default);
    let user_id = first(by_priority.iter().map(|v| &v.user_id));
    let session_id = first(by_priority.iter().map(|v| &v.session_id));
    let mut tags = BTreeSet::new();
    for v in &views {
        let Value::List(items) = &v.tags else {
            return Err(Python);
        };
        for t in items {
            let Value::Str(t) = t else { return Err(Python) };
            tags.insert(t.clone());
        }
    }
    let any = !views.is_empty();

    if any {
        let part = spans[root].1;
        let root_metadata = observation_metadata(
            table,
            part,
            &views[root],
            &span_attrs[root],
            &resources[&part.resource.as_ptr()].1,
            price_source,
        )?;
        for key in ["attributes", "resourceAttributes", "scope"] {
            if let Some(x) = root_metadata.get(key) {
                metadata.insert(key.into(), x.clone());
            }
        }
    }
    let mut out =
        Vec::with_capacity(parts.iter().map(|p| p.span.len()).sum::<usize>() * 5 / 4 + 1024);
    out.push(b'{');
    member(&mut out, "id");
    write_hex(&mut out, trace_id);
    member(&mut out, "name");
    value::write_json(&name, &mut out);
    member(&mut out, "timestamp");
    match spans.first() {
        Some((span, _)) => write_str(&mut out, &read::rfc3339(span.start)),
        None => out.extend_from_slice(b"null"),
    }
    member(&mut out, "environment");
    value::write_json(if any { &environment } else { &Value::Null }, &mut out);
    member(&mut out, "userId");
    value::write_json(&user_id, &mut out);
    member(&mut out, "sessionId");
    value::write_json(&session_id, &mut out);
    member(&mut out, "metadata");
    value::write_json(&Value::Map(metadata), &mut out);
    member(&mut out, "tags");
    value::write_json(
        &Value::List(tags.into_iter().map(Value::Str).collect()),
        &mut out,
    );
    member(&mut out, "input");
    value::write_json(&input, &mut out);
    member(&mut out, "output");
    value::write_json(&output, &mut out);
    member(&mut out, "observations");
    out.push(b'[');
    for (i, ((v, attrs), (span, part))) in
        views.into_iter().zip(&span_attrs).zip(&spans).enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        let resource_shown = &resources[&part.resource.as_ptr()].1;
        let metadata = observation_metadata(table, part, &v, attrs, resource_shown, price_source)?;
        write_observation(&mut out, span, v, metadata);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// A traces request's spans as the trace assembler keeps them: each span's bytes with its trace
/// id, the index of its resource (the Resource message's bytes, in `resources`) and its scope's
/// name and version.  `Err(Python)` where upb would read the bytes otherwise than plainly (a
/// singular field given twice, a wrong wire type): Python splits that request.
/// (trace id, span id, span bytes, resource index, scope name, scope version)
pub type SplitSpan<'a> = (&'a [u8], &'a [u8], &'a [u8], usize, &'a str, &'a str);

pub struct Split<'a> {
    pub resources: Vec<&'a [u8]>,
    pub spans: Vec<SplitSpan<'a>>,
}

fn singular<'a>(slot: &mut Option<&'a [u8]>, data: &'a [u8]) -> Result<(), Python> {
    if slot.replace(data).is_some() {
        return Err(Python);
    }
    Ok(())
}

pub fn split_traces(request: &[u8]) -> Result<Split<'_>, Python> {
    let mut out = Split {
        resources: Vec::new(),
        spans: Vec::new(),
    };
    for f in Fields::new(request) {
        let f = f.map_err(|_| Python)?;
        match (f.number, f.wire) {
            (1, 2) => split_resource_spans(f.data, &mut out)?,
            (1, _) => return Err(Python),
            _ => {}
        }
    }
    Ok(out)
}

fn split_resource_spans<'a>(b: &'a [u8], out: &mut Split<'a>) -> Result<(), Python> {
    let mut resource = None;
    let mut scopes = Vec::new();
    for f in Fields::new(b) {
        let f = f.map_err(|_| Python)?;
        match (f.number, f.wire) {
            (1, 2) => singular(&mut resource, f.data)?,
            (2, 2) => scopes.push(f.data),
            (1 | 2, _) => return Err(Python),
            _ => {}
        }
    }
    let index = out.resources.len();
    out.resources.push(resource.unwrap_or(b""));
    for scope_spans in scopes {
        let mut scope = None;
        let mut spans = Vec::new();
        for f in Fields::new(scope_spans) {
            let f = f.map_err(|_| Python)?;
            match (f.number, f.wire) {
                (1, 2) => singular(&mut scope, f.data)?,
                (2, 2) => spans.push(f.data),
                (1 | 2, _) => return Err(Python),
                _ => {}
            }
        }
        let (mut name, mut version) = (None, None);
        for f in Fields::new(scope.unwrap_or(b"")) {
            let f = f.map_err(|_| Python)?;
            match (f.number, f.wire) {
                (1, 2) => singular(&mut name, f.data)?,
                (2, 2) => singular(&mut version, f.data)?,
                (1 | 2, _) => return Err(Python),
                _ => {}
            }
        }
        let (name, version) = (utf8(name.unwrap_or(b""))?, utf8(version.unwrap_or(b""))?);
        for span in spans {
            let (mut trace_id, mut span_id) = (None, None);
            for f in Fields::new(span) {
                let f = f.map_err(|_| Python)?;
                match (f.number, f.wire) {
                    (1, 2) => singular(&mut trace_id, f.data)?,
                    (2, 2) => singular(&mut span_id, f.data)?,
                    (1 | 2, _) => return Err(Python),
                    _ => {}
                }
            }
            out.spans.push((
                trace_id.unwrap_or(b""),
                span_id.unwrap_or(b""),
                span,
                index,
                name,
                version,
            ));
        }
    }
    Ok(())
}
