//! The canonical GenAI view of one span (genai.py's `_view`), from the conventions table: the
//! same candidates, priorities, readers and usage / cost rules, so the per-trace JSON built on
//! it is byte for byte what Python writes.  `Err(Python)` where the span needs what only Python
//! reads (read.rs).

use std::borrow::Cow;
use std::rc::Rc;

use super::read::{self, Python, INT64_MAX};
use super::table::{scope_ok, Case, Direct, Read, Role, Source, Special, Table, TypeRule};
use super::value::{self, Map, Value};
use crate::ClientMap;

/// The most attributes `Attrs` searches one by one before it keeps an index of them.
const SCANNED: usize = 16;

/// A span's attributes: its resource's first, its own over them, as `{**resource, **own}`. The
/// resource's are shared by its spans (`over`), not copied into each: a typical SDK resource has
/// a dozen, which cost a fifth of a record's time copied per span. The keys are borrowed from
/// the request: a span's dozen keys are not allocated, copied and freed again per span.
#[derive(Default)]
pub struct Attrs<'a> {
    base: Option<Rc<Attrs<'a>>>,
    /// the span's own attributes (a resource's when `owned` is false), in their first order,
    /// with the last value of each
    map: Vec<(&'a str, Value)>,
    /// where each key of `map` is, once it holds more than `SCANNED` (a short list is searched
    /// faster than its keys are hashed into an index)
    index: ClientMap<&'a str, usize>,
    owned: bool,
}

impl<'a> Attrs<'a> {
    /// A span's attributes over its resource's (none of its own yet).
    pub fn over(resource: &Rc<Attrs<'a>>) -> Attrs<'a> {
        debug_assert!(resource.base.is_none(), "a resource has no base of its own");
        Attrs {
            base: Some(resource.clone()),
            owned: true,
            ..Attrs::default()
        }
    }
    /// A resource's attributes, read with `insert_own`: none of them is a span's own.
    pub fn disown(&mut self) {
        self.owned = false;
    }
    /// Room for `n` more attributes.
    pub fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }
    /// Inserts one of the span's own attributes (a repeated key keeps its place, takes the value).
    pub fn insert_own(&mut self, key: &'a str, v: Value) {
        if let Some(i) = self.position(key) {
            self.map[i].1 = v;
            return;
        }
        let at = self.map.len();
        if at == SCANNED {
            self.index = self
                .map
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (*k, i))
                .collect();
        }
        if at >= SCANNED {
            self.index.insert(key, at);
        }
        self.map.push((key, v));
    }
    fn position(&self, key: &str) -> Option<usize> {
        if self.map.len() > SCANNED {
            self.index.get(key).copied()
        } else {
            self.map.iter().position(|(k, _)| *k == key)
        }
    }
    /// The span's own attributes, as a dict of them would list them.
    pub fn own(&self) -> impl Iterator<Item = (&'a str, &Value)> {
        let own: &[(&'a str, Value)] = if self.owned { &self.map } else { &[] };
        own.iter().map(|(k, v)| (*k, v))
    }
    /// All of them in the merged dict's order: the resource's keys where they are (with the
    /// span's value over one), then the span's other keys.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &Value)> {
        let base = self.base.as_deref();
        let under = base
            .into_iter()
            .flat_map(|b| b.map.iter())
            .map(|(k, v)| (*k, self.own_value(k).unwrap_or(v)));
        let rest = self
            .map
            .iter()
            .filter(move |(k, _)| !base.is_some_and(|b| b.contains(k)))
            .map(|(k, v)| (*k, v));
        under.chain(rest)
    }
    fn own_value(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.map[i].1)
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.own_value(key)
            .or_else(|| self.base.as_deref().and_then(|b| b.get(key)))
    }
    pub fn contains(&self, key: &str) -> bool {
        self.position(key).is_some() || self.base.as_deref().is_some_and(|b| b.contains(key))
    }
}

pub struct Estimate {
    pub input: f64,
    pub output: f64,
    pub total: f64,
    pub model: String,
    pub provider: String,
}

/// What the price table is asked (prices.estimate's arguments).
pub struct Priced<'a> {
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub at_unix_nano: u64,
    pub input: Option<i128>,
    pub output: Option<i128>,
    pub cache_read: Option<i128>,
    pub cache_write: Option<i128>,
    pub reasoning: Option<i128>,
}

pub type Pricer<'p> = dyn FnMut(&Priced) -> Result<Option<Estimate>, Python> + 'p;

/// The span as the view reads it.
pub struct SpanInfo<'a> {
    pub name: &'a str,
    pub scope_name: &'a str,
    pub scope_version: &'a str,
    pub status_code: i64,
    pub status_message: &'a str,
    pub start_unix_nano: u64,
    pub events: &'a [Event],
}

/// A span event as the view reads it.
pub struct Event {
    pub name: String,
    /// its attributes as listed
    pub kvs: Vec<(String, Value)>,
}

impl Event {
    /// `_event_attributes`: as a dict (the last of repeated keys wins, at the first place)
    fn attributes(&self) -> Map {
        let mut m = Map::new();
        for (k, v) in &self.kvs {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

pub struct View {
    pub ty: String,
    pub operation: Value,
    pub model: Value,
    pub provider: Value,
    /// input, output, total, cache reads, reasoning, cache creation: as reported
    pub counts: [Option<i128>; 6],
    pub cost: Option<f64>,
    pub cost_details: Map,
    pub model_parameters: Value,
    pub input: Value,
    pub output: Value,
    pub user_id: Value,
    pub session_id: Value,
    pub trace_name: Value,
    pub tags: Value,
    pub metadata: Value,
    pub is_genai: bool,
    pub usage_details: Option<Map>,
    pub name: Value,
    pub trace_input: Value,
    pub trace_output: Value,
    pub environment: Value,
    pub level: String,
    pub status_message: Option<String>,
    pub completion_start_time: Option<String>,
    pub estimate: Option<Estimate>,
}

const STATUS_CODE_ERROR: i64 = 2;
const OPERATION_NAMES: [&str; 9] = [
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "execute_tool",
    "invoke_agent",
    "create_agent",
    "retrieval",
    "invoke_workflow",
];

fn is_model_call(ty: &str) -> bool {
    ty == "GENERATION" || ty == "EMBEDDING"
}

enum Raw<'a> {
    Value(&'a Value),
    Family(Map),
    Events(Vec<&'a Event>),
}

impl Raw<'_> {
    fn value(&self) -> Result<Cow<'_, Value>, Python> {
        Ok(match self {
            Raw::Value(v) => Cow::Borrowed(*v),
            Raw::Family(m) => Cow::Owned(Value::Map(m.clone())),
            Raw::Events(_) => return Err(Python),
        })
    }
}

struct Ctx<'a> {
    attributes: &'a Attrs<'a>,
    parsed: ClientMap<String, Option<Value>>,
}

impl Ctx<'_> {
    /// The attribute `key` with JSON strings parsed, once per span (path sources share it).
    fn json(&mut self, key: &str) -> Option<Value> {
        let attributes = self.attributes;
        self.parsed
            .entry(key.to_string())
            .or_insert_with(|| attributes.get(key).and_then(read::content))
            .clone()
    }
}

fn as_text(v: &Value) -> Result<Option<&str>, Python> {
    match v {
        Value::Str(s) => Ok(Some(s.as_str())),
        Value::Null => Ok(None),
        _ => Err(Python),
    }
}

/// A candidate for `field`: `order` lists fields as first met, `candidates` holds (the field's
/// place in `order`, rank, raw) in the order met (one list for all fields, not one per field).
fn add<'a>(
    order: &mut Vec<usize>,
    candidates: &mut Vec<(usize, usize, Raw<'a>)>,
    field: usize,
    rank: usize,
    raw: Raw<'a>,
) {
    let at = match order.iter().position(|&f| f == field) {
        Some(at) => at,
        None => {
            order.push(field);
            order.len() - 1
        }
    };
    candidates.push((at, rank, raw));
}

fn some(v: Option<Value>) -> Option<Value> {
    v.filter(|v| !matches!(v, Value::Null))
}

/// One plain reader of a value (`_PLAIN_READERS`, and `_operation`).
fn read_value(source: &Source, v: &Value) -> read::Got {
    Ok(some(match source.read {
        Read::Text => read::text(v),
        Read::JsString => read::js_string(v).map(Value::Str),
        Read::Operation => {
            let lower = match v {
                Value::Str(s) => s.to_lowercase(),
                _ => return Ok(None),
            };
            if lower.is_empty() {
                return Ok(None);
            }
            match &source.values {
                Some(values) => values.get(&lower).cloned(),
                None => Some(Value::Str(lower)),
            }
        }
        Read::Count => read::count(v)?.map(Value::Int),
        Read::PositiveCount => read::count(v)?.filter(|&n| n != 0).map(Value::Int),
        Read::Usd => read::usd(v)?.map(Value::Float),
        Read::Content => read::content(v),
        Read::ContentNonempty => read::content(v).filter(|x| read::meaningful(Some(x))),
        Read::Mapping => read::mapping(v).map(Value::Map),
        Read::Params => read::params(v),
        Read::Tags => read::tags(v),
        Read::Level => read::level(v),
        Read::Time => read::iso_time(v)?,
        Read::Offset => read::offset(v)?.map(Value::Float),
        Read::Environment => read::environment(v),
        Read::UsageDetails => read::usage_details(v)?,
        Read::CostDetails => read::cost_details(v)?,
        Read::ToolList => tool_list(v),
        Read::LogfireInput | Read::LogfireOutput => {
            logfire_events(v, source.read == Read::LogfireOutput)
        }
        Read::Flat
        | Read::FlatParams
        | Read::Paths
        | Read::UsageOther
        | Read::OpenInferenceTools => return Ok(None),
        Read::EventMessages | Read::EventChoices | Read::EventAttributes | Read::InPython => {
            return Err(Python)
        }
    }))
}

/// A prefix family's reader (`_flat`, `_flat_params`, `_paths`, `_usage_other`).
fn read_family(source: &Source, flat: &Map) -> read::Got {
    let kept = || {
        flat.iter()
            .filter(|(k, _)| !k.is_empty() && !source.exclude.contains(k.as_str()))
    };
    Ok(match source.read {
        Read::Flat => {
            let mut out = Map::new();
            for (k, v) in kept() {
                out.insert(k.clone(), read::content(v).unwrap_or(Value::Null));
            }
            (!out.is_empty()).then_some(Value::Map(out))
        }
        Read::FlatParams => {
            let mut out = Map::new();
            for (k, v) in kept() {
                out.insert(k.clone(), read::param(v));
            }
            (!out.is_empty()).then_some(Value::Map(out))
        }
        Read::UsageOther => {
            let mut out = Map::new();
            for (k, v) in kept() {
                if let Some(n) = read::count(v)? {
                    let name = k.strip_prefix("details.").unwrap_or(k);
                    out.insert(name.to_string(), Value::Int(n));
                }
            }
            (!out.is_empty()).then_some(Value::Map(out))
        }
        Read::Paths => paths(source, flat),
        Read::OpenInferenceTools => openinference_tools(source, flat)?,
        _ => read_value(source, &Value::Map(flat.clone()))?,
    })
}

/// `_tool_list`: tool definitions, a list (or one object), the AI SDK's one JSON string each.
fn tool_list(v: &Value) -> Option<Value> {
    let parsed = match read::content(v)? {
        Value::Map(m) => vec![Value::Map(m)],
        Value::List(l) => l,
        _ => return None,
    };
    let tools: Vec<Value> = parsed
        .into_iter()
        .filter_map(|t| match t {
            Value::Str(_) => read::content(&t),
            other => Some(other),
        })
        .filter(|t| matches!(t, Value::Map(_)))
        .collect();
    (!tools.is_empty()).then_some(Value::List(tools))
}

/// `_openinference_tools`: each llm.tools.N.tool.json_schema, parsed.
fn openinference_tools(source: &Source, flat: &Map) -> Result<Option<Value>, Python> {
    let Some(Value::List(tools)) = paths(source, flat) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for tool in &tools {
        let schema = match tool {
            Value::Map(m) => match m.get("tool") {
                None => None,
                Some(Value::Map(t)) => t.get("json_schema"),
                Some(_) => return Err(Python), // `.get` of a non-dict: Python's error
            },
            _ => None,
        };
        match schema {
            Some(Value::Map(_)) => out.push(schema.cloned().unwrap_or(Value::Null)),
            Some(other) => {
                if let Some(parsed) = read::content(other) {
                    out.push(parsed);
                }
            }
            None => {}
        }
    }
    Ok((!out.is_empty()).then_some(Value::List(out)))
}

/// `_logfire_events`: Logfire's event list, the choice (output) or everything else (input).
fn logfire_events(v: &Value, choice: bool) -> Option<Value> {
    let Value::List(events) = read::content(v)? else {
        return None;
    };
    let is_choice = |e: &Value| matches!(e, Value::Map(m) if m.get("event.name") == Some(&Value::Str("gen_ai.choice".into())));
    if choice {
        return events.into_iter().find(is_choice);
    }
    let inputs: Vec<Value> = events.into_iter().filter(|e| !is_choice(e)).collect();
    (!inputs.is_empty()).then_some(Value::List(inputs))
}

fn strip_suffix_once<'s>(s: &'s str, suffix: &str) -> &'s str {
    s.strip_suffix(suffix).unwrap_or(s)
}

/// The readers of span events (`_event_messages`, `_event_choices`, `_event_whole`, `_event_attribute`).
fn read_events(source: &Source, events: &[&Event]) -> read::Got {
    let content_of = |v: &Value| read::content(v).unwrap_or(Value::Null);
    Ok(match source.read {
        Read::EventMessages => {
            let mut messages = Vec::new();
            for event in events {
                let role = strip_suffix_once(
                    event.name.strip_prefix("gen_ai.").unwrap_or(&event.name),
                    ".message",
                );
                let mut message = Map(vec![("role".into(), Value::Str(role.to_string()))]);
                for (k, v) in event.attributes().0 {
                    if k != "gen_ai.system" {
                        message.insert(k, content_of(&v));
                    }
                }
                messages.push(Value::Map(message));
            }
            (!messages.is_empty()).then_some(Value::List(messages))
        }
        Read::EventChoices => {
            let mut choices: Vec<Value> = events
                .iter()
                .map(|e| {
                    Value::Map(Map(e
                        .attributes()
                        .0
                        .into_iter()
                        .filter(|(k, _)| k != "gen_ai.system")
                        .map(|(k, v)| {
                            let c = content_of(&v);
                            (k, c)
                        })
                        .collect()))
                })
                .collect();
            match choices.len() {
                0 => None,
                1 => choices.pop(),
                _ => Some(Value::List(choices)),
            }
        }
        Read::EventAttributes => {
            let Some(first) = events.first() else {
                return Ok(None);
            };
            let attributes = first.attributes();
            if let Some(v) = source.attribute.as_deref().and_then(|a| attributes.get(a)) {
                return Ok(some(read::content(v)));
            }
            let all = Map(attributes
                .0
                .into_iter()
                .map(|(k, v)| {
                    let c = content_of(&v);
                    (k, c)
                })
                .collect());
            (!all.is_empty()).then_some(Value::Map(all))
        }
        Read::Content => {
            let Some(attribute) = &source.attribute else {
                return Ok(None);
            };
            for event in events {
                for (k, v) in &event.kvs {
                    if k == attribute {
                        if let Some(mut value) = read::content(v) {
                            if source.system_instructions {
                                let instructions = event
                                    .kvs
                                    .iter()
                                    .find(|(k, _)| k == "gen_ai.system_instructions")
                                    .and_then(|(_, v)| read::content(v));
                                value = prepend_instructions(value, instructions.as_ref())?;
                            }
                            return Ok(some(Some(value)));
                        }
                    }
                }
            }
            None
        }
        _ => return Err(Python),
    })
}

/// `_compose`: a mapping built from several keys (members absent: null), JSON objects merged over it.
fn compose(source: &Source, ctx: &mut Ctx) -> read::Got {
    let attributes = ctx.attributes;
    if !source.require.iter().all(|k| attributes.contains(k)) {
        return Ok(None);
    }
    let mut out = Map::new();
    for (member, options) in &source.compose {
        let mut value = Value::Null;
        for option in options {
            let Some(key) = &option.key else {
                value = option.constant.clone();
                break;
            };
            if let Some(raw) = attributes.get(key) {
                let got = read_source(option, &Raw::Value(raw), ctx)?;
                let found = got.is_some();
                value = got.unwrap_or(Value::Null);
                if found || option.path.is_empty() {
                    break;
                }
            }
        }
        out.insert(member.clone(), value);
    }
    for key in &source.merge {
        if let Some(Value::Map(extra)) = attributes.get(key).and_then(read::params) {
            for (k, v) in extra.0 {
                out.insert(k, v);
            }
        }
    }
    Ok(Some(Value::Map(out)))
}

const MAX_PATH: usize = 12;

fn is_index(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

fn paths(source: &Source, flat: &Map) -> Option<Value> {
    let mut root = Map::new();
    for (path, v) in flat.iter() {
        if source.exclude.contains(path.as_str()) {
            continue;
        }
        let parts: Vec<&str> = path.splitn(MAX_PATH + 1, '.').collect();
        if parts.len() > MAX_PATH {
            continue;
        }
        let mut node = &mut root;
        for part in &parts[..parts.len() - 1] {
            if !matches!(node.get(part), Some(Value::Map(_))) {
                node.insert(part.to_string(), Value::Map(Map::new()));
            }
            let Some(Value::Map(child)) = node.get_mut(part) else {
                unreachable!()
            };
            node = child;
        }
        let last = parts[parts.len() - 1];
        if !matches!(node.get(last), Some(Value::Map(_))) {
            node.insert(last.to_string(), value::plain(v.clone(), 0));
        }
    }
    if root.is_empty() {
        return None;
    }
    if root.iter().any(|(k, _)| is_index(k)) {
        root = Map(root.0.into_iter().filter(|(k, _)| is_index(k)).collect());
    }
    let result = listed(Value::Map(root));
    match &result {
        Value::List(l) if l.is_empty() => None,
        Value::Map(m) if m.is_empty() => None,
        _ => Some(result),
    }
}

/// Dicts keyed by indexes become lists ordered by index.
fn listed(node: Value) -> Value {
    match node {
        Value::Map(m) => {
            if !m.is_empty() && m.iter().all(|(k, _)| is_index(k)) {
                let mut items: Vec<(String, Value)> = m.0;
                items.sort_by(|(a, _), (b, _)| {
                    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
                    (a.len(), a).cmp(&(b.len(), b))
                });
                Value::List(items.into_iter().map(|(_, v)| listed(v)).collect())
            } else {
                Value::Map(Map(m.0.into_iter().map(|(k, v)| (k, listed(v))).collect()))
            }
        }
        other => other,
    }
}

/// `_read`: one source's value, or None when it is unusable here.
fn read_source(source: &Source, raw: &Raw, ctx: &mut Ctx) -> read::Got {
    if source.in_python {
        return Err(Python);
    }
    if let Some((key, want)) = &source.when {
        if read::text_str(ctx.attributes.get(key)).as_deref() != Some(want.as_str()) {
            return Ok(None);
        }
    }
    if !source.compose.is_empty() {
        return compose(source, ctx);
    }
    if let Raw::Events(events) = raw {
        return read_events(source, events);
    }
    let mut picked: Option<Value> = None;
    if !source.path.is_empty() {
        let mut v = match &source.key {
            Some(key) => ctx.json(key),
            None => Some(raw.value()?.into_owned()),
        };
        for step in &source.path {
            v = match v {
                Some(Value::Map(m)) => m.get(step).cloned(),
                _ => return Ok(None),
            };
        }
        match v {
            None | Some(Value::Null) => return Ok(None),
            Some(x) => picked = Some(x),
        }
    }
    let got = match (&picked, raw) {
        (Some(v), _) => {
            if source.prefix.is_some() {
                match v {
                    Value::Map(m) => read_family(source, m)?,
                    _ => return Err(Python),
                }
            } else {
                read_value(source, v)?
            }
        }
        (None, Raw::Family(flat)) => read_family(source, flat)?,
        (None, Raw::Value(v)) => read_value(source, v)?,
        (None, Raw::Events(_)) => return Err(Python),
    };
    let Some(mut v) = got else { return Ok(None) };
    if let Some(pick) = &source.pick {
        if let Value::Map(m) = &v {
            if let Some(inner) = m.get(pick) {
                v = read::content(inner).unwrap_or(Value::Null);
            }
        }
    }
    if source.read != Read::Operation {
        if let Some(values) = &source.values {
            v = match &v {
                Value::Str(s) => values.get(s).cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            };
        }
    }
    if let Some((key, sep)) = &source.prepend {
        if let Value::Str(s) = &v {
            if let Some(head) = read::text_str(ctx.attributes.get(key)) {
                v = Value::Str(format!("{head}{sep}{s}"));
            }
        }
    }
    if source.unit != 1.0 {
        if let Value::Float(f) = v {
            v = Value::Float(f * source.unit);
        }
    }
    if source.system_instructions {
        if let Some(instructions) = ctx.attributes.get("gen_ai.system_instructions") {
            let instructions = read::content(instructions);
            v = prepend_instructions(v, instructions.as_ref())?;
        }
    }
    Ok(some(Some(v)))
}

/// System instructions as a first {role: system, content} message of a message list without one.
fn prepend_instructions(input: Value, instructions: Option<&Value>) -> Result<Value, Python> {
    let (Some(instructions), Value::List(messages)) = (instructions, &input) else {
        return Ok(input);
    };
    if matches!(instructions, Value::Null) {
        return Ok(input);
    }
    if messages
        .iter()
        .any(|m| matches!(m, Value::Map(x) if x.get("role") == Some(&Value::Str("system".into()))))
    {
        return Ok(input);
    }
    let content = match instructions {
        Value::List(parts) => {
            let mut texts = Vec::new();
            for p in parts {
                let part_content = match p {
                    Value::Map(m) => m.get("content").filter(|c| c.truthy()),
                    _ => None,
                };
                texts.push(match (part_content, p) {
                    (Some(c), _) => match c {
                        Value::Str(s) => s.clone(),
                        Value::Int(n) => n.to_string(),
                        _ => return Err(Python), // str() of a container or float: Python's
                    },
                    (None, Value::Str(s)) => s.clone(),
                    (None, other) => read::json_text(other),
                });
            }
            texts.join("\n")
        }
        Value::Str(s) => s.clone(),
        other => read::json_text(other),
    };
    let mut system = Map::new();
    system.insert("role".into(), Value::Str("system".into()));
    system.insert("content".into(), Value::Str(content));
    let mut out = vec![Value::Map(system)];
    if let Value::List(messages) = input {
        out.extend(messages);
    }
    Ok(Value::List(out))
}

/// A field's candidates: (rank, raw).
type Bucket<'a> = [(usize, Raw<'a>)];

/// `_best`: the best-ranked candidate that reads as a usable value (merged fields: all).
fn best(
    table: &Table,
    field: usize,
    bucket: &mut Bucket,
    ctx: &mut Ctx,
    scope_name: &str,
) -> Result<(Option<Value>, Option<usize>), Python> {
    bucket.sort_by_key(|c| c.0);
    let info = &table.fields[field];
    if info.merged {
        let mut out = Map::new();
        let mut first = None;
        for (rank, raw) in bucket.iter().rev() {
            let source = &table.sources[*rank];
            if !scope_ok(&source.scopes, scope_name) {
                continue;
            }
            if let Some(Value::Map(m)) = read_source(source, raw, ctx)? {
                for (k, v) in m.0 {
                    out.insert(k, v);
                }
                first = Some(*rank);
            }
        }
        return Ok(if out.is_empty() {
            (None, first)
        } else {
            (Some(Value::Map(out)), first)
        });
    }
    for i in 0..bucket.len() {
        let rank = bucket[i].0;
        let source = &table.sources[rank];
        if source.scopes.is_some() && !scope_ok(&source.scopes, scope_name) {
            continue;
        }
        let Some(v) = read_source(source, &bucket[i].1, ctx)? else {
            continue;
        };
        if info.dict {
            if let Value::Map(m) = v {
                let mut merged = m;
                for (other_rank, other_raw) in &bucket[i + 1..] {
                    let other = &table.sources[*other_rank];
                    if other.priority != source.priority {
                        break;
                    }
                    if scope_ok(&other.scopes, scope_name) {
                        if let Some(Value::Map(extra)) = read_source(other, other_raw, ctx)? {
                            let mut next = extra;
                            for (k, x) in merged.0 {
                                next.insert(k, x);
                            }
                            merged = next;
                        }
                    }
                }
                return Ok((Some(Value::Map(merged)), Some(rank)));
            }
            return Ok((Some(v), Some(rank)));
        }
        return Ok((Some(v), Some(rank)));
    }
    Ok((None, None))
}

// --- type -------------------------------------------------------------------------------------

/// `classify`: the table's type rules in order; SPAN when none yields one.
pub fn classify(
    table: &Table,
    attrs: &Attrs,
    span: &SpanInfo,
    resource: Option<&Attrs>,
) -> Result<String, Python> {
    for rule in &table.type_rules {
        if let Some(key) = &rule.key {
            if !attrs.contains(key) {
                continue;
            }
        } else {
            let any = rule.needs_any();
            if !any.is_empty() && !any.iter().any(|k| attrs.contains(k)) {
                continue;
            }
        }
        if let Some(ty) = apply_rule(rule, attrs, span, resource)? {
            return Ok(ty);
        }
    }
    Ok("SPAN".into())
}

fn apply_rule(
    rule: &TypeRule,
    attrs: &Attrs,
    span: &SpanInfo,
    resource: Option<&Attrs>,
) -> Result<Option<String>, Python> {
    if rule.scopes.is_some() && !scope_ok(&rule.scopes, span.scope_name) {
        return Ok(None);
    }
    let value = match &rule.key {
        Some(key) => {
            let v = attrs.get(key);
            if !read::meaningful(v) {
                return Ok(None);
            }
            v
        }
        None => None,
    };
    let got: Option<String> = if !rule.any_of.is_empty() {
        if !rule.any_of.iter().any(|k| read::meaningful(attrs.get(k))) {
            return Ok(None);
        }
        rule.ty.clone()
    } else if let Some(names) = &rule.span_names {
        names.get(span.name).cloned()
    } else if !rule.name_prefixes.is_empty() {
        rule.name_prefixes
            .iter()
            .find(|(p, _)| span.name.starts_with(p.as_str()))
            .map(|(_, t)| t.clone())
    } else {
        let Some(text) = type_value(value, rule.case) else {
            return Ok(None);
        };
        match &rule.values {
            Some(values) => values.get(&text).cloned(),
            None => rule
                .prefixes
                .iter()
                .find(|(p, _)| text.starts_with(p.as_str()))
                .map(|(_, t)| t.clone()),
        }
    };
    let Some(got) = got else { return Ok(None) };
    if !rule.requires_any.is_empty()
        && !rule
            .requires_any
            .iter()
            .any(|k| read::meaningful(attrs.get(k)))
    {
        return Ok(None);
    }
    if let Some(wanted) = &rule.resource {
        let Some(resource) = resource.filter(|r| !r.map.is_empty()) else {
            return Ok(None);
        };
        for (k, v) in wanted {
            if py_str(resource.get(k))? != *v {
                return Ok(None);
            }
        }
    }
    if let (Some(at_most), false) = (&rule.version_at_most, span.scope_version.is_empty()) {
        if version(span.scope_version) > *at_most {
            return Ok(None);
        }
    }
    Ok(Some(got))
}

/// Python's `str()` of a resource value, for the scalars a type rule compares.
fn py_str(v: Option<&Value>) -> Result<String, Python> {
    Ok(match v {
        None | Some(Value::Null) => "None".into(),
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Int(n)) => n.to_string(),
        Some(Value::Bool(b)) => if *b { "True" } else { "False" }.into(),
        Some(Value::Float(f)) => read::float_str(*f),
        Some(_) => return Err(Python),
    })
}

fn type_value(value: Option<&Value>, case: Case) -> Option<String> {
    let Some(Value::Str(s)) = value else {
        return None;
    };
    let mut s = s.as_str();
    if s.len() > 1 && s.starts_with('"') && s.ends_with('"') {
        s = &s[1..s.len() - 1];
    }
    Some(match case {
        Case::Lower => s.to_lowercase(),
        Case::Upper => s.to_uppercase(),
        Case::Exact => s.to_string(),
    })
}

fn version(text: &str) -> Vec<i64> {
    text.split('.')
        .take(2)
        .map(|part| {
            let digits: String = part.chars().filter(|c| c.is_ascii_digit()).collect();
            digits
                .parse()
                .unwrap_or(if digits.is_empty() { 0 } else { i64::MAX })
        })
        .collect()
}

// --- the view ----------------------------------------------------------------------------------

/// The view of a span whose merged attributes are `attrs`; with `model_calls_only`, only its
/// type for a span that is no model call (`is_genai` false, nothing else read).
pub fn view(
    table: &Table,
    attrs: &Attrs,
    span: &SpanInfo,
    resource: Option<&Attrs>,
    pricer: &mut Pricer,
    model_calls_only: bool,
) -> Result<View, Python> {
    // candidates by field, in the order fields are first met (usage buckets keep that order)
    let mut order: Vec<usize> = Vec::new();
    let mut candidates: Vec<(usize, usize, Raw)> = Vec::new();
    let mut families: Vec<(usize, Map)> = Vec::new();
    let mut typed = false;
    for (key, v) in attrs.iter() {
        let info = table.key_info(key);
        for &rank in &info.exact {
            add(
                &mut order,
                &mut candidates,
                table.sources[rank].field,
                rank,
                Raw::Value(v),
            );
        }
        for &(rank, cut) in &info.families {
            // a family has one prefix, and the keys are distinct: so are the rests (pushed)
            let rest = key[cut..].to_string();
            match families.iter_mut().find(|(r, _)| *r == rank) {
                Some((_, flat)) => flat.0.push((rest, v.clone())),
                None => families.push((rank, Map(vec![(rest, v.clone())]))),
            }
        }
        typed |= info.typed;
    }
    if !span.events.is_empty() && !table.events.is_empty() {
        // span events a source names, in span order, grouped by source
        let mut matched: Vec<(usize, Vec<&Event>)> = Vec::new();
        for event in span.events {
            for &rank in table
                .events
                .get(&event.name)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                match matched.iter_mut().find(|(r, _)| *r == rank) {
                    Some((_, list)) => list.push(event),
                    None => matched.push((rank, vec![event])),
                }
            }
        }
        for (rank, list) in matched {
            add(
                &mut order,
                &mut candidates,
                table.sources[rank].field,
                rank,
                Raw::Events(list),
            );
        }
    }
    for (rank, flat) in families {
        add(
            &mut order,
            &mut candidates,
            table.sources[rank].field,
            rank,
            Raw::Family(flat),
        );
    }
    for &rank in &table.span_name_sources {
        let source = &table.sources[rank];
        if source.span_names.contains(span.name) && scope_ok(&source.scopes, span.scope_name) {
            add(
                &mut order,
                &mut candidates,
                source.field,
                rank,
                Raw::Value(&source.constant),
            );
        }
    }

    let ty = if typed || table.name_rule_scopes.contains(span.scope_name) {
        classify(table, attrs, span, resource)?
    } else {
        "SPAN".to_string()
    };
    let mut out = plain_span(&ty, span);
    // `model_calls_only`: the caller keeps only model calls (Aperture records), so another
    // span's fields are not read: a fifth of a GenAI trace's spans are tool calls.
    if order.is_empty() || (model_calls_only && !out.is_genai) {
        return Ok(out);
    }

    let mut ctx = Ctx {
        attributes: attrs,
        parsed: ClientMap::default(),
    };
    let mut found: Vec<(Direct, Value)> = Vec::new();
    let mut reported: Vec<(String, i128)> = Vec::new();
    let mut special: Vec<(Special, Value)> = Vec::new();
    let mut level_from_names = false;
    // each field's candidates side by side, in the order met (the sort is stable)
    candidates.sort_by_key(|c| c.0);
    let mut flat: Vec<(usize, Raw)> = Vec::with_capacity(candidates.len());
    let mut ends = vec![0; order.len()];
    for (at, rank, raw) in candidates {
        flat.push((rank, raw));
        ends[at] = flat.len();
    }
    let mut start = 0;
    for (at, field) in order.into_iter().enumerate() {
        let bucket = &mut flat[start..ends[at]];
        start = ends[at];
        let info = &table.fields[field];
        let (value, rank) = if bucket.len() > 1
            && !info.merged
            && bucket.iter().all(|(r, _)| table.sources[*r].fast)
        {
            // all plain: the first by rank that reads (genai.py's fast path: no dict merging)
            bucket.sort_by_key(|c| c.0);
            let mut got = (None, None);
            for (rank, raw) in bucket.iter() {
                if let Some(v) = read_source(&table.sources[*rank], raw, &mut ctx)? {
                    got = (Some(v), Some(*rank));
                    break;
                }
            }
            got
        } else {
            best(table, field, bucket, &mut ctx, span.scope_name)?
        };
        let (Some(value), Some(rank)) = (value, rank) else {
            continue;
        };
        match &info.role {
            Role::Direct(d) => set_found(&mut found, *d, value),
            Role::Bucket(name) => {
                // a bucket's reader is a count; any other value is Python's to add up
                let Value::Int(n) = value else {
                    return Err(Python);
                };
                match reported.iter_mut().find(|(k, _)| k == name) {
                    Some(slot) => slot.1 = n,
                    None => reported.push((name.clone(), n)),
                }
            }
            Role::Special(s) => {
                if *s == Special::Level {
                    level_from_names = !table.sources[rank].span_names.is_empty();
                }
                special.push((*s, value));
            }
        }
    }

    for rule in &table.suppress {
        if let Some(Value::Str(marker)) = attrs.get(&rule.key) {
            if rule.values.contains(marker) {
                if rule.usage {
                    reported.clear();
                }
                if rule.model {
                    found.retain(|(d, _)| *d != Direct::Model);
                }
                special.retain(|(s, _)| {
                    let usage = matches!(s, Special::UsageOther | Special::UsageDetails);
                    let cost = matches!(
                        s,
                        Special::CostDetails
                            | Special::CostTotal
                            | Special::CostInput
                            | Special::CostOutput
                    );
                    !((rule.usage && usage) || (rule.cost && cost))
                });
            }
        }
    }

    let has = |found: &Vec<(Direct, Value)>, d: Direct| found.iter().any(|(x, _)| *x == d);
    if !has(&found, Direct::Operation)
        && !span.name.is_empty()
        && (has(&found, Direct::Model) || has(&found, Direct::Provider))
    {
        let first = span.name.split(' ').next().unwrap_or("");
        if OPERATION_NAMES.contains(&first) {
            set_found(&mut found, Direct::Operation, Value::Str(first.to_string()));
        }
    }
    let get = |s: Special| special.iter().find(|(x, _)| *x == s).map(|(_, v)| v);
    if !special.is_empty() {
        if !has(&found, Direct::Input) {
            if let Some(instructions) = get(Special::SystemInstructions) {
                let v = prepend_instructions(Value::List(vec![]), Some(instructions))?;
                set_found(&mut found, Direct::Input, v);
            }
        }
        if let Some(tools) = get(Special::Tools) {
            let Value::List(tools) = tools else {
                return Err(Python);
            };
            let input = found
                .iter()
                .position(|(d, _)| *d == Direct::Input)
                .map(|i| found.remove(i).1);
            let with = with_tools(input, tools);
            if let Some(v) = with {
                set_found(&mut found, Direct::Input, v);
            }
        }
    }
    let (usage, counts) = usage(
        &reported,
        get(Special::UsageOther),
        get(Special::UsageDetails),
    )?;
    let (mut cost, mut cost_details) = cost_of(&special)?;
    let mut level = match get(Special::Level) {
        Some(Value::Str(s)) => Some(s.clone()),
        Some(_) => return Err(Python),
        None => None,
    };
    let explicit_message = get(Special::StatusMessage).cloned();
    let mut completion_start = match get(Special::CompletionStartTime) {
        Some(Value::Str(s)) => Some(s.clone()),
        Some(_) => return Err(Python),
        None => None,
    };
    if completion_start.is_none() {
        match get(Special::TimeToFirstChunk) {
            Some(Value::Float(offset)) => {
                completion_start = first_chunk(*offset, span.start_unix_nano)
            }
            Some(_) => return Err(Python),
            None => {}
        }
    }
    if span.status_code == STATUS_CODE_ERROR && (level.is_none() || level_from_names) {
        level = Some("ERROR".into());
    }
    let take = |found: &mut Vec<(Direct, Value)>, d: Direct| -> Value {
        match found.iter().position(|(x, _)| *x == d) {
            Some(i) => found.remove(i).1,
            None => Value::Null,
        }
    };
    let model = take(&mut found, Direct::Model);
    let provider = take(&mut found, Direct::Provider);
    let mut estimate = None;
    if cost_details.is_empty()
        && is_model_call(&ty)
        && table.estimate_cost
        && (counts[0].is_some() || counts[1].is_some())
    {
        estimate = pricer(&Priced {
            model: as_text(&model)?,
            provider: as_text(&provider)?,
            at_unix_nano: span.start_unix_nano,
            input: counts[0],
            output: counts[1],
            cache_read: counts[3],
            cache_write: counts[5],
            reasoning: counts[4],
        })?;
        if let Some(e) = &estimate {
            cost = Some(e.total);
            cost_details = Map(vec![
                ("input".into(), Value::Float(e.input)),
                ("output".into(), Value::Float(e.output)),
                ("total".into(), Value::Float(e.total)),
            ]);
        }
    }
    out.counts = counts;
    out.cost = cost;
    out.cost_details = cost_details;
    out.usage_details = usage;
    out.level = level.unwrap_or_else(|| "DEFAULT".into());
    out.status_message = match explicit_message {
        Some(Value::Str(s)) => Some(s),
        Some(_) => return Err(Python),
        None => (!span.status_message.is_empty()).then(|| span.status_message.to_string()),
    };
    out.completion_start_time = completion_start;
    out.estimate = estimate;
    out.model = model;
    out.provider = provider;
    for (d, v) in found {
        let slot = match d {
            Direct::Name => &mut out.name,
            Direct::Model => &mut out.model,
            Direct::Provider => &mut out.provider,
            Direct::Operation => &mut out.operation,
            Direct::Input => &mut out.input,
            Direct::Output => &mut out.output,
            Direct::TraceInput => &mut out.trace_input,
            Direct::TraceOutput => &mut out.trace_output,
            Direct::ModelParameters => &mut out.model_parameters,
            Direct::UserId => &mut out.user_id,
            Direct::SessionId => &mut out.session_id,
            Direct::TraceName => &mut out.trace_name,
            Direct::Tags => &mut out.tags,
            Direct::Metadata => &mut out.metadata,
            Direct::Environment => &mut out.environment,
        };
        *slot = v;
    }
    Ok(out)
}

/// `_with_tools`: tool definitions join the input, as Langfuse shows them ({messages, tools}).
fn with_tools(input: Option<Value>, tools: &[Value]) -> Option<Value> {
    let tools_value = Value::List(tools.to_vec());
    Some(match input {
        Some(Value::List(messages)) => Value::Map(Map(vec![
            ("messages".into(), Value::List(messages)),
            ("tools".into(), tools_value),
        ])),
        Some(Value::Map(mut m)) => {
            let joined = match m.get("tools") {
                Some(Value::List(existing)) => {
                    Value::List(existing.iter().chain(tools).cloned().collect())
                }
                _ => tools_value,
            };
            m.insert("tools".into(), joined);
            Value::Map(m)
        }
        None => Value::Map(Map(vec![("tools".into(), tools_value)])),
        Some(Value::Str(prompt)) => Value::Map(Map(vec![
            ("prompt".into(), Value::Str(prompt)),
            ("tools".into(), tools_value),
        ])),
        other => return other,
    })
}

fn set_found(found: &mut Vec<(Direct, Value)>, d: Direct, v: Value) {
    match found.iter_mut().find(|(x, _)| *x == d) {
        Some(slot) => slot.1 = v,
        None => found.push((d, v)),
    }
}

/// `_plain_span`: the view of a span no convention describes.
fn plain_span(ty: &str, span: &SpanInfo) -> View {
    View {
        ty: ty.to_string(),
        operation: Value::Null,
        model: Value::Null,
        provider: Value::Null,
        counts: [None; 6],
        cost: None,
        cost_details: Map::new(),
        model_parameters: Value::Map(Map::new()),
        input: Value::Null,
        output: Value::Null,
        user_id: Value::Null,
        session_id: Value::Null,
        trace_name: Value::Null,
        tags: Value::List(vec![]),
        metadata: Value::Map(Map::new()),
        is_genai: is_model_call(ty),
        usage_details: None,
        name: Value::Null,
        trace_input: Value::Null,
        trace_output: Value::Null,
        environment: Value::Str("default".into()),
        level: if span.status_code == STATUS_CODE_ERROR {
            "ERROR"
        } else {
            "DEFAULT"
        }
        .into(),
        status_message: (!span.status_message.is_empty()).then(|| span.status_message.to_string()),
        completion_start_time: None,
        estimate: None,
    }
}

const MAX_UNIX_NANO: f64 = 18_446_744_073_709_551_616.0;

/// When the first token came, from an offset (seconds) after the span's start.
fn first_chunk(offset: f64, start_nano: u64) -> Option<String> {
    let delta = offset * 1e9;
    if delta.is_nan() || delta >= MAX_UNIX_NANO {
        return None;
    }
    // Python's round(): half to even
    let rounded = delta.round_ties_even();
    let nanos = start_nano as u128 + rounded as u128;
    (nanos < 1u128 << 64).then(|| read::rfc3339(nanos as u64))
}

// --- usage and cost ------------------------------------------------------------------------------

const CACHED: [&str; 5] = [
    "input_cached_tokens",
    "input_cache_read",
    "cache_read_input_tokens",
    "input_cached",
    "cached_tokens",
];
const REASONING: [&str; 3] = [
    "output_reasoning_tokens",
    "output_reasoning",
    "reasoning_tokens",
];
const CREATION: [&str; 3] = [
    "input_cache_creation",
    "cache_creation_input_tokens",
    "input_cache_write",
];

/// USAGE_WITHIN: the count a bucket is part of.
fn within(bucket: &str) -> Option<&'static str> {
    Some(match bucket {
        "input_cached_tokens" | "input_cache_creation" | "input_cache_read" => "input",
        "input_cache_creation_5m" | "input_cache_creation_1h" => "input_cache_creation",
        "output_reasoning_tokens" | "output_audio_tokens" => "output",
        _ => return None,
    })
}

fn children(bucket: &str) -> &'static [&'static str] {
    match bucket {
        "input" => &[
            "input_cached_tokens",
            "input_cache_creation",
            "input_cache_read",
        ],
        "input_cache_creation" => &["input_cache_creation_5m", "input_cache_creation_1h"],
        "output" => &["output_reasoning_tokens", "output_audio_tokens"],
        _ => &[],
    }
}

fn root_of(bucket: &str) -> Option<&'static str> {
    let mut b = within(bucket)?;
    while let Some(up) = within(b) {
        b = up;
    }
    matches!(b, "input" | "output").then_some(b)
}

fn count_of(m: &Map, k: &str) -> Option<i128> {
    match m.get(k) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    }
}

type Counts = [Option<i128>; 6];

/// `_usage`: Langfuse's buckets, and the counts as reported.
fn usage(
    reported: &[(String, i128)],
    other: Option<&Value>,
    blob: Option<&Value>,
) -> Result<(Option<Map>, Counts), Python> {
    let ints = |v: Option<&Value>| -> Result<Option<Vec<(String, i128)>>, Python> {
        match v {
            None => Ok(None),
            Some(Value::Map(m)) => m
                .iter()
                .map(|(k, x)| match x {
                    Value::Int(n) => Ok((k.clone(), *n)),
                    _ => Err(Python),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Python),
        }
    };
    let blob = ints(blob)?.filter(|b| !b.is_empty());
    let other = ints(other)?.filter(|o| !o.is_empty());
    let mut details = Map::new();
    let reported: Map = if let Some(blob) = blob {
        for (k, n) in &blob {
            details.insert(k.clone(), Value::Int(*n));
        }
        let mut r = details.clone();
        for side in ["input", "output"] {
            if let Some(n) = count_of(&details, side) {
                let extra: i128 = blob
                    .iter()
                    .filter(|(k, _)| k != side && root_of(k) == Some(side))
                    .map(|(_, n)| n)
                    .sum();
                r.insert(side.into(), Value::Int(n + extra));
            }
        }
        r
    } else if !reported.is_empty() || other.is_some() {
        for (k, n) in other.iter().flatten() {
            details.insert(k.clone(), Value::Int(*n));
        }
        let r = Map(reported
            .iter()
            .map(|(k, n)| (k.clone(), Value::Int(*n)))
            .collect());
        for (k, n) in reported {
            details.insert(k.clone(), Value::Int(*n));
        }
        if reported
            .iter()
            .any(|(k, _)| !matches!(k.as_str(), "input" | "output" | "total"))
        {
            for bucket in ["input_cache_creation", "input", "output"] {
                if let Some(n) = count_of(&r, bucket) {
                    let mut taken = 0;
                    for child in children(bucket) {
                        match count_of(&r, child) {
                            Some(c) => taken += c,
                            None => {
                                for grandchild in children(child) {
                                    taken += count_of(&r, grandchild).unwrap_or(0);
                                }
                            }
                        }
                    }
                    details.insert(bucket.into(), Value::Int((n - taken).max(0)));
                }
            }
        }
        r
    } else {
        return Ok((None, [None; 6]));
    };
    if details.get("total").is_none() && !details.is_empty() {
        let total: i128 = details
            .iter()
            .map(|(_, v)| if let Value::Int(n) = v { *n } else { 0 })
            .sum();
        if total <= INT64_MAX {
            details.insert("total".into(), Value::Int(total));
        }
    }
    let input = count_of(&reported, "input");
    let output = count_of(&reported, "output");
    let mut total = count_of(&reported, "total");
    if let (None, Some(i), Some(o)) = (total, input, output) {
        total = Some(i + o).filter(|t| (0..=INT64_MAX).contains(t));
    }
    let alias = |keys: &[&str]| keys.iter().find_map(|k| count_of(&reported, k));
    Ok((
        Some(details),
        [
            input,
            output,
            total,
            alias(&CACHED),
            alias(&REASONING),
            alias(&CREATION),
        ],
    ))
}

/// `_cost`: the total and Langfuse's cost details.
fn cost_of(special: &[(Special, Value)]) -> Result<(Option<f64>, Map), Python> {
    let get = |s: Special| special.iter().find(|(x, _)| *x == s).map(|(_, v)| v);
    let mut details = Map::new();
    if let Some(Value::Map(blob)) =
        get(Special::CostDetails).filter(|b| matches!(b, Value::Map(m) if !m.is_empty()))
    {
        details = blob.clone();
    } else {
        for (s, key) in [
            (Special::CostInput, "input"),
            (Special::CostOutput, "output"),
            (Special::CostTotal, "total"),
        ] {
            if let Some(v) = get(s) {
                details.insert(key.into(), v.clone());
            }
        }
    }
    // amounts are floats (the usd readers'); other values are Python's to add up
    let mut sum = 0.0;
    for (_, v) in details.iter() {
        let Value::Float(f) = v else {
            return Err(Python);
        };
        sum += f;
    }
    let mut cost = match details.get("total") {
        Some(Value::Float(f)) => Some(*f),
        _ => None,
    };
    if cost.is_none() && !details.is_empty() && sum.is_finite() {
        cost = Some(sum);
        details.insert("total".into(), Value::Float(sum));
    }
    Ok((cost, details))
}

#[cfg(test)]
mod attrs_tests {
    use super::{Attrs, Value};
    use std::rc::Rc;

    fn s(text: &str) -> Value {
        Value::Str(text.to_string())
    }

    #[test]
    fn own_attributes_over_a_resources_list_as_a_dict_of_them_would() {
        // {**resource, **own}: an own key over a resource one keeps the resource's place in the
        // merged order; own() lists the span's keys in their first order, with their last value.
        let mut resource = Attrs::default();
        for (k, v) in [("service.name", "a"), ("host", "h")] {
            resource.insert_own(k, s(v));
        }
        resource.disown();
        assert_eq!(resource.own().count(), 0);
        let resource = Rc::new(resource);
        let mut span = Attrs::over(&resource);
        for (k, v) in [("x", "1"), ("host", "own"), ("x", "2"), ("y", "3")] {
            span.insert_own(k, s(v));
        }
        let merged: Vec<_> = span.iter().map(|(k, v)| (k, v.clone())).collect();
        assert_eq!(
            merged,
            [
                ("service.name", s("a")),
                ("host", s("own")),
                ("x", s("2")),
                ("y", s("3"))
            ]
        );
        let own: Vec<_> = span.own().map(|(k, v)| (k, v.clone())).collect();
        assert_eq!(own, [("x", s("2")), ("host", s("own")), ("y", s("3"))]);
        assert_eq!(span.get("host"), Some(&s("own")));
        assert_eq!(span.get("service.name"), Some(&s("a")));
        assert!(span.contains("service.name") && span.contains("y") && !span.contains("z"));
        assert!(resource.get("x").is_none() && resource.get("host") == Some(&s("h")));
    }

    #[test]
    fn a_long_list_is_found_by_its_index_as_a_short_one_by_searching() {
        // Past SCANNED keys the index takes over: every key stays where it was first put, a
        // repeated one (before and after the index is built) takes its last value.
        let want: Vec<String> = (0..2 * super::SCANNED).map(|i| format!("k{i}")).collect();
        let mut span = Attrs::over(&Rc::new(Attrs::default()));
        for round in 0..2 {
            for (i, key) in want.iter().enumerate() {
                span.insert_own(key, Value::Int((round * 100 + i) as i128));
            }
        }
        let keys: Vec<&str> = span.own().map(|(k, _)| k).collect();
        assert_eq!(keys, want);
        for i in 0..(2 * super::SCANNED) {
            assert_eq!(
                span.get(&format!("k{i}")),
                Some(&Value::Int(100 + i as i128))
            );
        }
        assert!(span.contains("k0") && !span.contains("k999"));
    }
}
