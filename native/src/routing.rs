//! Routing on the protobuf wire (issue #17): what `otlp_router/routing/match.py` and
//! `RoutingTable.route` did per item on upb messages, done on the bytes of an export request.
//!
//! A `Program` is a routing table's routes (signals, match rule, `stop`), compiled once per
//! config from the rule trees Python validated.  `route` walks request -> resource -> scope ->
//! item and gives each item the routes it takes, as match.py's `walk` + `RoutingTable.choose`
//! did, with Python's value semantics: an attribute is `value_of(kv.value)` (the last of
//! repeated keys), `equals` / `in` are Python's `==` (True == 1 == 1.0, ints and floats compared
//! exactly, NaN equal to nothing, lists element-wise, kvlists as dicts), `gt` .. `le` compare
//! ints and floats (not bools) as floats, `prefix` and `regex` look at strings only, `exists`
//! tells None apart.  A log's name is its `event_name`, else `str()` of its `event.name`
//! attribute (asked of Python for the values whose `str()` only Python writes exactly).
//!
//! `select` writes the request of the items of some groups (each resource and scope with their
//! schema URL, items in order), which upb parses to exactly what batch.py's former `select`
//! built; `item_keys` reads the keys `partition` splits by (trace id, `service.name`).
//!
//! Repeated singular fields follow upb's parse: the last scalar wins, message occurrences merge,
//! a oneof member resets when another is set.  Nothing here recurses but AnyValue reading, which
//! stops at upb's depth limit.

use std::borrow::Cow;

use regex::Regex;

use crate::json::decode::put_varint;
use crate::json::encode::{read_varint, WireError};
use crate::privacy::Error;
use crate::wire::fields::{parse_kv, Fields, F};
use crate::wire::inspect::MAX_DEPTH;
use crate::wire::otlp::{any_numbers, layouts, numbers, Signal};

type Res<T, E> = Result<T, Error<E>>;

// --- the compiled rules ---------------------------------------------------------------------------

/// An expected value as Python holds it (YAML's scalars, lists and string-keyed mappings);
/// `Opaque` equals nothing an attribute can be (a date, a mapping with other keys, an int no
/// attribute can equal).
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(Vec<(String, Value)>),
    Opaque,
}

#[derive(Debug, Clone, Copy)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// A `regex` condition: the `regex` crate's search; `$` (Python's: also before a final newline)
/// is tried again on the text without its final newline.
#[derive(Debug)]
pub struct Pattern {
    re: Regex,
    dollar: bool,
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Pattern, String> {
        let re = Regex::new(pattern).map_err(|e| match e {
            // the last line of the crate's message says what is wrong
            regex::Error::Syntax(s) => {
                let last = s.lines().last().unwrap_or("").trim();
                last.strip_prefix("error: ").unwrap_or(last).to_owned()
            }
            other => other.to_string(),
        })?;
        Ok(Pattern {
            re,
            dollar: pattern.contains('$'),
        })
    }

    fn search(&self, s: &str) -> bool {
        self.re.is_match(s)
            || (self.dollar && s.ends_with('\n') && self.re.is_match(&s[..s.len() - 1]))
    }
}

#[derive(Debug)]
pub enum Test {
    Equals(Value),
    NotEquals(Value),
    In(Vec<Value>),
    Prefix(String),
    Regex(Pattern),
    Exists(bool),
    Number(Cmp, f64),
}

/// What a condition looks at; attribute subjects index the program's key lists.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    Attribute(usize),
    Resource(usize),
    ScopeAttribute(usize),
    ScopeName,
    ScopeVersion,
    /// the span name, the log's event name, the metric name
    Name,
    Kind,
    Status,
    Severity,
    ApiKey,
}

#[derive(Debug)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Cond(Subject, Test),
}

#[derive(Debug)]
pub struct Route {
    /// traces, logs, metrics
    pub signals: [bool; 3],
    pub rule: Option<Rule>,
    pub stop: bool,
}

/// The attribute keys rules read: of items, resources, scopes.
#[derive(Debug, Default)]
pub struct Keys {
    lists: [Vec<Vec<u8>>; 3],
}

impl Keys {
    /// The subject for attribute `key` of `which` (0 item, 1 resource, 2 scope).
    pub fn subject(&mut self, which: usize, key: &str) -> Subject {
        let list = &mut self.lists[which];
        let i = match list.iter().position(|k| k == key.as_bytes()) {
            Some(i) => i,
            None => {
                list.push(key.as_bytes().to_vec());
                list.len() - 1
            }
        };
        [
            Subject::Attribute,
            Subject::Resource,
            Subject::ScopeAttribute,
        ][which](i)
    }
}

#[derive(Debug)]
pub struct Program {
    routes: Vec<Route>,
    keys: Keys,
    /// the item key list's slot of `event.name` (logs' names fall back to it)
    event_name: usize,
}

impl Program {
    pub fn new(routes: Vec<Route>, mut keys: Keys) -> Program {
        let event_name = match keys.subject(0, "event.name") {
            Subject::Attribute(i) => i,
            _ => unreachable!(),
        };
        Program {
            routes,
            keys,
            event_name,
        }
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

// --- reading values -------------------------------------------------------------------------------

/// `value_of(AnyValue)`, borrowed from the wire.
#[derive(Debug)]
enum Val<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// valid UTF-8
    Str(Cow<'a, [u8]>),
    Bytes(Cow<'a, [u8]>),
    List(Vec<Val<'a>>),
    /// in wire order, repeated keys included (`dict` keeps the last)
    Dict(Vec<(Cow<'a, [u8]>, Val<'a>)>),
}

fn varint_of(d: &[u8]) -> Result<u64, WireError> {
    let mut i = 0;
    read_varint(d, &mut i)
}

fn utf8(b: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(b).map_err(|_| WireError("a string is not UTF-8"))
}

/// An AnyValue's bytes (occurrences of its KeyValue's value already concatenated) read as upb
/// and `value_of` read them: the last member set, a message member merging its occurrences
/// since it was last set.
fn read_any(value: &[u8], depth: u32) -> Result<Val<'_>, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError("values nested too deep"));
    }
    let any = any_numbers();
    let mut member = usize::MAX;
    let mut runs: Vec<&[u8]> = Vec::new();
    for f in Fields::new(value) {
        let f = f?;
        let Some(which) = any.iter().position(|&x| x == f.number) else {
            continue;
        };
        if f.wire != crate::wire::fields::any_member_wire(which) {
            continue; // upb keeps it as an unknown field
        }
        if which != member {
            member = which;
            runs.clear();
        }
        runs.push(f.data);
    }
    let Some(&last) = runs.last() else {
        return Ok(Val::None);
    };
    let merged = || -> Cow<'_, [u8]> {
        if runs.len() == 1 {
            Cow::Borrowed(last)
        } else {
            Cow::Owned(runs.concat())
        }
    };
    Ok(match member {
        0 => {
            utf8(last)?;
            Val::Str(Cow::Borrowed(last))
        }
        1 => Val::Bool(varint_of(last)? != 0),
        2 => Val::Int(varint_of(last)? as i64),
        3 => Val::Float(f64::from_le_bytes(
            last.try_into().map_err(|_| WireError("truncated double"))?,
        )),
        6 => Val::Bytes(Cow::Borrowed(last)),
        7 => Val::Int(varint_of(last)? as i32 as i64),
        4 | 5 => {
            // a merged message is owned, and what it holds is read from it: materialise it
            // through an owned copy only when occurrences had to be joined
            let body = merged();
            return Ok(match body {
                Cow::Borrowed(b) => read_container(member, b, depth)?,
                Cow::Owned(b) => read_container(member, &b, depth)?.into_owned(),
            });
        }
        _ => Val::None,
    })
}

fn read_container(member: usize, body: &[u8], depth: u32) -> Result<Val<'_>, WireError> {
    let n = numbers();
    let mut out_list = Vec::new();
    let mut out_dict = Vec::new();
    for f in Fields::new(body) {
        let f = f?;
        if f.wire != 2 {
            continue;
        }
        if member == 4 && f.number == n.array_values {
            out_list.push(read_any(f.data, depth + 1)?);
        } else if member == 5 && f.number == n.kvlist_values {
            let kv = parse_kv(f.data)?;
            utf8(kv.key)?;
            let v = match kv.value_wire() {
                Cow::Borrowed(b) => read_any(b, depth + 1)?,
                Cow::Owned(b) => read_any(&b, depth + 1)?.into_owned(),
            };
            out_dict.push((Cow::Borrowed(kv.key), v));
        }
    }
    Ok(if member == 4 {
        Val::List(out_list)
    } else {
        Val::Dict(out_dict)
    })
}

impl Val<'_> {
    /// The same value with nothing borrowed (from the temporary of merged occurrences).
    fn into_owned<'b>(self) -> Val<'b> {
        let own = |c: Cow<'_, [u8]>| Cow::Owned(c.into_owned());
        match self {
            Val::None => Val::None,
            Val::Bool(b) => Val::Bool(b),
            Val::Int(i) => Val::Int(i),
            Val::Float(x) => Val::Float(x),
            Val::Str(s) => Val::Str(own(s)),
            Val::Bytes(b) => Val::Bytes(own(b)),
            Val::List(l) => Val::List(l.into_iter().map(Val::into_owned).collect()),
            Val::Dict(d) => Val::Dict(
                d.into_iter()
                    .map(|(k, v)| (own(k), v.into_owned()))
                    .collect(),
            ),
        }
    }
}

// --- Python's value semantics -------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

fn num_of_val(v: &Val) -> Option<Num> {
    match *v {
        Val::Bool(b) => Some(Num::I(b as i64)),
        Val::Int(i) => Some(Num::I(i)),
        Val::Float(x) => Some(Num::F(x)),
        _ => None,
    }
}

fn num_of_value(v: &Value) -> Option<Num> {
    match *v {
        Value::Bool(b) => Some(Num::I(b as i64)),
        Value::Int(i) => Some(Num::I(i)),
        Value::Float(x) => Some(Num::F(x)),
        _ => None,
    }
}

/// Python's int == float: exact, not through a rounding conversion.
fn int_eq_float(i: i64, x: f64) -> bool {
    x.fract() == 0.0
        && (-9223372036854775808.0..9223372036854775808.0).contains(&x)
        && x as i64 == i
}

fn num_eq(a: Num, b: Num) -> bool {
    match (a, b) {
        (Num::I(x), Num::I(y)) => x == y,
        (Num::F(x), Num::F(y)) => x == y,
        (Num::I(i), Num::F(x)) | (Num::F(x), Num::I(i)) => int_eq_float(i, x),
    }
}

/// `a == e`, as Python compares `value_of(...)` with a value read from YAML.
fn eq(a: &Val, e: &Value) -> bool {
    if let (Some(x), Some(y)) = (num_of_val(a), num_of_value(e)) {
        return num_eq(x, y);
    }
    match (a, e) {
        (Val::None, Value::None) => true,
        (Val::Str(s), Value::Str(t)) => s.as_ref() == t.as_bytes(),
        (Val::Bytes(b), Value::Bytes(c)) => b.as_ref() == c.as_slice(),
        (Val::List(l), Value::List(m)) => {
            l.len() == m.len() && l.iter().zip(m).all(|(x, y)| eq(x, y))
        }
        (Val::Dict(d), Value::Dict(m)) => {
            // dict(...) of the kvlist: first position, last value of each key
            let mut kept: Vec<(&[u8], &Val)> = Vec::with_capacity(d.len());
            for (k, v) in d {
                match kept.iter_mut().find(|(key, _)| *key == k.as_ref()) {
                    Some(slot) => slot.1 = v,
                    None => kept.push((k.as_ref(), v)),
                }
            }
            kept.len() == m.len()
                && m.iter().all(|(k, y)| {
                    kept.iter()
                        .find(|(key, _)| *key == k.as_bytes())
                        .is_some_and(|(_, x)| eq(x, y))
                })
        }
        _ => false,
    }
}

fn test(t: &Test, v: &Val) -> bool {
    match t {
        Test::Equals(e) => !matches!(v, Val::None) && eq(v, e),
        Test::NotEquals(e) => !eq(v, e),
        Test::In(choices) => !matches!(v, Val::None) && choices.iter().any(|e| eq(v, e)),
        Test::Prefix(p) => matches!(v, Val::Str(s) if s.starts_with(p.as_bytes())),
        Test::Regex(p) => match v {
            // read_any checked the UTF-8
            Val::Str(s) => std::str::from_utf8(s).is_ok_and(|s| p.search(s)),
            _ => false,
        },
        Test::Exists(want) => !matches!(v, Val::None) == *want,
        Test::Number(cmp, limit) => {
            let x = match *v {
                Val::Int(i) => i as f64,
                Val::Float(x) => x,
                _ => return false,
            };
            match cmp {
                Cmp::Gt => x > *limit,
                Cmp::Ge => x >= *limit,
                Cmp::Lt => x < *limit,
                Cmp::Le => x <= *limit,
            }
        }
    }
}

// --- one item's context -------------------------------------------------------------------------

/// What rules may look at for one item; attribute slots hold the last value of the keys some
/// rule reads.
struct Ctx<'a> {
    resource: Vec<Option<Cow<'a, [u8]>>>,
    scope: Vec<Option<Cow<'a, [u8]>>>,
    attrs: Vec<Option<Cow<'a, [u8]>>>,
    scope_name: &'a [u8],
    scope_version: &'a [u8],
    /// the span / metric name, or the log's `event_name` field
    name: &'a [u8],
    kind: i64,
    status: i64,
    severity: i64,
    api_key: Option<&'a [u8]>,
    logs: bool,
}

/// Fill `slots` from a KeyValue list's occurrences (the last of a repeated key wins).
fn pick<'a>(
    slots: &mut [Option<Cow<'a, [u8]>>],
    keys: &[Vec<u8>],
    kvs: &F<'a>,
) -> Result<(), WireError> {
    let kv = parse_kv(kvs.data)?;
    if let Some(i) = keys.iter().position(|k| k.as_slice() == kv.key) {
        slots[i] = Some(kv.value_wire());
    }
    Ok(())
}

fn attr_val<'v>(slot: &'v Option<Cow<'_, [u8]>>) -> Result<Val<'v>, WireError> {
    match slot {
        Some(w) => read_any(w, 0),
        None => Ok(Val::None),
    }
}

/// `str(value)` of a log's `event.name` attribute value; Python writes the ones only it spells
/// exactly (floats, bytes, lists, dicts), through `hook` (the AnyValue's bytes).
fn event_name_str<E>(
    wire: &[u8],
    hook: &mut dyn FnMut(&[u8]) -> Result<String, E>,
) -> Res<String, E> {
    Ok(match read_any(wire, 0)? {
        Val::None | Val::Bool(false) | Val::Int(0) => String::new(),
        Val::Bool(true) => "True".to_owned(),
        Val::Int(i) => i.to_string(),
        Val::Str(s) => utf8(&s)?.to_owned(),
        Val::Float(0.0) => String::new(), // -0.0 too: it is falsy
        Val::Bytes(b) if b.is_empty() => String::new(),
        Val::List(l) if l.is_empty() => String::new(),
        Val::Dict(d) if d.is_empty() => String::new(),
        _ => hook(wire).map_err(Error::Hook)?,
    })
}

struct Eval<'p, 'h, E> {
    p: &'p Program,
    hook: &'h mut dyn FnMut(&[u8]) -> Result<String, E>,
}

impl<E> Eval<'_, '_, E> {
    fn subject<'v>(&mut self, s: Subject, ctx: &'v Ctx) -> Res<Val<'v>, E> {
        Ok(match s {
            Subject::Attribute(i) => attr_val(&ctx.attrs[i])?,
            Subject::Resource(i) => attr_val(&ctx.resource[i])?,
            Subject::ScopeAttribute(i) => attr_val(&ctx.scope[i])?,
            Subject::ScopeName => Val::Str(Cow::Borrowed(utf8(ctx.scope_name)?.as_bytes())),
            Subject::ScopeVersion => Val::Str(Cow::Borrowed(utf8(ctx.scope_version)?.as_bytes())),
            Subject::Name => {
                utf8(ctx.name)?;
                if ctx.logs && ctx.name.is_empty() {
                    let name = match &ctx.attrs[self.p.event_name] {
                        Some(w) => event_name_str(w, self.hook)?,
                        None => String::new(),
                    };
                    Val::Str(Cow::Owned(name.into_bytes()))
                } else {
                    Val::Str(Cow::Borrowed(ctx.name))
                }
            }
            Subject::Kind => Val::Int(ctx.kind),
            Subject::Status => Val::Int(ctx.status),
            Subject::Severity => Val::Int(ctx.severity),
            Subject::ApiKey => match ctx.api_key {
                Some(k) => Val::Str(Cow::Borrowed(k)),
                None => Val::None,
            },
        })
    }

    fn rule(&mut self, r: &Rule, ctx: &Ctx) -> Res<bool, E> {
        Ok(match r {
            Rule::All(parts) => {
                for p in parts {
                    if !self.rule(p, ctx)? {
                        return Ok(false);
                    }
                }
                true
            }
            Rule::Any(parts) => {
                for p in parts {
                    if self.rule(p, ctx)? {
                        return Ok(true);
                    }
                }
                false
            }
            Rule::Not(inner) => !self.rule(inner, ctx)?,
            Rule::Cond(s, t) => test(t, &self.subject(*s, ctx)?),
        })
    }
}

// --- routing a request --------------------------------------------------------------------------

/// Per item, the index into `choices` of the routes it takes; per choice, the items it
/// carries (metrics: data points).
#[derive(Debug, Default, PartialEq)]
pub struct Routed {
    pub choices: Vec<Vec<u32>>,
    pub groups: Vec<u32>,
    pub weights: Vec<u64>,
}

/// One resource_x / scope_x: the occurrences of the message it wraps, its children, and its
/// schema URL (the last occurrence).
struct Level<'a> {
    own: Vec<F<'a>>,
    kids: Vec<F<'a>>,
    schema: Option<F<'a>>,
}

fn level(b: &[u8], own: u64, children: u64, schema: u64) -> Result<Level<'_>, WireError> {
    let mut l = Level {
        own: Vec::new(),
        kids: Vec::new(),
        schema: None,
    };
    for f in Fields::new(b) {
        let f = f?;
        if f.wire != 2 {
            continue;
        }
        if f.number == own {
            l.own.push(f);
        } else if f.number == children {
            l.kids.push(f);
        } else if f.number == schema {
            l.schema = Some(f);
        }
    }
    Ok(l)
}

/// The request's resource_x levels (bytes and level), in order.
fn resource_levels<'a>(
    signal: Signal,
    wire: &'a [u8],
) -> Result<Vec<(&'a [u8], Level<'a>)>, WireError> {
    let layout = &layouts()[signal as usize];
    let mut out = Vec::new();
    for f in Fields::new(wire) {
        let f = f?;
        if f.number == layout.request_items && f.wire == 2 {
            out.push((
                f.data,
                level(
                    f.data,
                    layout.resource,
                    layout.scopes,
                    layout.resource_schema,
                )?,
            ));
        }
    }
    Ok(out)
}

fn scope_level(signal: Signal, b: &[u8]) -> Result<Level<'_>, WireError> {
    let layout = &layouts()[signal as usize];
    level(b, layout.scope, layout.items, layout.scope_schema)
}

/// The data points a metric counts (`len(data_points)` of its `data` member as upb merges it).
fn data_points(metric: &[u8]) -> Result<u64, WireError> {
    let n = numbers();
    let (mut member, mut count) = (usize::MAX, 0);
    for f in Fields::new(metric) {
        let f = f?;
        let Some(which) = n.metric_data.iter().position(|&(x, _, _)| x == f.number) else {
            continue;
        };
        if f.wire != 2 {
            continue;
        }
        if which != member {
            member = which;
            count = 0;
        }
        for p in Fields::new(f.data) {
            let p = p?;
            if p.number == n.metric_data[which].1 && p.wire == 2 {
                count += 1;
            }
        }
    }
    Ok(count)
}

/// Fill `slots` from the attributes (field `attributes`) of a message's occurrences.
fn pick_all<'a>(
    slots: &mut [Option<Cow<'a, [u8]>>],
    keys: &[Vec<u8>],
    occurrences: &[F<'a>],
    attributes: u64,
) -> Result<(), WireError> {
    slots.iter_mut().for_each(|s| *s = None);
    if keys.is_empty() {
        return Ok(());
    }
    for o in occurrences {
        for a in Fields::new(o.data) {
            let a = a?;
            if a.number == attributes && a.wire == 2 {
                pick(slots, keys, &a)?;
            }
        }
    }
    Ok(())
}

/// The routes every item of `wire` takes: `allowed[i]`, when given, says whether route `i` is
/// open to the request's API key.
pub fn route<E>(
    p: &Program,
    signal: Signal,
    wire: &[u8],
    api_key: Option<&[u8]>,
    allowed: Option<&[bool]>,
    hook: &mut dyn FnMut(&[u8]) -> Result<String, E>,
) -> Res<Routed, E> {
    let n = numbers();
    let sig = signal as usize;
    let open: Vec<(u32, &Route)> = (p.routes.iter().enumerate())
        .filter(|(i, r)| r.signals[sig] && allowed.is_none_or(|a| a.get(*i) == Some(&true)))
        .map(|(i, r)| (i as u32, r))
        .collect();
    let keys = &p.keys.lists;
    let mut out = Routed::default();
    let mut eval = Eval { p, hook };
    let mut chosen: Vec<u32> = Vec::new();
    let mut ctx = Ctx {
        resource: vec![None; keys[1].len()],
        scope: vec![None; keys[2].len()],
        attrs: vec![None; keys[0].len()],
        scope_name: b"",
        scope_version: b"",
        name: b"",
        kind: 0,
        status: 0,
        severity: 0,
        api_key,
        logs: signal == Signal::Logs,
    };
    for (_, rl) in resource_levels(signal, wire)? {
        pick_all(&mut ctx.resource, &keys[1], &rl.own, n.resource_attributes)?;
        for s in rl.kids {
            let Level {
                own: scope,
                kids: items,
                ..
            } = scope_level(signal, s.data)?;
            pick_all(&mut ctx.scope, &keys[2], &scope, n.scope_attributes)?;
            (ctx.scope_name, ctx.scope_version) = (b"", b"");
            for o in &scope {
                for a in Fields::new(o.data) {
                    let a = a?;
                    match (a.number, a.wire) {
                        (x, 2) if x == n.scope_name => ctx.scope_name = a.data,
                        (x, 2) if x == n.scope_version => ctx.scope_version = a.data,
                        _ => {}
                    }
                }
            }
            for item in items {
                let weight = describe(&mut ctx, signal, item.data, keys)?;
                chosen.clear();
                for &(i, r) in &open {
                    let hit = match &r.rule {
                        None => true,
                        Some(rule) => eval.rule(rule, &ctx)?,
                    };
                    if hit {
                        chosen.push(i);
                        if r.stop {
                            break;
                        }
                    }
                }
                let g = match out.choices.iter().position(|c| *c == chosen) {
                    Some(g) => g,
                    None => {
                        out.choices.push(chosen.clone());
                        out.weights.push(0);
                        out.choices.len() - 1
                    }
                };
                out.weights[g] += weight;
                out.groups.push(g as u32);
            }
        }
    }
    Ok(out)
}

/// Read one item into `ctx`; its weight (1, or a metric's data points).
fn describe<'a>(
    ctx: &mut Ctx<'a>,
    signal: Signal,
    item: &'a [u8],
    keys: &[Vec<Vec<u8>>; 3],
) -> Result<u64, WireError> {
    let n = numbers();
    ctx.attrs.iter_mut().for_each(|s| *s = None);
    ctx.name = b"";
    (ctx.kind, ctx.status, ctx.severity) = (0, 0, 0);
    // open enums: upb keeps any int32
    let enum_of = |d: &[u8]| varint_of(d).map(|v| v as i32 as i64);
    for f in Fields::new(item) {
        let f = f?;
        match (signal, f.number, f.wire) {
            (Signal::Traces, x, 2) if x == n.span_name => ctx.name = f.data,
            (Signal::Traces, x, 0) if x == n.span_kind => ctx.kind = enum_of(f.data)?,
            (Signal::Traces, x, 2) if x == n.span_attributes => pick(&mut ctx.attrs, &keys[0], &f)?,
            (Signal::Traces, x, 2) if x == n.span_status => {
                for s in Fields::new(f.data) {
                    let s = s?;
                    if s.number == n.status_code && s.wire == 0 {
                        ctx.status = enum_of(s.data)?;
                    }
                }
            }
            (Signal::Logs, x, 2) if x == n.log_event_name => ctx.name = f.data,
            (Signal::Logs, x, 0) if x == n.log_severity => ctx.severity = enum_of(f.data)?,
            (Signal::Logs, x, 2) if x == n.log_attributes => pick(&mut ctx.attrs, &keys[0], &f)?,
            (Signal::Metrics, x, 2) if x == n.metric_name => ctx.name = f.data,
            _ => {}
        }
    }
    Ok(if signal == Signal::Metrics {
        data_points(item)?
    } else {
        1
    })
}

// --- selecting and partitioning -----------------------------------------------------------------

fn put_field(out: &mut Vec<u8>, number: u64, body: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A resource_x / scope_x body: the wrapped message (present, even empty, as `CopyFrom` leaves
/// it), the kept children, the schema URL.
fn wrap(out: &mut Vec<u8>, b: &[u8], l: &Level, own: u64, kids: &[u8], schema: u64) {
    if l.own.is_empty() {
        put_field(out, own, b"");
    }
    for o in &l.own {
        out.extend_from_slice(&b[o.start..o.end]);
    }
    out.extend_from_slice(kids);
    if let Some(s) = l.schema.filter(|s| !s.data.is_empty()) {
        put_field(out, schema, s.data);
    }
}

/// The request of the items whose group (`groups`, in item order) `take` holds, and the items
/// it counts (metrics: data points).
pub fn select(
    signal: Signal,
    wire: &[u8],
    groups: &[u32],
    take: &[bool],
) -> Result<(Vec<u8>, u64), WireError> {
    let layout = &layouts()[signal as usize];
    let (mut out, mut rs_body, mut ss_body, mut kept) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut index, mut count) = (0usize, 0u64);
    for (rb, rl) in resource_levels(signal, wire)? {
        rs_body.clear();
        for s in &rl.kids {
            let sl = scope_level(signal, s.data)?;
            kept.clear();
            for item in &sl.kids {
                let g = *groups
                    .get(index)
                    .ok_or(WireError("more items than groups"))? as usize;
                index += 1;
                if take.get(g) == Some(&true) {
                    kept.extend_from_slice(&s.data[item.start..item.end]);
                    count += if signal == Signal::Metrics {
                        data_points(item.data)?
                    } else {
                        1
                    };
                }
            }
            if kept.is_empty() {
                continue;
            }
            ss_body.clear();
            wrap(
                &mut ss_body,
                s.data,
                &sl,
                layout.scope,
                &kept,
                layout.scope_schema,
            );
            put_field(&mut rs_body, layout.scopes, &ss_body);
        }
        if !rs_body.is_empty() {
            let mut body = Vec::with_capacity(rs_body.len() + 64);
            wrap(
                &mut body,
                rb,
                &rl,
                layout.resource,
                &rs_body,
                layout.resource_schema,
            );
            put_field(&mut out, layout.request_items, &body);
        }
    }
    if index != groups.len() {
        return Err(WireError("fewer items than groups"));
    }
    Ok((out, count))
}

/// What `partition` splits by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyBy {
    /// the item's trace id (empty when it has none)
    TraceId,
    /// the resource's first `service.name` attribute's string value
    Service,
    /// the trace id, else the service (the loadbalance destination's `by: trace_id`)
    TraceIdOrService,
}

fn service_of(resources: &[F]) -> Result<Vec<u8>, WireError> {
    let n = numbers();
    for r in resources {
        for a in Fields::new(r.data) {
            let a = a?;
            if a.number != n.resource_attributes || a.wire != 2 {
                continue;
            }
            let kv = parse_kv(a.data)?;
            if kv.key == b"service.name" {
                return Ok(match read_any(&kv.value_wire(), 0)? {
                    Val::Str(s) => s.into_owned(),
                    _ => Vec::new(), // `string_value` of another member
                });
            }
        }
    }
    Ok(Vec::new())
}

/// Each item's key: the distinct keys in order of appearance, and per item its key's index.
pub fn item_keys(
    signal: Signal,
    wire: &[u8],
    by: KeyBy,
) -> Result<(Vec<Vec<u8>>, Vec<u32>), WireError> {
    let n = numbers();
    let trace_field = match signal {
        Signal::Traces => Some(n.span_trace_id),
        Signal::Logs => Some(n.log_trace_id),
        Signal::Metrics => None,
    };
    let (mut keys, mut index): (Vec<Vec<u8>>, Vec<u32>) = (Vec::new(), Vec::new());
    for (_, rl) in resource_levels(signal, wire)? {
        let mut service = None;
        for s in &rl.kids {
            let sl = scope_level(signal, s.data)?;
            for item in &sl.kids {
                let mut key: &[u8] = b"";
                if by != KeyBy::Service {
                    if let Some(t) = trace_field {
                        for g in Fields::new(item.data) {
                            let g = g?;
                            if g.number == t && g.wire == 2 {
                                key = g.data;
                            }
                        }
                    }
                }
                let owned;
                if key.is_empty() && by != KeyBy::TraceId {
                    if service.is_none() {
                        service = Some(service_of(&rl.own)?);
                    }
                    owned = service.as_deref().unwrap_or_default();
                    key = owned;
                }
                let k = match keys.iter().position(|k| k.as_slice() == key) {
                    Some(k) => k,
                    None => {
                        keys.push(key.to_vec());
                        keys.len() - 1
                    }
                };
                index.push(k as u32);
            }
        }
    }
    Ok((keys, index))
}

#[cfg(feature = "python")]
pub mod python {
    //! The bindings: `Routes` (a compiled routing table), `select`, `item_keys`,
    //! `regex_problem`.
    use pyo3::exceptions::{PyTypeError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

    use super::{Cmp, KeyBy, Keys, Pattern, Program, Route, Rule, Subject, Test, Value};
    use crate::privacy::Error;
    use crate::wire::otlp::Signal;

    /// (route sets, per item its set, per set its items): `Routes.route`'s answer.
    type Choices = (Vec<Vec<u32>>, Vec<u32>, Vec<u64>);

    fn signal_of(name: &str) -> PyResult<Signal> {
        Signal::from_name(name).ok_or_else(|| PyTypeError::new_err(format!("not a signal: {name}")))
    }

    fn wire_error(signal: &str, e: &str) -> PyErr {
        PyValueError::new_err(format!("invalid protobuf for {signal}: {e}"))
    }

    /// A YAML value as Python's `==` sees it (bool before int: bool is an int subclass).
    fn value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
        Ok(if v.is_none() {
            Value::None
        } else if let Ok(b) = v.downcast::<PyBool>() {
            Value::Bool(b.is_true())
        } else if v.is_instance_of::<PyInt>() {
            match v.extract::<i64>() {
                Ok(i) => Value::Int(i),
                // past int64 no attribute int is equal; a double is when it is exactly this int
                Err(_) => match v.extract::<f64>() {
                    Ok(x) if v.eq(PyFloat::new(v.py(), x))? => Value::Float(x),
                    _ => Value::Opaque,
                },
            }
        } else if let Ok(x) = v.downcast::<PyFloat>() {
            Value::Float(x.value())
        } else if let Ok(s) = v.downcast::<PyString>() {
            Value::Str(s.to_str()?.to_owned())
        } else if let Ok(b) = v.downcast::<PyBytes>() {
            Value::Bytes(b.as_bytes().to_vec())
        } else if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
            Value::List(v.try_iter()?.map(|x| value(&x?)).collect::<PyResult<_>>()?)
        } else if let Ok(d) = v.downcast::<PyDict>() {
            let mut out = Vec::with_capacity(d.len());
            for (k, x) in d.iter() {
                let Ok(k) = k.downcast::<PyString>() else {
                    return Ok(Value::Opaque); // a kvlist's keys are strings
                };
                out.push((k.to_str()?.to_owned(), value(&x)?));
            }
            Value::Dict(out)
        } else {
            Value::Opaque
        })
    }

    fn subject(keys: &mut Keys, subject: &str, what: &str) -> PyResult<Subject> {
        Ok(match (subject, what) {
            ("attribute", k) => keys.subject(0, k),
            ("resource", k) => keys.subject(1, k),
            ("scope_attribute", k) => keys.subject(2, k),
            ("scope", "name") => Subject::ScopeName,
            ("scope", "version") => Subject::ScopeVersion,
            ("span" | "metric", "name") | ("log", "event_name") => Subject::Name,
            ("span", "kind") => Subject::Kind,
            ("span", "status") => Subject::Status,
            ("log", "severity") => Subject::Severity,
            ("api_key", _) => Subject::ApiKey,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "no subject {subject}: {what}"
                )))
            }
        })
    }

    /// A rule tree from match.py: ("all" | "any", [rules]), ("not", rule),
    /// ("cond", subject, what, operator, expected).
    fn rule(keys: &mut Keys, r: &Bound<'_, PyAny>) -> PyResult<Rule> {
        let t = r.downcast::<PyTuple>()?;
        let head: String = t.get_item(0)?.extract()?;
        Ok(match head.as_str() {
            "all" | "any" => {
                let parts = (t.get_item(1)?.try_iter()?)
                    .map(|p| rule(keys, &p?))
                    .collect::<PyResult<Vec<_>>>()?;
                if head == "all" {
                    Rule::All(parts)
                } else {
                    Rule::Any(parts)
                }
            }
            "not" => Rule::Not(Box::new(rule(keys, &t.get_item(1)?)?)),
            "cond" => {
                let s = subject(
                    keys,
                    &t.get_item(1)?.extract::<String>()?,
                    &t.get_item(2)?.extract::<String>()?,
                )?;
                let op: String = t.get_item(3)?.extract()?;
                let e = t.get_item(4)?;
                let test = match op.as_str() {
                    "equals" => Test::Equals(value(&e)?),
                    "not_equals" => Test::NotEquals(value(&e)?),
                    "in" => Test::In(e.try_iter()?.map(|x| value(&x?)).collect::<PyResult<_>>()?),
                    "prefix" => Test::Prefix(e.extract()?),
                    "regex" => Test::Regex(
                        Pattern::new(&e.extract::<String>()?).map_err(PyValueError::new_err)?,
                    ),
                    "exists" => Test::Exists(e.extract()?),
                    "gt" => Test::Number(Cmp::Gt, e.extract()?),
                    "ge" => Test::Number(Cmp::Ge, e.extract()?),
                    "lt" => Test::Number(Cmp::Lt, e.extract()?),
                    "le" => Test::Number(Cmp::Le, e.extract()?),
                    _ => return Err(PyValueError::new_err(format!("no operator {op}"))),
                };
                Rule::Cond(s, test)
            }
            _ => return Err(PyValueError::new_err(format!("not a rule: {head}"))),
        })
    }

    /// A routing table's routes, compiled once per config: `routes` is a list of
    /// (signals, rule tree or None, stop), in table order (the default route not among them).
    #[pyclass(frozen, module = "otlp_router._native")]
    pub struct Routes {
        program: Program,
    }

    #[pymethods]
    impl Routes {
        #[new]
        fn new(routes: &Bound<'_, PyAny>) -> PyResult<Self> {
            let mut keys = Keys::default();
            let mut out = Vec::new();
            for r in routes.try_iter()? {
                let r = r?;
                let t = r.downcast::<PyTuple>()?;
                let mut signals = [false; 3];
                for s in t.get_item(0)?.try_iter()? {
                    signals[signal_of(&s?.extract::<String>()?)? as usize] = true;
                }
                let tree = t.get_item(1)?;
                let rule = if tree.is_none() {
                    None
                } else {
                    Some(rule(&mut keys, &tree)?)
                };
                out.push(Route {
                    signals,
                    rule,
                    stop: t.get_item(2)?.extract()?,
                });
            }
            Ok(Routes {
                program: Program::new(out, keys),
            })
        }

        /// For the export request `wire` of `signal`: (the distinct route sets items take, as
        /// lists of route indexes; per item, the index of its set; per set, the items it
        /// carries: data points for metrics).  `allowed`: per route, whether the request's API
        /// key may take it.  `event_name(AnyValue bytes)` gives `str(value_of(...))` of a log's
        /// `event.name` attribute where only Python writes it.  ValueError for bytes that are
        /// not the request they claim to be.
        #[pyo3(signature = (signal, wire, api_key, allowed, event_name))]
        fn route(
            &self,
            signal: &str,
            wire: &[u8],
            api_key: Option<&str>,
            allowed: Option<Vec<bool>>,
            event_name: &Bound<'_, PyAny>,
        ) -> PyResult<Choices> {
            let sig = signal_of(signal)?;
            let mut hook = |b: &[u8]| -> PyResult<String> {
                event_name
                    .call1((PyBytes::new(event_name.py(), b),))?
                    .extract()
            };
            match super::route(
                &self.program,
                sig,
                wire,
                api_key.map(str::as_bytes),
                allowed.as_deref(),
                &mut hook,
            ) {
                Ok(r) => Ok((r.choices, r.groups, r.weights)),
                Err(Error::Hook(e)) => Err(e),
                Err(Error::Wire(e)) => Err(wire_error(signal, e)),
            }
        }

        fn __len__(&self) -> usize {
            self.program.len()
        }
    }

    /// Why the core's regex engine cannot take `pattern` (None: it can).
    #[pyfunction]
    pub fn regex_problem(pattern: &str) -> Option<String> {
        Pattern::new(pattern).err()
    }

    /// Per output (the groups it takes, by index), the request of the items of those groups
    /// (`groups`: per item, its group) and the items it counts.  Runs without the GIL.
    #[pyfunction]
    pub fn select<'py>(
        py: Python<'py>,
        signal: &str,
        wire: &[u8],
        groups: Vec<u32>,
        outputs: Vec<Vec<u32>>,
    ) -> PyResult<Vec<(Bound<'py, PyBytes>, u64)>> {
        let sig = signal_of(signal)?;
        let n = groups.iter().max().map_or(0, |&g| g as usize + 1);
        let got = py.allow_threads(|| {
            outputs
                .iter()
                .map(|takes| {
                    let mut take = vec![false; n];
                    for &g in takes {
                        if let Some(t) = take.get_mut(g as usize) {
                            *t = true;
                        }
                    }
                    super::select(sig, wire, &groups, &take)
                })
                .collect::<Result<Vec<_>, _>>()
        });
        match got {
            Ok(parts) => Ok(parts
                .into_iter()
                .map(|(b, c)| (PyBytes::new(py, &b), c))
                .collect()),
            Err(e) => Err(wire_error(signal, e.0)),
        }
    }

    /// (the distinct keys, per item its key's index) of the export request `wire`, by
    /// "trace_id", "service" or "trace_id_or_service".
    #[pyfunction]
    pub fn item_keys<'py>(
        py: Python<'py>,
        signal: &str,
        wire: &[u8],
        by: &str,
    ) -> PyResult<(Vec<Bound<'py, PyBytes>>, Vec<u32>)> {
        let sig = signal_of(signal)?;
        let by = match by {
            "trace_id" => KeyBy::TraceId,
            "service" => KeyBy::Service,
            "trace_id_or_service" => KeyBy::TraceIdOrService,
            _ => return Err(PyValueError::new_err(format!("no key {by}"))),
        };
        match py.allow_threads(|| super::item_keys(sig, wire, by)) {
            Ok((keys, index)) => Ok((keys.iter().map(|k| PyBytes::new(py, k)).collect(), index)),
            Err(e) => Err(wire_error(signal, e.0)),
        }
    }
}
