//! The Python values the GenAI view works with, with exactly the semantics it relies on.
//!
//! * [`from_any_value`]: an OTLP AnyValue's bytes as upb parses them (`AnyValue.FromString`)
//!   and `value_of` (otlp_router/model/attributes.py) reads them.
//! * [`parse_json`] / [`dumps`] / [`write_json`]: `orjson.loads` and `orjson.dumps`.
//! * [`plain`], [`content`], [`stringified`]: genai.py's `_plain` and `_content` and
//!   trace_json.py's `_stringified`.
//!
//! What was found by experiment (orjson 3.13, protobuf 7 with upb):
//!
//! * `orjson.loads` takes at most 1024 nested arrays/objects ([`LOADS_MAX_DEPTH`]); integer
//!   literals within i64 (negative) or u64 are ints, longer ones (and numbers with a fraction or
//!   exponent) floats, correctly rounded; a number that overflows a double (`1e400`, 400 digits)
//!   is an error, one that underflows is 0.0; `-0` is the int 0 and `-0.0` the float -0.0;
//!   escapes must form valid UTF-16 (a lone or reversed surrogate is an error); only space, tab,
//!   CR and LF are whitespace; a byte order mark, NaN / Infinity literals, trailing commas,
//!   leading zeros and trailing content are errors; a repeated key keeps its first position and
//!   takes the last value (a dict).  The crate's tape parser (json/parse.rs) has those rules.
//! * `orjson.dumps` writes at most 254 nested arrays/dicts ([`DUMPS_MAX_DEPTH`]) and integers
//!   within i64..=u64::MAX, raising beyond; it escapes `"`, `\` and the control characters below
//!   U+0020 (`\b \t \n \f \r`, the others `\u00XX`) and writes everything else, U+007F and
//!   U+2028 included, as raw UTF-8; floats are the shortest digits that read back, in decimal
//!   for exponents -5..=15 (`0.00001`, `1000000000000000.0`) else `1e-6`, `1e+16`,
//!   `1.8446744073709552e+19`; NaN and ±Infinity are written as null.
//! * upb fails an AnyValue nested past 100 messages ([`UPB_MAX_DEPTH`]: an array level takes
//!   two, a kvlist level three, a group one), a string or key that is not UTF-8 (even one a
//!   later occurrence replaces), a field number 0, a tag longer than 5 bytes or past 32 bits, a
//!   length longer than 5 bytes, a varint longer than 10 bytes, a group without its own end;
//!   a member with the wrong wire type is an unknown field; occurrences of the oneof's message
//!   member merge while the member stays the same (array elements and kvlist entries add up),
//!   a different member in between starts it anew.

use std::collections::HashMap;

use crate::json::encode::{push_base64, push_json_string, read_varint, skip, WireError};
use crate::json::error::format_float;
use crate::json::parse::{self, Doc, Node};
use crate::wire::fields::{Fields, F};
use crate::wire::otlp::{numbers, N_KV_KEY, N_KV_VALUE};

/// genai.py's `_MAX_DEPTH`: structured values end there in `_plain`, JSON nested deeper stays
/// a string in `_content`.
pub const MAX_DEPTH: usize = 200;
/// The deepest nesting of arrays/dicts `orjson.dumps` writes (genai.py's `_ORJSON_MAX_DEPTH`).
pub const DUMPS_MAX_DEPTH: usize = 254;
/// The deepest nesting of arrays/objects `orjson.loads` reads.
pub const LOADS_MAX_DEPTH: usize = parse::MAX_DEPTH;
/// upb's default decoding depth limit: nested messages below the one parsed.
pub const UPB_MAX_DEPTH: u32 = 100;

/// A Python value of the view: what `value_of` and `orjson.loads` give.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// an int: i64 from OTLP; from JSON what `orjson.loads` makes an int (up to u64::MAX)
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(Map),
}

/// A Python dict with string keys: insertion order; inserting a key already there replaces its
/// value where it is.  (Lookups are linear: the maps of a span are small; [`Map::from_pairs`]
/// builds large ones in linear time.)
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map(pub Vec<(String, Value)>);

impl Map {
    pub fn new() -> Map {
        Map(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Map {
        Map(Vec::with_capacity(n))
    }

    /// The pairs as `dict(pairs)` (or a dict comprehension) makes them: a repeated key keeps
    /// its first position and takes the last value.
    pub fn from_pairs(pairs: Vec<(String, Value)>) -> Map {
        if pairs.len() <= 16 {
            let mut m = Map::with_capacity(pairs.len());
            for (k, v) in pairs {
                m.insert(k, v);
            }
            return m;
        }
        // per pair, the position of its key in the result
        let mut slots = Vec::with_capacity(pairs.len());
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(pairs.len());
        for (k, _) in &pairs {
            let next = seen.len();
            slots.push(*seen.entry(k.as_str()).or_insert(next));
        }
        let mut out: Vec<(String, Value)> = Vec::with_capacity(seen.len());
        drop(seen);
        for ((k, v), slot) in pairs.into_iter().zip(slots) {
            if slot == out.len() {
                out.push((k, v));
            } else {
                out[slot].1 = v;
            }
        }
        Map(out)
    }

    fn position(&self, k: &str) -> Option<usize> {
        self.0.iter().position(|(key, _)| key == k)
    }

    pub fn get(&self, k: &str) -> Option<&Value> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, k: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(key, _)| key == k).map(|(_, v)| v)
    }

    pub fn contains_key(&self, k: &str) -> bool {
        self.position(k).is_some()
    }

    /// `d[k] = v`; the value it replaced, if any.
    pub fn insert(&mut self, k: String, v: Value) -> Option<Value> {
        match self.position(&k) {
            Some(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            None => {
                self.0.push((k, v));
                None
            }
        }
    }

    /// `d.pop(k, None)`: the others keep their order.
    pub fn remove(&mut self, k: &str) -> Option<Value> {
        let i = self.position(k)?;
        Some(self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Map {
        Map::from_pairs(iter.into_iter().collect())
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Value {
    /// Python's truthiness (`x or y`, `if x`).
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A list or a dict.
    pub fn is_container(&self) -> bool {
        matches!(self, Value::List(_) | Value::Map(_))
    }

    /// How many lists/dicts nest here (`[]` and `{}` are 1, a scalar 0).
    pub fn depth(&self) -> usize {
        match self {
            Value::List(l) => 1 + l.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(m) => 1 + m.values().map(Value::depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}

// --- AnyValue ---------------------------------------------------------------------------------

/// An OTLP AnyValue message's bytes as `value_of(AnyValue.FromString(wire))` reads them: None
/// (an unset oneof) is Null, string_value_strindex an int, arrays and kvlists recursively (a
/// kvlist's repeated key: the last value at the first position).  An error where upb fails
/// the bytes.
pub fn from_any_value(wire: &[u8]) -> Result<Value, WireError> {
    from_any_value_within(wire, UPB_MAX_DEPTH)
}

/// [`from_any_value`] for an AnyValue parsed `UPB_MAX_DEPTH - budget` messages below the root of
/// what upb parses (a span attribute's AnyValue in an ExportTraceServiceRequest: 5 below).
pub fn from_any_value_within(wire: &[u8], budget: u32) -> Result<Value, WireError> {
    any(&[wire], budget)
}

const TOO_DEEP: WireError = WireError("message nested too deep");
const CORRUPT: WireError = WireError("corrupt wire format");

/// The value the oneof holds so far.
enum Member<'a> {
    Unset,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    List(Vec<Value>),
    Map(Map),
}

fn utf8(b: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(b).map_err(|_| WireError("a string field is not UTF-8"))
}

fn varint_of(d: &[u8]) -> Result<u64, WireError> {
    let mut i = 0;
    read_varint(d, &mut i)
}

/// Bytes of the varint at `at` (without reading past the input).
fn varint_len(b: &[u8], at: usize) -> usize {
    b[at.min(b.len())..]
        .iter()
        .position(|&x| x < 0x80)
        .map_or(usize::MAX, |n| n + 1)
}

/// What upb checks of a field that `Fields` read: the tag and length encodings, the field
/// number, and the contents of an (unknown) group; `budget` the nesting left below the message.
fn check_field(msg: &[u8], f: &F, budget: u32) -> Result<(), WireError> {
    let tag_len = varint_len(msg, f.start);
    let tag = varint_of(&msg[f.start..])?;
    if tag_len > 5 || tag > u32::MAX as u64 || f.number == 0 {
        return Err(CORRUPT);
    }
    match f.wire {
        0 if f.data.len() > 10 => Err(CORRUPT),
        2 if varint_len(msg, f.start + tag_len) > 5 => Err(CORRUPT),
        3 => group(f.data, f.number, budget),
        _ => Ok(()),
    }
}

/// An unknown group's contents (after its start tag, through its end tag) as upb skips it:
/// one nesting level, its end tag naming its own field number.
fn group(b: &[u8], number: u64, budget: u32) -> Result<(), WireError> {
    let budget = budget.checked_sub(1).ok_or(CORRUPT)?;
    let mut i = 0;
    loop {
        let at = i;
        let tag = read_varint(b, &mut i)?;
        if i - at > 5 || tag > u32::MAX as u64 {
            return Err(CORRUPT);
        }
        match tag & 7 {
            4 => {
                return if tag >> 3 == number && i == b.len() {
                    Ok(())
                } else {
                    Err(CORRUPT)
                };
            }
            3 => {
                let start = i;
                skip(b, &mut i, 3, 0)?;
                group(&b[start..i], tag >> 3, budget)?;
            }
            0 => {
                let start = i;
                skip(b, &mut i, 0, 0)?;
                if i - start > 10 {
                    return Err(CORRUPT);
                }
            }
            2 => {
                if varint_len(b, i) > 5 {
                    return Err(CORRUPT);
                }
                skip(b, &mut i, 2, 0)?;
            }
            wire => skip(b, &mut i, wire, 0)?,
        }
    }
}

/// An AnyValue given as its occurrences (a KeyValue's `value` may occur more than once: upb
/// parses each into the same message).
fn any(chunks: &[&[u8]], budget: u32) -> Result<Value, WireError> {
    let n = numbers();
    let mut member = Member::Unset;
    for &chunk in chunks {
        for f in Fields::new(chunk) {
            let f = f?;
            check_field(chunk, &f, budget)?;
            let Some(which) = n.any.iter().position(|&x| x == f.number) else {
                continue;
            };
            if f.wire != crate::wire::fields::any_member_wire(which) {
                continue; // an unknown field to upb
            }
            member = match which {
                0 => Member::Str(utf8(f.data)?),
                1 => Member::Bool(varint_of(f.data)? != 0),
                2 => Member::Int(varint_of(f.data)? as i64),
                3 => Member::Double(f64::from_le_bytes(
                    f.data
                        .try_into()
                        .map_err(|_| WireError("truncated double"))?,
                )),
                4 => {
                    let mut list = match member {
                        Member::List(l) => l,
                        _ => Vec::new(),
                    };
                    array(f.data, budget.checked_sub(1).ok_or(TOO_DEEP)?, &mut list)?;
                    Member::List(list)
                }
                5 => {
                    let mut map = match member {
                        Member::Map(m) => m,
                        _ => Map::new(),
                    };
                    kvlist(f.data, budget.checked_sub(1).ok_or(TOO_DEEP)?, &mut map)?;
                    Member::Map(map)
                }
                6 => Member::Bytes(f.data),
                _ => Member::Int(varint_of(f.data)? as i32 as i64),
            };
        }
    }
    Ok(match member {
        Member::Unset => Value::Null,
        Member::Str(s) => Value::Str(s.to_owned()),
        Member::Bool(b) => Value::Bool(b),
        Member::Int(i) => Value::Int(i as i128),
        Member::Double(x) => Value::Float(x),
        Member::Bytes(b) => Value::Bytes(b.to_vec()),
        Member::List(l) => Value::List(l),
        Member::Map(m) => Value::Map(m),
    })
}

/// An ArrayValue's elements, appended.
fn array(body: &[u8], budget: u32, list: &mut Vec<Value>) -> Result<(), WireError> {
    let n = numbers();
    for f in Fields::new(body) {
        let f = f?;
        check_field(body, &f, budget)?;
        if f.number == n.array_values && f.wire == 2 {
            list.push(any(&[f.data], budget.checked_sub(1).ok_or(TOO_DEEP)?)?);
        }
    }
    Ok(())
}

/// A KeyValueList's entries, inserted (`{kv.key: value_of(kv.value) for kv in ...}`).
fn kvlist(body: &[u8], budget: u32, map: &mut Map) -> Result<(), WireError> {
    let n = numbers();
    for f in Fields::new(body) {
        let f = f?;
        check_field(body, &f, budget)?;
        if f.number == n.kvlist_values && f.wire == 2 {
            let (k, v) = key_value(f.data, budget.checked_sub(1).ok_or(TOO_DEEP)?)?;
            map.insert(k, v);
        }
    }
    Ok(())
}

fn key_value(body: &[u8], budget: u32) -> Result<(String, Value), WireError> {
    let mut key = "";
    let mut values: Vec<&[u8]> = Vec::new();
    for f in Fields::new(body) {
        let f = f?;
        check_field(body, &f, budget)?;
        if f.wire != 2 {
            continue;
        }
        if f.number == N_KV_KEY {
            key = utf8(f.data)?;
        } else if f.number == N_KV_VALUE {
            if budget == 0 {
                return Err(TOO_DEEP);
            }
            values.push(f.data);
        }
    }
    let value = match budget.checked_sub(1) {
        Some(b) => any(&values, b)?,
        None => Value::Null, // no value occurred
    };
    Ok((key.to_owned(), value))
}

// --- orjson.loads ----------------------------------------------------------------------------

/// `orjson.loads(text)`: the value, or None where orjson raises.
pub fn parse_json(text: &str) -> Option<Value> {
    let doc = parse::parse_str(text).ok()?;
    Some(node(&doc, 0).0)
}

/// The value at tape index `i` and the index after it (nesting is at most LOADS_MAX_DEPTH).
fn node(doc: &Doc, i: usize) -> (Value, usize) {
    match doc.nodes[i] {
        Node::Null => (Value::Null, i + 1),
        Node::Bool(b) => (Value::Bool(b), i + 1),
        Node::Int(n) => (Value::Int(n as i128), i + 1),
        Node::UInt(n) => (Value::Int(n as i128), i + 1),
        Node::Float(x) => (Value::Float(x), i + 1),
        s @ Node::Str { .. } => (Value::Str(doc.str_of(s).to_owned()), i + 1),
        Node::Array { len, end } => {
            let mut items = Vec::with_capacity(len as usize);
            let mut j = i + 1;
            for _ in 0..len {
                let (v, next) = node(doc, j);
                items.push(v);
                j = next;
            }
            (Value::List(items), end as usize)
        }
        Node::Object { len, end } => {
            let mut pairs = Vec::with_capacity(len as usize);
            let mut j = i + 1;
            for _ in 0..len {
                let key = doc.str_of(doc.nodes[j]).to_owned();
                let (v, next) = node(doc, j + 1);
                pairs.push((key, v));
                j = next;
            }
            (Value::Map(Map::from_pairs(pairs)), end as usize)
        }
    }
}

// --- orjson.dumps ----------------------------------------------------------------------------

/// `orjson.dumps(v)` as it writes a value it accepts, appended to `out`: compact, keys in
/// order, strings and floats as orjson writes them, NaN and ±Infinity as null, ints as digits.
/// What orjson would refuse is written all the same (see [`dumps`] for its verdict): nesting
/// past DUMPS_MAX_DEPTH as it is, ints past 64 bits as digits, and Bytes (a TypeError to
/// orjson; never there after [`plain`]) as [`plain`] makes them, a base64 string.
pub fn write_json(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(x) => push_float(*x, out),
        Value::Str(s) => push_json_string(out, s),
        Value::Bytes(b) => {
            out.push(b'"');
            push_base64(out, b);
            out.push(b'"');
        }
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out);
            }
            out.push(b']');
        }
        Value::Map(m) => {
            out.push(b'{');
            for (i, (k, item)) in m.0.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_string(out, k);
                out.push(b':');
                write_json(item, out);
            }
            out.push(b'}');
        }
    }
}

fn push_float(x: f64, out: &mut Vec<u8>) {
    if x.is_finite() {
        let mut s = String::new();
        format_float(x, -5, 16, 1, &mut s);
        out.extend_from_slice(s.as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Whether `orjson.dumps` takes `v` when it sits inside `depth` arrays/dicts: no deeper than
/// DUMPS_MAX_DEPTH in all, ints within i64::MIN..=u64::MAX, no bytes.
pub fn dumpable(v: &Value, depth: usize) -> bool {
    match v {
        Value::Int(i) => (i64::MIN as i128..=u64::MAX as i128).contains(i),
        Value::Bytes(_) => false,
        Value::List(items) => {
            depth < DUMPS_MAX_DEPTH && items.iter().all(|x| dumpable(x, depth + 1))
        }
        Value::Map(m) => depth < DUMPS_MAX_DEPTH && m.values().all(|x| dumpable(x, depth + 1)),
        _ => true,
    }
}

/// `orjson.dumps(v)`: its bytes, or None where orjson raises.
pub fn dumps(v: &Value) -> Option<Vec<u8>> {
    if !dumpable(v, 0) {
        return None;
    }
    let mut out = Vec::new();
    write_json(v, &mut out);
    Some(out)
}

// --- genai.py ----------------------------------------------------------------------------------

/// `_plain(v, depth)`: a copy orjson serialises.  Strings, None, bools and floats as they are
/// (at any depth), ints outside i64 as decimal strings; at `depth` >= MAX_DEPTH any other
/// value is None; dicts and lists copied one level deeper; bytes as base64 (with padding).
pub fn plain(v: Value, depth: usize) -> Value {
    match v {
        Value::Str(_) | Value::Null | Value::Bool(_) | Value::Float(_) => v,
        Value::Int(i) => int_plain(i),
        _ if depth >= MAX_DEPTH => Value::Null,
        Value::Map(m) => Value::Map(Map(m
            .0
            .into_iter()
            .map(|(k, x)| (k, plain(x, depth + 1)))
            .collect())),
        Value::List(items) => Value::List(items.into_iter().map(|x| plain(x, depth + 1)).collect()),
        Value::Bytes(b) => Value::Str(base64(&b)),
    }
}

fn int_plain(i: i128) -> Value {
    if (i64::MIN as i128..=i64::MAX as i128).contains(&i) {
        Value::Int(i)
    } else {
        Value::Str(i.to_string())
    }
}

fn base64(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len().div_ceil(3) * 4);
    push_base64(&mut out, b);
    String::from_utf8(out).unwrap_or_default()
}

/// Python's `str.isspace()` of one character (what `str.lstrip()` strips): Unicode's White_Space
/// and the information separators U+001C..U+001F.
pub fn py_isspace(c: char) -> bool {
    matches!(c, '\u{1c}'..='\u{1f}') || c.is_whitespace()
}

/// `_too_deep(parsed)`: `parsed` inside the levels between MAX_DEPTH and DUMPS_MAX_DEPTH is
/// more than orjson writes.
pub fn too_deep(parsed: &Value) -> bool {
    !dumpable(parsed, DUMPS_MAX_DEPTH - MAX_DEPTH)
}

/// `_content(v)`: None where Python gives None (never `Some(Value::Null)`).  A string: empty →
/// None; starting (after `str.lstrip()`'s whitespace) with `{`, `[` or `"`, what
/// `orjson.loads` makes of it — the string itself when orjson raises, or when it is longer than
/// 2 * MAX_DEPTH characters and nests deeper than MAX_DEPTH ([`too_deep`]); any other string
/// as it is.  Anything else: [`plain`].
pub fn content(v: &Value) -> Option<Value> {
    let s = match v {
        Value::Str(s) => s,
        other => {
            return match plain(other.clone(), 0) {
                Value::Null => None,
                x => Some(x),
            }
        }
    };
    if s.is_empty() {
        return None;
    }
    if !matches!(s.chars().find(|&c| !py_isspace(c)), Some('{' | '[' | '"')) {
        return Some(v.clone());
    }
    match parse_json(s) {
        None => Some(v.clone()),
        // (the cheap tests first: a content string is often kilobytes, and rarely deep)
        Some(parsed)
            if parsed.is_container()
                && s.len() > 2 * MAX_DEPTH
                && too_deep(&parsed)
                && s.chars().count() > 2 * MAX_DEPTH =>
        {
            Some(v.clone())
        }
        Some(parsed) => Some(parsed),
    }
}

/// trace_json.py's `_stringified(v)`: a string as it is, anything else
/// `orjson.dumps(_plain(v))` as text ("" where orjson would raise, which `_plain`'s output
/// never makes it).
pub fn stringified(v: &Value) -> String {
    if let Value::Str(s) = v {
        return s.clone();
    }
    dumps(&plain(v.clone(), 0))
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

// --- test hooks --------------------------------------------------------------------------------

/// Test hooks for tests/test_native_genai_value.py (lib.rs calls `register`), each the Python
/// reference's counterpart.
#[cfg(feature = "python")]
pub mod python {
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    use pyo3::types::PyBytes;

    use super::Value;

    /// Adds the hooks to the extension module.
    pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_function(wrap_pyfunction!(parse_dump, m)?)?;
        m.add_function(wrap_pyfunction!(plain_json, m)?)?;
        m.add_function(wrap_pyfunction!(any_value_json, m)?)?;
        m.add_function(wrap_pyfunction!(content_json, m)?)?;
        m.add_function(wrap_pyfunction!(stringified, m)?)?;
        Ok(())
    }

    fn decoded(wire: &[u8]) -> PyResult<Value> {
        super::from_any_value(wire)
            .map_err(|e| PyValueError::new_err(format!("invalid protobuf for AnyValue: {}", e.0)))
    }

    fn json<'py>(py: Python<'py>, v: &Value) -> Bound<'py, PyBytes> {
        let mut out = Vec::new();
        super::write_json(v, &mut out);
        PyBytes::new(py, &out)
    }

    /// `orjson.dumps(orjson.loads(text))`, None where either raises.
    #[pyfunction]
    #[pyo3(name = "_genai_parse_dump")]
    pub fn parse_dump<'py>(py: Python<'py>, text: &str) -> Option<Bound<'py, PyBytes>> {
        let v = super::parse_json(text)?;
        super::dumps(&v).map(|b| PyBytes::new(py, &b))
    }

    /// `orjson.dumps(_plain(orjson.loads(text)))`, None where orjson.loads raises (parsed JSON
    /// is where `_plain` meets ints past i64 and values nested past MAX_DEPTH).
    #[pyfunction]
    #[pyo3(name = "_genai_plain_json")]
    pub fn plain_json<'py>(py: Python<'py>, text: &str) -> Option<Bound<'py, PyBytes>> {
        Some(json(py, &super::plain(super::parse_json(text)?, 0)))
    }

    /// `orjson.dumps(_plain(value_of(AnyValue.FromString(wire))))`; ValueError where upb fails.
    #[pyfunction]
    #[pyo3(name = "_genai_any_value_json")]
    pub fn any_value_json<'py>(py: Python<'py>, wire: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        Ok(json(py, &super::plain(decoded(wire)?, 0)))
    }

    /// `orjson.dumps(_content(value_of(...)))`, None when `_content` gives None.
    #[pyfunction]
    #[pyo3(name = "_genai_content_json")]
    pub fn content_json<'py>(
        py: Python<'py>,
        wire: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        Ok(super::content(&decoded(wire)?).map(|v| json(py, &v)))
    }

    /// `_stringified(value_of(...))`.
    #[pyfunction]
    #[pyo3(name = "_genai_stringified")]
    pub fn stringified(wire: &[u8]) -> PyResult<String> {
        Ok(super::stringified(&decoded(wire)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(text: &str) -> Option<String> {
        parse_json(text)
            .and_then(|v| dumps(&v))
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn loads_then_dumps() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"a":1,"b":2,"a":3}"#, Some(r#"{"a":3,"b":2}"#)),
            ("-0", Some("0")),
            ("-0.0", Some("-0.0")),
            ("1E2", Some("100.0")),
            ("1e16", Some("1e+16")),
            ("1e-7", Some("1e-7")),
            ("0.00001", Some("0.00001")),
            ("1e-6", Some("1e-6")),
            ("18446744073709551615", Some("18446744073709551615")),
            ("18446744073709551616", Some("1.8446744073709552e+19")),
            ("-9223372036854775809", Some("-9.223372036854776e+18")),
            ("1e400", None),
            ("1e-400", Some("0.0")),
            (r#""\ud83d\ude00""#, Some("\"\u{1f600}\"")),
            (r#""\ud800""#, None),
            (r#""\udc00\ud800""#, None),
            (
                "\"\u{7f}\u{2028}\\u0001\\/\"",
                Some("\"\u{7f}\u{2028}\\u0001/\""),
            ),
            (" [1 , 2]\n", Some("[1,2]")),
            ("[1,]", None),
            ("\u{feff}1", None),
            ("NaN", None),
            ("01", None),
            ("1 x", None),
            ("", None),
            ("\u{c}1", None),
        ];
        for (text, want) in cases {
            assert_eq!(dump(text).as_deref(), *want, "{text:?}");
        }
    }

    #[test]
    fn nesting_limits() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_json(&nested(LOADS_MAX_DEPTH)).is_some());
        assert!(parse_json(&nested(LOADS_MAX_DEPTH + 1)).is_none());
        assert!(dump(&nested(DUMPS_MAX_DEPTH)).is_some());
        assert!(dump(&nested(DUMPS_MAX_DEPTH + 1)).is_none());
        // _content: nested deeper than MAX_DEPTH stays a string
        let deep = Value::Str(nested(MAX_DEPTH + 1));
        assert_eq!(content(&deep), Some(deep.clone()));
        let ok = Value::Str(nested(MAX_DEPTH));
        assert_eq!(content(&ok).map(|v| v.depth()), Some(MAX_DEPTH));
    }

    #[test]
    fn content_and_plain() {
        let s = |t: &str| Value::Str(t.to_owned());
        assert_eq!(content(&s("")), None);
        assert_eq!(content(&Value::Null), None);
        assert_eq!(
            content(&s("\u{3000}\u{1c} {\"a\": [1]}")),
            Some(s("\u{3000}\u{1c} {\"a\": [1]}"))
        );
        assert_eq!(
            content(&s(" {\"a\": 18446744073709551615}")),
            Some(Value::Map(Map(vec![(
                "a".into(),
                Value::Int(u64::MAX as i128)
            )])))
        );
        assert_eq!(content(&s("{oops")), Some(s("{oops")));
        assert_eq!(content(&s("plain")), Some(s("plain")));
        assert_eq!(plain(Value::Bytes(b"ab".to_vec()), 0), s("YWI="));
        assert_eq!(
            plain(Value::Int(u64::MAX as i128), 0),
            s("18446744073709551615")
        );
        assert_eq!(plain(Value::List(vec![]), MAX_DEPTH), Value::Null);
        assert_eq!(plain(s("x"), MAX_DEPTH), s("x"));
        assert_eq!(stringified(&s("x")), "x");
        assert_eq!(
            stringified(&Value::List(vec![
                Value::Float(f64::NAN),
                Value::Bytes(vec![0])
            ])),
            "[null,\"AA==\"]"
        );
    }

    #[test]
    fn any_values() {
        use crate::wire::fields::ld;
        let int = |n: u8| vec![0x18, n];
        let elem = |v: &[u8]| ld(1, v);
        // array_value twice: merged; a string between: started anew
        let mut twice = ld(5, &elem(&int(1)));
        twice.extend(ld(5, &elem(&int(2))));
        assert_eq!(
            from_any_value(&twice).unwrap(),
            Value::List(vec![Value::Int(1), Value::Int(2)])
        );
        let mut between = ld(5, &elem(&int(1)));
        between.extend(ld(1, b"s"));
        between.extend(ld(5, &elem(&int(2))));
        assert_eq!(
            from_any_value(&between).unwrap(),
            Value::List(vec![Value::Int(2)])
        );
        // kvlist with a repeated key: the last value at the first position
        let kv = |k: &str, v: u8| ld(1, &[ld(1, k.as_bytes()), ld(2, &int(v))].concat());
        let list = ld(6, &[kv("a", 1), kv("b", 2), kv("a", 3)].concat());
        assert_eq!(
            from_any_value(&list).unwrap(),
            Value::Map(Map(vec![
                ("a".into(), Value::Int(3)),
                ("b".into(), Value::Int(2))
            ]))
        );
        assert_eq!(from_any_value(b"").unwrap(), Value::Null);
        assert!(from_any_value(b"\x0a\x01\xff").is_err());
        assert!(from_any_value(b"\x00\x00").is_err());
        // nested 50 arrays deep: 100 messages, upb's limit
        let nest = |n: usize| (0..n).fold(int(1), |b, _| ld(5, &elem(&b)));
        assert!(from_any_value(&nest(50)).is_ok());
        assert!(from_any_value(&nest(51)).is_err());
    }
}
