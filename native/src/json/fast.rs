//! The single-pass transcoder: OTLP JSON to protobuf wire bytes while the JSON is scanned,
//! with no tape and no upfront UTF-8 pass (strings are validated as they are scanned; any
//! other byte >= 0x80 is a syntax error anyway).
//!
//! It does the common shapes and gives up (`None`) on anything else: any syntax or field
//! problem, a field given twice (under one name or both, null or not), two members of one
//! oneof.  `decode` then runs the exact path, which alone words errors and applies the rare
//! rules (a syntax error anywhere wins; duplicate keys keep the last value at the first key's
//! place).  Without duplicates, fields in key order with the last value are fields in key
//! order, so whatever this returns is what the exact path writes; the leaf values go through
//! the same writers (`decode::leaf`, `decode::scalar`).

use super::decode::{begin_len, end_len, leaf, put_tag, scalar, Val, MAX_NESTING};
use super::parse::{self, number, plain_run, skip_ws, string, Doc, Node, MAX_DEPTH};
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
        // the wire form is rarely longer than the JSON: one allocation
        out: Vec::with_capacity(input.len() + 16),
        scratch: Doc {
            input,
            text: None,
            nodes: Vec::new(),
            strings: String::new(),
        },
        unescaped: Vec::new(),
        widths: vec![1; MESSAGES.len()],
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
    /// the tape of skipped unknown values
    scratch: Doc<'a>,
    /// the string being read, unescaped (bytes: they go to the wire as they are)
    unescaped: Vec<u8>,
    /// per message type, the width its last length prefix took: reserved for the next one,
    /// messages of a type being mostly alike, so that its body is rarely moved
    widths: Vec<u8>,
}

/// The first of `m`'s fields that `named`, tried from `hint` on, then those before it (fields
/// mostly come in table order).  Order does not matter for the result: no name belongs to two
/// fields (a test checks the tables).
#[inline]
fn search(m: &Message, hint: usize, named: impl Fn(&Field) -> bool) -> Option<usize> {
    let n = m.fields.len();
    let hint = hint.min(n);
    (hint..n)
        .find(|&i| named(&m.fields[i]))
        .or_else(|| (0..hint).find(|&i| named(&m.fields[i])))
}

/// `a == b` without a call to memcmp for the short slices field names are: two overlapping
/// words of 4 or 8 bytes.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    match n {
        _ if b.len() != n => false,
        4..=7 => word::<4>(a, 0) == word(b, 0) && word::<4>(a, n - 4) == word(b, n - 4),
        8..=16 => word::<8>(a, 0) == word(b, 0) && word::<8>(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

#[inline]
fn word<const N: usize>(s: &[u8], at: usize) -> Option<[u8; N]> {
    s.get(at..)?.first_chunk::<N>().copied()
}

/// Reads the string, number, bool or null at `pos` (None for anything else or invalid JSON).
#[inline]
fn scalar_val<'s>(input: &'s [u8], pos: &mut usize, strings: &'s mut Vec<u8>) -> Option<Val<'s>> {
    let at = *pos;
    let literal = |word: &[u8]| input.get(at..at + word.len()) == Some(word);
    match *input.get(at)? {
        b'"' => {
            // the common string, without escapes, straight from the scan
            if let (end, true) = plain_run(input, at + 1) {
                if input.get(end) == Some(&b'"') {
                    *pos = end + 1;
                    return Some(Val::Str(&input[at + 1..end]));
                }
            }
            strings.clear();
            let (node, after) = string(input, at, strings).ok()?;
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
        // Mostly the key is a json_name, quoted as it is (no escapes), of the field after the
        // last one: compared in place, it needs no scan.
        let begin = self.pos + 1;
        let quoted = |f: &Field| {
            let name = f.json_name.as_bytes();
            let end = begin + name.len();
            input.get(end) == Some(&b'"') && input.get(begin..end).is_some_and(|k| same(k, name))
        };
        let (field, after) = match search(m, hint, quoted) {
            Some(i) => (Some(i), begin + m.fields[i].json_name.len() + 1),
            None => {
                self.unescaped.clear();
                let (node, after) = string(input, self.pos, &mut self.unescaped).ok()?;
                let Node::Str { off, len, esc } = node else {
                    return None;
                };
                let key = if esc {
                    &self.unescaped[..]
                } else {
                    &input[off as usize..(off + len) as usize]
                };
                let named = |f: &Field| f.json_name.as_bytes() == key || f.name.as_bytes() == key;
                (search(m, hint, named), after)
            }
        };
        self.pos = skip_ws(input, after);
        if self.byte() != Some(b':') {
            return None;
        }
        self.pos = skip_ws(input, self.pos + 1);
        Some(field)
    }

    /// Past the value at `pos`, validated as the exact parser would.
    fn skip(&mut self) -> Option<()> {
        self.scratch.nodes.clear();
        self.scratch.strings.clear();
        self.pos = parse::value(&mut self.scratch, self.pos, self.depth).ok()?;
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
                    if self.byte() == Some(b'n')
                        && self.input.get(self.pos..self.pos + 4) == Some(b"null")
                    {
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
            if f.kind != Kind::Message {
                return self.leaf(f);
            }
            return self.value(f, nesting);
        }
        let packed = f.packed.then(|| {
            put_tag(&mut self.out, f.number, 2);
            begin_len(&mut self.out, 1)
        });
        if self.open(b'[', b']')? {
            loop {
                if packed.is_some() {
                    let v = scalar_val(self.input, &mut self.pos, &mut self.unescaped)?;
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
            end_len(&mut self.out, start, 1);
        }
        Some(())
    }

    /// Tag and value of one (element of a) non-packed field that is not a message.
    #[inline]
    fn leaf(&mut self, f: &'static Field) -> Option<()> {
        let v = scalar_val(self.input, &mut self.pos, &mut self.unescaped)?;
        leaf(&mut self.out, f, v).ok()
    }

    /// Tag and value of one (element of a) non-packed field.
    fn value(&mut self, f: &'static Field, nesting: u32) -> Option<()> {
        if f.kind != Kind::Message {
            return self.leaf(f);
        }
        if nesting >= MAX_NESTING {
            return None;
        }
        put_tag(&mut self.out, f.number, 2);
        let width = self.widths[f.message] as usize;
        let start = begin_len(&mut self.out, width);
        self.message(&MESSAGES[f.message], nesting + 1)?;
        self.widths[f.message] = end_len(&mut self.out, start, width) as u8;
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
            assert!(
                m.fields.len() <= 64 && m.oneofs.len() <= 8,
                "{}",
                m.full_name
            );
        }
    }
}
