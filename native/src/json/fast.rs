//! The single-pass transcoder: OTLP JSON to protobuf wire bytes while the JSON is scanned,
//! with no tape and no upfront UTF-8 pass (only strings holding bytes >= 0x80 are validated;
//! anything else non-ASCII is a syntax error anyway).
//!
//! It does the common shapes and gives up (`None`) on anything else: any syntax or field
//! problem, a field given twice (under one name or both, null or not), two members of one
//! oneof.  `decode` then runs the exact path, which alone words errors and applies the rare
//! rules (a syntax error anywhere wins; duplicate keys keep the last value at the first key's
//! place).  Without duplicates, fields in key order with the last value are fields in key
//! order, so whatever this returns is what the exact path writes; the leaf values go through
//! the same writers (`decode::leaf`, `decode::scalar`).

use super::decode::{begin_len, end_len, leaf, put_tag, scalar, Val, MAX_NESTING};
use super::parse::{self, number, skip_ws, string, Doc, Node, MAX_DEPTH};
use super::table::{Field, Kind, Message};
use super::tables::MESSAGES;

/// `MESSAGES[root]` from OTLP JSON `input`, or None to leave it to the exact path.
pub fn transcode(root: usize, input: &[u8]) -> Option<Vec<u8>> {
    if input.len() > u32::MAX as usize {
        return None;
    }
    let mut t = Fast {
        input,
        pos: skip_ws(input, 0),
        depth: 0,
        out: Vec::with_capacity(input.len() / 2 + 16),
        scratch: Doc {
            input,
            nodes: Vec::new(),
            strings: Vec::new(),
        },
    };
    t.message(&MESSAGES[root], 0)?;
    (skip_ws(input, t.pos) == input.len()).then_some(t.out)
}

struct Fast<'a> {
    input: &'a [u8],
    pos: usize,
    /// open JSON arrays and objects
    depth: usize,
    out: Vec<u8>,
    /// unescaped strings, and the tape of skipped unknown values
    scratch: Doc<'a>,
}

/// The index of the field named `key` (json_name or proto name) in `m`, searching from `hint`
/// (fields mostly come in table order).  Order does not matter: no name belongs to two fields
/// (a test checks the tables).
#[inline]
fn find(m: &Message, key: &[u8], hint: usize) -> Option<usize> {
    let named = |f: &Field| f.json_name.as_bytes() == key || f.name.as_bytes() == key;
    let fields = m.fields;
    let hint = hint.min(fields.len());
    (hint..fields.len())
        .chain(0..hint)
        .find(|&i| named(&fields[i]))
}

/// Whether `input[start..end]` (a string or skipped value holding bytes >= 0x80) is UTF-8.
#[inline]
fn utf8(input: &[u8], start: usize, end: usize) -> bool {
    std::str::from_utf8(&input[start..end]).is_ok()
}

/// Reads the string, number, bool or null at `pos` (None for anything else or invalid JSON).
#[inline]
fn scalar_val<'s>(
    input: &'s [u8],
    pos: &mut usize,
    strings: &'s mut Vec<u8>,
) -> Option<Val<'s>> {
    let at = *pos;
    let literal = |word: &[u8]| input.get(at..at + word.len()) == Some(word);
    match *input.get(at)? {
        b'"' => {
            strings.clear();
            let (node, after, non_ascii) = string(input, at, strings).ok()?;
            if non_ascii && !utf8(input, at, after) {
                return None;
            }
            *pos = after;
            match node {
                Node::Str {
                    off,
                    len,
                    esc: false,
                } => Some(Val::Str(&input[off as usize..(off + len) as usize])),
                _ => Some(Val::Str(strings)),
            }
        }
        b'-' | b'0'..=b'9' => {
            let (node, after) = number(input, at).ok()?;
            *pos = after;
            match node {
                Node::Int(i) => Some(Val::Int(i)),
                Node::UInt(u) => Some(Val::UInt(u)),
                Node::Float(x) => Some(Val::Float(x)),
                _ => None,
            }
        }
        b't' if literal(b"true") => {
            *pos = at + 4;
            Some(Val::Bool(true))
        }
        b'f' if literal(b"false") => {
            *pos = at + 5;
            Some(Val::Bool(false))
        }
        b'n' if literal(b"null") => {
            *pos = at + 4;
            Some(Val::Null)
        }
        _ => None,
    }
}

impl Fast<'_> {
    #[inline]
    fn byte(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// After a member or element: past the ',' (and whitespace) to the next one, Some(true);
    /// past the closing `close`, Some(false).
    #[inline]
    fn next(&mut self, close: u8) -> Option<bool> {
        self.pos = skip_ws(self.input, self.pos);
        match self.byte()? {
            b',' => {
                self.pos = skip_ws(self.input, self.pos + 1);
                Some(true)
            }
            c if c == close => {
                self.pos += 1;
                self.depth -= 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Past `open` and whitespace; Some(false) when the container closes right away.
    #[inline]
    fn open(&mut self, open: u8, close: u8) -> Option<bool> {
        if self.byte() != Some(open) || self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        self.pos = skip_ws(self.input, self.pos + 1);
        if self.byte() == Some(close) {
            self.pos += 1;
            self.depth -= 1;
            return Some(false);
        }
        Some(true)
    }

    /// The key at `pos` looked up in `m`, and `pos` moved to its value.
    #[inline]
    fn key(&mut self, m: &Message, hint: usize) -> Option<Option<usize>> {
        let input = self.input;
        if self.byte() != Some(b'"') {
            return None;
        }
        self.scratch.strings.clear();
        let (node, after, non_ascii) = string(input, self.pos, &mut self.scratch.strings).ok()?;
        if non_ascii && !utf8(input, self.pos, after) {
            return None;
        }
        let Node::Str { off, len, esc } = node else {
            return None;
        };
        let field = find(m, self.scratch.bytes(off, len, esc), hint);
        self.pos = skip_ws(input, after);
        if self.byte() != Some(b':') {
            return None;
        }
        self.pos = skip_ws(input, self.pos + 1);
        Some(field)
    }

    /// Past the value at `pos`, validated as the exact parser would.
    fn skip(&mut self) -> Option<()> {
        let start = self.pos;
        self.scratch.nodes.clear();
        self.scratch.strings.clear();
        let end = parse::value(&mut self.scratch, start, self.depth).ok()?;
        if !utf8(self.input, start, end) {
            return None;
        }
        self.pos = end;
        Some(())
    }

    fn message(&mut self, m: &'static Message, nesting: u32) -> Option<()> {
        if !self.open(b'{', b'}')? {
            return Some(());
        }
        let mut seen = 0u64;
        let mut oneofs = 0u8;
        let mut hint = 0;
        loop {
            match self.key(m, hint)? {
                None => self.skip()?,
                Some(i) => {
                    hint = i + 1;
                    let bit = 1u64.checked_shl(i as u32)?;
                    if seen & bit != 0 {
                        return None;
                    }
                    seen |= bit;
                    if self.input.get(self.pos..self.pos + 4) == Some(b"null") {
                        self.pos += 4;
                    } else {
                        let f = &m.fields[i];
                        if f.oneof != 0 {
                            let bit = 1u8.checked_shl(f.oneof as u32 - 1)?;
                            if oneofs & bit != 0 {
                                return None;
                            }
                            oneofs |= bit;
                        }
                        self.field(f, nesting)?;
                    }
                }
            }
            if !self.next(b'}')? {
                return Some(());
            }
        }
    }

    fn field(&mut self, f: &'static Field, nesting: u32) -> Option<()> {
        if !f.repeated {
            return self.value(f, nesting);
        }
        let packed = f.packed.then(|| {
            put_tag(&mut self.out, f.number, 2);
            begin_len(&mut self.out)
        });
        if self.open(b'[', b']')? {
            loop {
                if packed.is_some() {
                    let v = scalar_val(self.input, &mut self.pos, &mut self.scratch.strings)?;
                    scalar(&mut self.out, f, v).ok()?;
                } else {
                    self.value(f, nesting)?;
                }
                if !self.next(b']')? {
                    break;
                }
            }
        }
        if let Some(start) = packed {
            end_len(&mut self.out, start);
        }
        Some(())
    }

    /// Tag and value of one (element of a) non-packed field.
    fn value(&mut self, f: &'static Field, nesting: u32) -> Option<()> {
        if f.kind != Kind::Message {
            let v = scalar_val(self.input, &mut self.pos, &mut self.scratch.strings)?;
            return leaf(&mut self.out, f, v).ok();
        }
        if nesting >= MAX_NESTING {
            return None;
        }
        put_tag(&mut self.out, f.number, 2);
        let start = begin_len(&mut self.out);
        self.message(&MESSAGES[f.message], nesting + 1)?;
        end_len(&mut self.out, start);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tables::MESSAGES;

    /// `find` may search in any order only because no name belongs to two fields.
    #[test]
    fn no_name_belongs_to_two_fields() {
        for m in MESSAGES {
            for (i, f) in m.fields.iter().enumerate() {
                for (j, g) in m.fields.iter().enumerate() {
                    if i != j {
                        for name in [f.json_name, f.name] {
                            assert!(name != g.json_name && name != g.name, "{}", m.full_name);
                        }
                    }
                }
            }
            assert!(m.fields.len() <= 64 && m.oneofs.len() <= 8, "{}", m.full_name);
        }
    }
}
