//! OTLP JSON (parsed tape) to protobuf wire bytes, following every rule of the former Python
//! codec (see otlp_router/model/otlp_json.py's docstring): keys by json_name or proto name
//! (both at once is an error), unknown keys ignored, null = not set, duplicate JSON keys keep
//! the last value at the first key's place (as a Python dict does), hex ids, base64 bytes,
//! enum names and numbers, 64-bit integers as numbers or decimal strings, NaN/Infinity
//! strings, oneof exclusivity, MAX_NESTING.  Fields are written in the order their keys come.

use super::error::{DecodeError, Part, Problem, Shown, Step};
use super::parse::{parse, Doc, Node, HEX_DIGITS as HEX};
use super::table::{Field, Kind, Message};
use super::tables::{ENUMS, MESSAGES};

/// Deepest message nesting below the root: upb's own parse limit.
pub const MAX_NESTING: u32 = 100;
const MAX_EXACT_FLOAT_INT: f64 = 9007199254740992.0; // 2**53

type Res<T> = Result<T, Problem>;

fn text(s: &str) -> Part {
    Part::Text(s.to_string())
}

fn problem(parts: Vec<Part>) -> Problem {
    Problem::new(parts)
}

/// Decodes `body` as OTLP JSON of the message `MESSAGES[root]` into protobuf wire bytes.
///
/// The single-pass transcoder (`fast`) does the common shapes; whatever it gives up on
/// (every error among them) is done again here by the exact path, which alone words errors.
pub fn decode(root: usize, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match super::fast::transcode(root, body) {
        Some(wire) => Ok(wire),
        None => exact(root, body),
    }
}

/// The exact path: the whole document parsed into a tape first (a syntax error anywhere wins,
/// as with orjson.loads before), then the fields transcoded from it.
pub fn exact(root: usize, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let doc = parse(body).map_err(DecodeError::Syntax)?;
    let mut d = Decoder {
        doc: &doc,
        out: Vec::with_capacity(body.len() / 2 + 16),
    };
    match doc.nodes[0] {
        Node::Object { .. } => {}
        other => {
            return Err(DecodeError::Problem(problem(vec![
                text("expected a JSON object at the top level, got "),
                Part::Show(show(doc.val(other))),
            ])));
        }
    }
    d.message(&MESSAGES[root], 0, 0)
        .map_err(DecodeError::Problem)?;
    Ok(d.out)
}

struct Decoder<'d, 'a> {
    doc: &'d Doc<'a>,
    out: Vec<u8>,
}

#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(crate) fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

#[inline]
pub(crate) fn put_tag(out: &mut Vec<u8>, number: u32, wire: u32) {
    put_varint(out, ((number << 3) | wire) as u64);
}

/// Reserves `width` bytes for a length prefix; `end_len` fills it in.
#[inline]
pub(crate) fn begin_len(out: &mut Vec<u8>, width: usize) -> usize {
    if width == 1 {
        out.push(0);
    } else {
        out.resize(out.len() + width, 0);
    }
    out.len()
}

/// Writes the length prefix reserved by `begin_len` as the shortest varint, moving the body
/// when that takes another width than reserved; returns the width it took.
#[inline]
pub(crate) fn end_len(out: &mut Vec<u8>, body_start: usize, width: usize) -> usize {
    let len = out.len() - body_start;
    if width == 1 && len < 0x80 {
        out[body_start - 1] = len as u8;
        return 1;
    }
    put_len(out, body_start, width)
}

/// `end_len` for a length that is not the one byte reserved.
#[inline(never)]
fn put_len(out: &mut Vec<u8>, body_start: usize, width: usize) -> usize {
    let len = out.len() - body_start;
    let need = varint_len(len as u64);
    let old = out.len();
    if need > width {
        out.resize(old + need - width, 0);
        out.copy_within(body_start..old, body_start + need - width);
    } else if need < width {
        out.copy_within(body_start..old, body_start - (width - need));
        out.truncate(old - (width - need));
    }
    let mut n = len as u64;
    let mut i = body_start - width;
    while n >= 0x80 {
        out[i] = (n as u8) | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
    need
}

fn b64_value(c: u8, url: bool) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' if !url => Some(62),
        b'/' if !url => Some(63),
        b'-' if url => Some(62),
        b'_' if url => Some(63),
        _ => None,
    }
}

/// Standard or URL-safe base64 (one alphabet throughout), padding optional but, when given,
/// complete; bits past the last byte are ignored (binascii's strict mode does not check them).
pub fn base64_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    let data_len = s.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    let pad_given = s.len() - data_len;
    let data = &s[..data_len];
    if pad_given > 2 {
        return false;
    }
    let url = if data.iter().all(|&c| b64_value(c, false).is_some()) {
        false
    } else if data.iter().all(|&c| b64_value(c, true).is_some()) {
        true
    } else {
        return false;
    };
    let padding = (4 - data_len % 4) % 4;
    if padding == 3 || (pad_given != 0 && pad_given != padding) {
        return false;
    }
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in data {
        acc = (acc << 6) | b64_value(c, url).unwrap_or(0) as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    true
}

fn is_decimal(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_json_number(s: &[u8]) -> bool {
    let mut i = 0;
    let n = s.len();
    if i < n && s[i] == b'-' {
        i += 1;
    }
    if i < n && s[i] == b'0' {
        i += 1;
    } else if i < n && (b'1'..=b'9').contains(&s[i]) {
        while i < n && s[i].is_ascii_digit() {
            i += 1;
        }
    } else {
        return false;
    }
    if i < n && s[i] == b'.' {
        i += 1;
        let start = i;
        while i < n && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if i < n && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        if i < n && (s[i] == b'+' || s[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < n && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == n
}

const NO_SLOT: u32 = u32::MAX;

/// A JSON value as the leaf writers see it, whichever parser read it (strings unescaped).
#[derive(Clone, Copy)]
pub(crate) enum Val<'s> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'s [u8]),
    List,
    Object,
}

impl<'s> Val<'s> {
    /// The string's text (valid UTF-8: the parsers validated it); "" for other values.
    fn text(self) -> &'s str {
        match self {
            Val::Str(b) => std::str::from_utf8(b).unwrap_or(""),
            _ => "",
        }
    }
}

impl<'a> Doc<'a> {
    pub(crate) fn val(&self, node: Node) -> Val<'_> {
        match node {
            Node::Null => Val::Null,
            Node::Bool(b) => Val::Bool(b),
            Node::Int(i) => Val::Int(i),
            Node::UInt(u) => Val::UInt(u),
            Node::Float(x) => Val::Float(x),
            Node::Str { off, len, esc } => Val::Str(self.bytes(off, len, esc)),
            Node::Array { .. } => Val::List,
            Node::Object { .. } => Val::Object,
        }
    }
}

fn show(v: Val) -> Shown {
    match v {
        Val::Null => Shown::Null,
        Val::Bool(b) => Shown::Bool(b),
        Val::Int(i) => Shown::Int(i as i128),
        Val::UInt(u) => Shown::Int(u as i128),
        Val::Float(x) => Shown::Float(x),
        Val::Str(_) => Shown::Str(v.text().to_string()),
        Val::List => Shown::List,
        Val::Object => Shown::Object,
    }
}

fn expected(what: &str, v: Val) -> Problem {
    problem(vec![
        Part::Text(format!("expected {what}, got ")),
        Part::Show(show(v)),
    ])
}

/// The error for a message nested deeper than upb parses.
fn too_deep() -> Problem {
    problem(vec![Part::Text(format!(
        "nested too deep: protobuf accepts at most {MAX_NESTING} levels of messages below the root"
    ))])
}

impl<'d, 'a> Decoder<'d, 'a> {
    /// The slot of a key in `m`: 2 * field index, + 1 for the proto name when it differs from
    /// the json_name.
    #[inline]
    fn slot(m: &Message, key: &[u8]) -> Option<usize> {
        for (i, f) in m.fields.iter().enumerate() {
            if f.json_name.as_bytes() == key {
                return Some(2 * i);
            }
            if f.name.as_bytes() == key {
                return Some(2 * i + usize::from(f.name != f.json_name));
            }
        }
        None
    }

    fn message(&mut self, m: &'static Message, node: usize, nesting: u32) -> Res<()> {
        let doc = self.doc;
        let len = match doc.nodes[node] {
            Node::Object { len, .. } => len,
            other => return Err(expected("an object", doc.val(other))),
        };
        // the last value of each known key, in the order the keys first came (Python dict order)
        let mut values = [NO_SLOT; 64];
        let mut order = [0u8; 64];
        let mut n_order = 0;
        let mut i = node + 1;
        for _ in 0..len {
            let key = match doc.nodes[i] {
                Node::Str { off, len, esc } => doc.bytes(off, len, esc),
                _ => &[],
            };
            let value = i + 1;
            i = doc.next(value);
            if let Some(slot) = Self::slot(m, key) {
                if values[slot] == NO_SLOT {
                    order[n_order] = slot as u8;
                    n_order += 1;
                }
                values[slot] = value as u32;
            }
        }
        let mut seen = [u8::MAX; 32];
        let mut oneof_set: [&'static str; 8] = [""; 8];
        for &slot in &order[..n_order] {
            let slot = slot as usize;
            let value = values[slot] as usize;
            if let Node::Null = doc.nodes[value] {
                continue;
            }
            let f = &m.fields[slot / 2];
            let key = if slot.is_multiple_of(2) {
                f.json_name
            } else {
                f.name
            };
            let other = seen[slot / 2];
            if other != u8::MAX {
                let other = if other % 2 == 0 { f.json_name } else { f.name };
                return Err(problem(vec![Part::Text(format!(
                    "field given twice, also as '{other}'"
                ))])
                .at(Step::Key(key)));
            }
            seen[slot / 2] = slot as u8;
            if f.oneof != 0 {
                let o = f.oneof as usize - 1;
                if !oneof_set[o].is_empty() {
                    return Err(problem(vec![Part::Text(format!(
                        "only one of oneof '{}' may be set, '{}' is set too",
                        m.oneofs[o], oneof_set[o]
                    ))])
                    .at(Step::Key(key)));
                }
                oneof_set[o] = key;
            }
            self.field(f, value, nesting)
                .map_err(|e| e.at(Step::Key(key)))?;
        }
        Ok(())
    }

    fn field(&mut self, f: &'static Field, value: usize, nesting: u32) -> Res<()> {
        if !f.repeated {
            return self.value(f, value, nesting);
        }
        let doc = self.doc;
        let len = match doc.nodes[value] {
            Node::Array { len, .. } => len,
            other => return Err(expected("a list", doc.val(other))),
        };
        let mut e = value + 1;
        if f.packed {
            put_tag(&mut self.out, f.number, 2);
            let start = begin_len(&mut self.out, 1);
            for i in 0..len as usize {
                scalar(&mut self.out, f, doc.val(doc.nodes[e]))
                    .map_err(|p| p.at(Step::Index(i)))?;
                e = doc.next(e);
            }
            end_len(&mut self.out, start, 1);
        } else {
            for i in 0..len as usize {
                self.value(f, e, nesting)
                    .map_err(|p| p.at(Step::Index(i)))?;
                e = doc.next(e);
            }
        }
        Ok(())
    }

    /// Tag and value of one (element of a) non-packed field.
    fn value(&mut self, f: &'static Field, value: usize, nesting: u32) -> Res<()> {
        if f.kind != Kind::Message {
            return leaf(&mut self.out, f, self.doc.val(self.doc.nodes[value]));
        }
        if nesting >= MAX_NESTING {
            return Err(too_deep());
        }
        put_tag(&mut self.out, f.number, 2);
        let start = begin_len(&mut self.out, 1);
        self.message(&MESSAGES[f.message], value, nesting + 1)?;
        end_len(&mut self.out, start, 1);
        Ok(())
    }
}

/// Tag and value of one (element of a) non-packed field that is not a message.
#[inline]
pub(crate) fn leaf(out: &mut Vec<u8>, f: &'static Field, v: Val) -> Res<()> {
    match f.kind {
        Kind::String => {
            let Val::Str(bytes) = v else {
                return Err(expected("a string", v));
            };
            put_tag(out, f.number, 2);
            put_varint(out, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
        Kind::HexId => {
            let Val::Str(s) = v else {
                return Err(expected("a hex string", v));
            };
            if !s.len().is_multiple_of(2) || s.iter().any(|&c| HEX[c as usize] > 15) {
                return Err(expected(f.id_digits, v));
            }
            put_tag(out, f.number, 2);
            put_varint(out, (s.len() / 2) as u64);
            out.extend(
                s.chunks_exact(2)
                    .map(|pair| HEX[pair[0] as usize] << 4 | HEX[pair[1] as usize]),
            );
        }
        Kind::Bytes => {
            let Val::Str(s) = v else {
                return Err(expected("a base64 string", v));
            };
            put_tag(out, f.number, 2);
            let start = begin_len(out, 1);
            if !base64_decode(s, out) {
                return Err(expected("a base64 string", v));
            }
            end_len(out, start, 1);
        }
        kind => {
            put_tag(out, f.number, kind.wire_type());
            scalar(out, f, v)?;
        }
    }
    Ok(())
}

/// Wire value (no tag) of a number, bool or enum.
pub(crate) fn scalar(out: &mut Vec<u8>, f: &'static Field, v: Val) -> Res<()> {
    let kind = f.kind;
    match kind {
        Kind::Bool => match v {
            Val::Bool(b) => out.push(b as u8),
            _ => return Err(expected("true or false", v)),
        },
        Kind::Double => {
            let x = floating(kind, v)?;
            out.extend_from_slice(&x.to_le_bytes());
        }
        Kind::Float => {
            let x = floating(kind, v)?;
            out.extend_from_slice(&(x as f32).to_le_bytes());
        }
        Kind::Enum if matches!(v, Val::Str(_)) => {
            let name = v.text();
            let e = &ENUMS[f.enum_index];
            match e.values.iter().find(|(n, _)| *n == name) {
                Some(&(_, number)) => put_varint(out, number as i64 as u64),
                None => {
                    return Err(problem(vec![
                        Part::Text(format!("unknown {} value ", e.name)),
                        Part::Show(show(v)),
                    ]))
                }
            }
        }
        _ => {
            let n = integer(kind, v)?;
            match kind {
                Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Enum => {
                    put_varint(out, n as i64 as u64)
                }
                Kind::Sint32 | Kind::Sint64 => {
                    let n = n as i64;
                    put_varint(out, ((n << 1) ^ (n >> 63)) as u64)
                }
                Kind::Fixed32 | Kind::Sfixed32 => out.extend_from_slice(&(n as u32).to_le_bytes()),
                _ => out.extend_from_slice(&(n as u64).to_le_bytes()),
            }
        }
    }
    Ok(())
}

/// The value of a decimal string of at most 19 digits (no sign, leading zeros allowed): the
/// common int64 field (times in nanoseconds), read eight digits at a time without the general
/// path's i128 parse.
#[inline]
fn short_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    let mut rest = s;
    while let Some((chunk, tail)) = rest.split_first_chunk::<8>() {
        n = n * 100_000_000 + eight_digits(u64::from_le_bytes(*chunk))?;
        rest = tail;
    }
    for &c in rest {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + d as u64;
    }
    Some(n)
}

/// The value of eight ASCII digits read as a little-endian word (the first digit lowest), or
/// None if one is not a digit.
#[inline]
fn eight_digits(w: u64) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let d = w.wrapping_sub(ONES * b'0' as u64);
    // every byte was b'0'..=b'9': no borrow out of a byte, and no byte above 9
    if (w & (ONES * 0xF0)) != ONES * 0x30 || (d.wrapping_add(ONES * 6) & (ONES * 0xF0)) != 0 {
        return None;
    }
    // pairs, then fours, then all eight: each step joins neighbouring lanes (high*mult + low)
    let d = (d * 10 + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d * 100 + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((d * 10_000 + (d >> 32)) & 0xFFFF_FFFF)
}

fn integer(kind: Kind, v: Val) -> Res<i128> {
    const EXPECTED: &str = "an integer (number or decimal string)";
    let n: i128 = match v {
        Val::Int(i) => i as i128,
        Val::UInt(u) => u as i128,
        Val::Str(b) => match short_decimal(b) {
            Some(n) => n as i128,
            None => {
                let s = v.text();
                if !is_decimal(s.as_bytes()) {
                    return Err(expected(EXPECTED, v));
                }
                if s.trim_start_matches('-').trim_start_matches('0').len() > 20 {
                    return Err(problem(vec![
                        Part::Show(show(v)),
                        Part::Text(format!(" is out of range for {}", kind.name())),
                    ]));
                }
                s.parse::<i128>().unwrap_or(0)
            }
        },
        Val::Float(x) => {
            if x.fract() != 0.0 {
                return Err(problem(vec![
                    text("expected an integer, got "),
                    Part::Show(Shown::Float(x)),
                ]));
            }
            if x.abs() > MAX_EXACT_FLOAT_INT {
                return Err(problem(vec![
                    Part::Show(Shown::Float(x)),
                    text(
                        " is too large to be exact as a JSON number; write it as a decimal string",
                    ),
                ]));
            }
            x as i128
        }
        _ => return Err(expected(EXPECTED, v)),
    };
    let (low, high) = kind.range();
    if n < low || n > high {
        let name = if kind == Kind::Enum {
            "int32"
        } else {
            kind.name()
        };
        return Err(problem(vec![Part::Text(format!(
            "{n} is out of range for {name}"
        ))]));
    }
    Ok(n)
}

fn floating(kind: Kind, v: Val) -> Res<f64> {
    const EXPECTED: &str = "a number, \"NaN\", \"Infinity\" or \"-Infinity\"";
    let (x, named_infinity) = match v {
        Val::Str(_) => {
            let s = v.text();
            match s {
                "NaN" => (f64::NAN, false),
                "Infinity" => (f64::INFINITY, true),
                "-Infinity" => (f64::NEG_INFINITY, true),
                _ if is_json_number(s.as_bytes()) => (s.parse::<f64>().unwrap_or(f64::NAN), false),
                _ => return Err(expected(EXPECTED, v)),
            }
        }
        Val::Int(i) => (i as f64, false),
        Val::UInt(u) => (u as f64, false),
        Val::Float(x) => (x, false),
        _ => return Err(expected(EXPECTED, v)),
    };
    let out_of_range = (x.is_infinite() && !named_infinity)
        || (kind == Kind::Float && (x as f32).is_infinite() && !x.is_infinite());
    if out_of_range {
        return Err(problem(vec![
            Part::Show(show(v)),
            Part::Text(format!(" is out of range for {}", kind.name())),
        ]));
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::short_decimal;

    #[test]
    fn short_decimal_reads_what_parse_reads() {
        let mut cases: Vec<String> = ["0", "7", "00000000", "12345678", "1796219268770661752"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = 1 + (x % 19) as usize;
            let s: String = format!("{:019}", x % 10_000_000_000_000_000_000)[19 - digits..].into();
            cases.push(s.clone());
            // one byte that is not a digit, anywhere
            let mut bad = s.into_bytes();
            let at = (x >> 32) as usize % bad.len();
            bad[at] = [b'/', b':', b'a', b' ', 0xB0][(x >> 40) as usize % 5];
            assert_eq!(short_decimal(&bad), None, "{bad:?}");
        }
        for s in cases {
            assert_eq!(short_decimal(s.as_bytes()), s.parse::<u64>().ok(), "{s}");
        }
        assert_eq!(short_decimal(b""), None);
        assert_eq!(short_decimal(b"12345678901234567890"), None);
    }
}
