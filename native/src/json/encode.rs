//! Protobuf wire bytes to compact OTLP JSON, byte for byte what the former Python codec wrote
//! (its generated readers building a dict, then `orjson.dumps`): keys are json_names in the
//! order fields first appear on the wire, a repeated field is one list at its first place, a
//! singular field seen twice keeps its last value; 64-bit integers are decimal strings, ids
//! lowercase hex, other bytes standard padded base64, non-finite doubles "NaN"/"Infinity"/
//! "-Infinity", finite ones in orjson's float notation; unknown fields are skipped.

use super::error::format_float;
use super::parse::{first_marked, HIGH, ONES};
use super::table::{Field, Kind, Message};
use super::tables::MESSAGES;

#[derive(Debug)]
pub struct WireError(pub &'static str);

type Res<T> = Result<T, WireError>;

pub fn encode(root: usize, wire: &[u8]) -> Res<Vec<u8>> {
    let mut e = Encoder {
        out: Vec::with_capacity(wire.len() * 2 + 16),
        num: String::new(),
        entries: Vec::new(),
    };
    e.message(&MESSAGES[root], wire, 0)?;
    Ok(e.out)
}

struct Encoder {
    out: Vec<u8>,
    num: String,
    /// the fields of the messages being written, innermost last (one allocation per document)
    entries: Vec<Entry>,
}

#[inline]
pub(crate) fn read_varint(b: &[u8], i: &mut usize) -> Res<u64> {
    let mut r: u64 = 0;
    let mut shift = 0;
    loop {
        let Some(&x) = b.get(*i) else {
            return Err(WireError("truncated varint"));
        };
        *i += 1;
        if shift < 64 {
            r |= ((x & 0x7f) as u64) << shift;
        }
        if x < 0x80 {
            return Ok(r);
        }
        shift += 7;
        if shift > 70 {
            return Err(WireError("varint too long"));
        }
    }
}

fn take<'b>(b: &'b [u8], i: &mut usize, n: usize) -> Res<&'b [u8]> {
    let end = i
        .checked_add(n)
        .filter(|&e| e <= b.len())
        .ok_or(WireError("truncated field"))?;
    let s = &b[*i..end];
    *i = end;
    Ok(s)
}

/// Skips the value of a field with wire type `wire` at b[i..].
pub(crate) fn skip(b: &[u8], i: &mut usize, wire: u64, depth: u32) -> Res<()> {
    match wire {
        0 => {
            read_varint(b, i)?;
        }
        1 => {
            take(b, i, 8)?;
        }
        5 => {
            take(b, i, 4)?;
        }
        2 => {
            let n = read_varint(b, i)? as usize;
            take(b, i, n)?;
        }
        3 => {
            if depth > 100 {
                return Err(WireError("groups nested too deep"));
            }
            loop {
                let tag = read_varint(b, i)?;
                if tag & 7 == 4 {
                    return Ok(());
                }
                skip(b, i, tag & 7, depth + 1)?;
            }
        }
        _ => return Err(WireError("unexpected wire type")),
    }
    Ok(())
}

/// One field occurrence: its value at `start..end` of the message's bytes.
#[derive(Clone, Copy)]
struct Entry {
    field: u8,
    packed: bool,
    start: u32,
    end: u32,
}

fn fixed<const N: usize>(data: &[u8]) -> Res<[u8; N]> {
    data.try_into()
        .map_err(|_| WireError("truncated fixed-size value"))
}

pub(crate) fn push_u64(out: &mut Vec<u8>, v: u64) {
    let (buf, i) = decimal(v);
    out.extend_from_slice(&buf[i..]);
}

/// The decimal digits of `v`: they are `buf[i..]` of `(buf, i)`.
pub(crate) fn decimal(mut v: u64) -> ([u8; 20], usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    (buf, i)
}

pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

const HEX: &[u8; 16] = b"0123456789abcdef";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl Encoder {
    fn message(&mut self, m: &'static Message, b: &[u8], depth: u32) -> Res<()> {
        if depth > 200 {
            return Err(WireError("messages nested too deep"));
        }
        let base = self.entries.len();
        let mut i = 0;
        while i < b.len() {
            let tag = read_varint(b, &mut i)?;
            let wire = tag & 7;
            let start = i;
            skip(b, &mut i, wire, 0)?;
            let Some(fi) = m.field_by_number(tag >> 3) else {
                continue;
            };
            let f = &m.fields[fi];
            let packed = f.packed && wire == 2;
            if !packed && wire != f.kind.wire_type() as u64 {
                continue;
            }
            let mut start = start;
            if wire == 2 {
                read_varint(b, &mut start)?;
            }
            self.entries.push(Entry {
                field: fi as u8,
                packed,
                start: start as u32,
                end: i as u32,
            });
        }
        self.out.push(b'{');
        let mut done = 0u64;
        let mut first = true;
        let end = self.entries.len();
        for k in base..end {
            let e = self.entries[k];
            if done & (1 << e.field) != 0 {
                continue;
            }
            done |= 1 << e.field;
            let f = &m.fields[e.field as usize];
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.out.push(b'"');
            self.out.extend_from_slice(f.json_name.as_bytes());
            self.out.extend_from_slice(b"\":");
            if f.repeated {
                self.out.push(b'[');
                let mut first_value = true;
                for x in k..end {
                    let e2 = self.entries[x];
                    if e2.field != e.field {
                        continue;
                    }
                    let data = &b[e2.start as usize..e2.end as usize];
                    if e2.packed {
                        self.packed(f, data, &mut first_value)?;
                    } else {
                        if !first_value {
                            self.out.push(b',');
                        }
                        first_value = false;
                        self.value(f, data, depth)?;
                    }
                }
                self.out.push(b']');
            } else {
                let last = (k..end)
                    .rev()
                    .map(|x| self.entries[x])
                    .find(|x| x.field == e.field)
                    .unwrap_or(e);
                self.value(f, &b[last.start as usize..last.end as usize], depth)?;
            }
        }
        self.entries.truncate(base);
        self.out.push(b'}');
        Ok(())
    }

    fn packed(&mut self, f: &Field, data: &[u8], first: &mut bool) -> Res<()> {
        let mut i = 0;
        let size = match f.kind.wire_type() {
            1 => 8,
            5 => 4,
            _ => 0,
        };
        while i < data.len() {
            let start = i;
            if size == 0 {
                read_varint(data, &mut i)?;
            } else if i + size <= data.len() {
                i += size;
            } else {
                break; // a partial trailing element: the Python reader dropped it too
            }
            if !*first {
                self.out.push(b',');
            }
            *first = false;
            self.value(f, &data[start..i], 0)?;
        }
        Ok(())
    }

    /// One value: `data` is the varint bytes, the 4 or 8 fixed bytes, or the payload.
    fn value(&mut self, f: &Field, data: &[u8], depth: u32) -> Res<()> {
        let quoted = f.kind.is_64bit();
        match f.kind {
            Kind::Message => return self.message(&MESSAGES[f.message], data, depth + 1),
            Kind::String => {
                let s = std::str::from_utf8(data)
                    .map_err(|_| WireError("invalid UTF-8 in a string field"))?;
                self.string(s);
                return Ok(());
            }
            Kind::HexId => {
                self.out.push(b'"');
                for &c in data {
                    self.out.push(HEX[(c >> 4) as usize]);
                    self.out.push(HEX[(c & 15) as usize]);
                }
                self.out.push(b'"');
                return Ok(());
            }
            Kind::Bytes => {
                self.out.push(b'"');
                push_base64(&mut self.out, data);
                self.out.push(b'"');
                return Ok(());
            }
            Kind::Double => {
                let x = f64::from_le_bytes(fixed(data)?);
                self.float(x);
                return Ok(());
            }
            Kind::Float => {
                let x = f32::from_le_bytes(fixed(data)?);
                self.float(x as f64);
                return Ok(());
            }
            _ => {}
        }
        if quoted {
            self.out.push(b'"');
        }
        match f.kind {
            Kind::Fixed64 => push_u64(&mut self.out, u64::from_le_bytes(fixed(data)?)),
            Kind::Sfixed64 => push_i64(&mut self.out, i64::from_le_bytes(fixed(data)?)),
            Kind::Fixed32 => push_u64(&mut self.out, u32::from_le_bytes(fixed(data)?) as u64),
            Kind::Sfixed32 => push_i64(&mut self.out, i32::from_le_bytes(fixed(data)?) as i64),
            kind => {
                let mut j = 0;
                let x = read_varint(data, &mut j)?;
                match kind {
                    Kind::Bool => {
                        self.out
                            .extend_from_slice(if x != 0 { b"true" } else { b"false" })
                    }
                    Kind::Sint32 | Kind::Sint64 => {
                        push_i64(&mut self.out, (x >> 1) as i64 ^ -((x & 1) as i64))
                    }
                    Kind::Int32 | Kind::Int64 | Kind::Enum => push_i64(&mut self.out, x as i64),
                    _ => push_u64(&mut self.out, x),
                }
            }
        }
        if quoted {
            self.out.push(b'"');
        }
        Ok(())
    }

    fn float(&mut self, x: f64) {
        if x.is_nan() {
            self.out.extend_from_slice(b"\"NaN\"");
        } else if x.is_infinite() {
            self.out.extend_from_slice(if x > 0.0 {
                b"\"Infinity\""
            } else {
                b"\"-Infinity\""
            });
        } else {
            self.num.clear();
            format_float(x, -5, 16, 1, &mut self.num);
            self.out.extend_from_slice(self.num.as_bytes());
        }
    }

    /// A JSON string as orjson writes it.
    fn string(&mut self, s: &str) {
        push_json_string(&mut self.out, s);
    }
}

/// Standard base64 with padding (what `base64.b64encode` writes), no quotes.
pub(crate) fn push_base64(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        out.push(B64[(v >> 18) as usize & 63]);
        out.push(B64[(v >> 12) as usize & 63]);
        out.push(if n > 1 {
            B64[(v >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if n > 2 { B64[v as usize & 63] } else { b'=' });
    }
}

/// A JSON string as orjson writes it: `"` `\` and control characters escaped, the rest raw
/// (U+007F, U+2028 and U+2029 included).
pub(crate) fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 1);
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Whole words while none needs escaping (most of a prompt or a completion).
        i += first_marked(&bytes[i..], escape_flags);
        let Some(&c) = bytes.get(i) else {
            break;
        };
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[run..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        i += 1;
        run = i;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Nonzero where any of the eight bytes of `w` is a control character, `"` or `\` (the
/// classic has-zero-byte tests: a byte's high bit is set in the result only where the test
/// holds, or after a byte where it holds, so "none" is exact).
#[inline]
fn escape_flags(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    below_space | zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64))
}

#[cfg(test)]
mod tests {
    use super::{escape_flags, push_json_string};

    /// The escaping rule one byte at a time, as push_json_string wrote it before it took words.
    fn reference(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for &c in s.as_bytes() {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                0..=0x1f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
                _ => out.push(c),
            }
        }
        out.push(b'"');
        out
    }

    #[test]
    fn a_word_needs_escaping_exactly_when_one_of_its_bytes_does() {
        for c in 0..=255u8 {
            let escaped = c < 0x20 || c == b'"' || c == b'\\';
            for at in 0..8 {
                for fill in [b'a', 0x7f, 0x80, 0xff, b'!', b']'] {
                    let mut w = [fill; 8];
                    w[at] = c;
                    assert_eq!(
                        escape_flags(u64::from_le_bytes(w)) != 0,
                        escaped,
                        "{c:#x} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn strings_are_written_as_the_byte_by_byte_rule_writes_them() {
        let pieces = [
            "a", "é", "\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{7f}", "\u{2028}", "😀", " ", "\t",
        ];
        let mut seed = 7u64;
        for _ in 0..20_000 {
            let mut s = String::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 58) as usize;
            for k in 0..len {
                let pick = (seed.rotate_left(k as u32 * 5) % pieces.len() as u64) as usize;
                s.push_str(if k % 3 == 0 {
                    "plain text "
                } else {
                    pieces[pick]
                });
            }
            let mut out = Vec::new();
            push_json_string(&mut out, &s);
            assert_eq!(out, reference(&s), "{s:?}");
        }
    }
}
