//! A JSON parser into a flat tape of nodes, accepting exactly what orjson accepts.
//!
//! The whole document is parsed (and so validated) before anything is transcoded, as
//! `orjson.loads` did before the Python codec looked at the data: a syntax error anywhere
//! wins over a problem with a field.  What orjson accepts, and so what this parser accepts:
//! RFC 8259 JSON in UTF-8 without a byte order mark; no NaN or Infinity literals, no trailing
//! commas, no leading zeros; escapes must form valid UTF-16 (no lone surrogates); numbers
//! that overflow a double are errors; integers that fit in 64 bits (signed, or unsigned when
//! not negative) are integers, longer ones are doubles; at most 1024 nested arrays/objects.
//! Strings borrow the input when they have no escapes.  The parser is iterative: hostile
//! depth cannot exhaust the stack.

/// orjson's nesting limit: 1024 nested arrays/objects parse, 1025 do not.
pub const MAX_DEPTH: usize = 1024;

#[derive(Clone, Copy, Debug)]
pub enum Node {
    Null,
    Bool(bool),
    /// an integer literal that fits in i64
    Int(i64),
    /// an integer literal above i64::MAX that fits in u64
    UInt(u64),
    /// a number with a fraction or exponent, or an integer beyond 64 bits
    Float(f64),
    /// a string: bytes `off..off+len` of the input, or of `Doc::strings` when `esc`
    Str {
        off: u32,
        len: u32,
        esc: bool,
    },
    /// `len` elements follow; `end` is the index of the node after the last of them
    Array {
        len: u32,
        end: u32,
    },
    /// `len` members follow, each a Str key node then the value; `end` as for arrays
    Object {
        len: u32,
        end: u32,
    },
}

pub struct Doc<'a> {
    pub input: &'a [u8],
    /// the input as text, once it is known to be UTF-8 (the runs of escaped strings are then
    /// sliced from it, not checked again)
    pub text: Option<&'a str>,
    pub nodes: Vec<Node>,
    /// unescaped strings (text: what an escape makes is a char, so only the runs between
    /// escapes are checked, once, and a string is never checked again when it is read)
    pub strings: String,
}

/// Why the input is not JSON (the Python layer reports orjson's own message).
#[derive(Debug)]
pub struct SyntaxError {
    pub what: &'static str,
    pub at: usize,
}

impl<'a> Doc<'a> {
    pub fn bytes(&self, off: u32, len: u32, esc: bool) -> &[u8] {
        let (off, len) = (off as usize, len as usize);
        if esc {
            &self.strings.as_bytes()[off..off + len]
        } else {
            &self.input[off..off + len]
        }
    }

    /// The string of a Str node (valid UTF-8: the input was validated), sliced from the text
    /// it lies in without a second check where that is known to be UTF-8.
    #[inline]
    pub fn str_of(&self, node: Node) -> &str {
        let Node::Str { off, len, esc } = node else {
            return "";
        };
        let range = off as usize..(off + len) as usize;
        match (esc, self.text) {
            (true, _) => self.strings.get(range),
            (false, Some(text)) => text.get(range),
            (false, None) => std::str::from_utf8(&self.input[range]).ok(),
        }
        .unwrap_or("")
    }

    /// Index of the node after the value at `i` (and all it contains).
    #[inline]
    pub fn next(&self, i: usize) -> usize {
        match self.nodes[i] {
            Node::Array { end, .. } | Node::Object { end, .. } => end as usize,
            _ => i + 1,
        }
    }
}

struct Open {
    node: usize,
    count: u32,
    object: bool,
}

#[inline]
fn err<T>(what: &'static str, at: usize) -> Result<T, SyntaxError> {
    Err(SyntaxError { what, at })
}

pub fn parse(input: &[u8]) -> Result<Doc<'_>, SyntaxError> {
    match std::str::from_utf8(input) {
        Ok(text) => parse_str(text),
        Err(e) => err("invalid UTF-8", e.valid_up_to()),
    }
}

/// [`parse`] of text already known to be UTF-8 (its strings are checked again as they are
/// scanned, but nothing else needs to be).
pub fn parse_str(text: &str) -> Result<Doc<'_>, SyntaxError> {
    let input = text.as_bytes();
    if input.len() > u32::MAX as usize {
        return err("document too large", 0);
    }
    let mut doc = Doc {
        input,
        text: Some(text),
        nodes: Vec::with_capacity(input.len() / 8 + 4),
        strings: String::new(),
    };
    let end = value(&mut doc, skip_ws(input, 0), 0)?;
    let end = skip_ws(input, end);
    if end != input.len() {
        return err("unexpected content after document", end);
    }
    Ok(doc)
}

/// Parses the value at `pos` onto the tape, inside `depth` already open arrays/objects;
/// returns the index after it.  (The single-pass transcoder skips unknown fields with it.)
pub(crate) fn value(doc: &mut Doc, mut pos: usize, depth: usize) -> Result<usize, SyntaxError> {
    let input = doc.input;
    let mut stack: Vec<Open> = Vec::new();
    'value: loop {
        // a value starts at pos
        let Some(&b) = input.get(pos) else {
            return err("unexpected end of data", pos);
        };
        match b {
            b'{' | b'[' => {
                if depth + stack.len() >= MAX_DEPTH {
                    return err("depth limit exceeded", pos);
                }
                let object = b == b'{';
                stack.push(Open {
                    node: doc.nodes.len(),
                    count: 0,
                    object,
                });
                doc.nodes.push(Node::Null); // placeholder, set when the container closes
                pos = skip_ws(input, pos + 1);
                let close = if object { b'}' } else { b']' };
                if input.get(pos) == Some(&close) {
                    stack.pop();
                    let end = doc.nodes.len() as u32;
                    let last = doc.nodes.len() - 1;
                    doc.nodes[last] = if object {
                        Node::Object { len: 0, end }
                    } else {
                        Node::Array { len: 0, end }
                    };
                    pos += 1;
                } else {
                    if object {
                        pos = key(doc, pos)?;
                    }
                    continue 'value;
                }
            }
            b'"' => {
                let (node, after) = string(input, pos, &mut doc.tape())?;
                doc.nodes.push(node);
                pos = after;
            }
            b't' => pos = literal(doc, pos, b"true", Node::Bool(true))?,
            b'f' => pos = literal(doc, pos, b"false", Node::Bool(false))?,
            b'n' => pos = literal(doc, pos, b"null", Node::Null)?,
            b'-' | b'0'..=b'9' => {
                let (node, after) = number(input, pos)?;
                doc.nodes.push(node);
                pos = after;
            }
            _ => return err("unexpected character", pos),
        }
        // a value ended at pos: continue or close the enclosing containers
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(pos);
            };
            top.count += 1;
            pos = skip_ws(input, pos);
            let close = if top.object { b'}' } else { b']' };
            match input.get(pos) {
                Some(b',') => {
                    pos = skip_ws(input, pos + 1);
                    if top.object {
                        pos = key(doc, pos)?;
                    }
                    continue 'value;
                }
                Some(&c) if c == close => {
                    let end = doc.nodes.len() as u32;
                    doc.nodes[top.node] = if top.object {
                        Node::Object {
                            len: top.count,
                            end,
                        }
                    } else {
                        Node::Array {
                            len: top.count,
                            end,
                        }
                    };
                    stack.pop();
                    pos += 1;
                }
                Some(_) => return err("unexpected character", pos),
                None => return err("unexpected end of data", pos),
            }
        }
    }
}

/// Parses `"key" :` at pos (after whitespace) and returns where the value starts.
fn key(doc: &mut Doc, pos: usize) -> Result<usize, SyntaxError> {
    if doc.input.get(pos) != Some(&b'"') {
        return err("expected a string key", pos);
    }
    let (node, after) = string(doc.input, pos, &mut doc.tape())?;
    doc.nodes.push(node);
    let pos = skip_ws(doc.input, after);
    if doc.input.get(pos) != Some(&b':') {
        return err("expected ':'", pos);
    }
    Ok(skip_ws(doc.input, pos + 1))
}

#[inline]
pub(crate) fn skip_ws(input: &[u8], mut pos: usize) -> usize {
    // one comparison for the common case, a byte that is not whitespace
    while let Some(&c) = input.get(pos) {
        if c > b' ' || !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        pos += 1;
    }
    pos
}

fn literal(doc: &mut Doc, pos: usize, word: &[u8], node: Node) -> Result<usize, SyntaxError> {
    if doc.input.len() >= pos + word.len() && &doc.input[pos..pos + word.len()] == word {
        doc.nodes.push(node);
        Ok(pos + word.len())
    } else {
        err("invalid literal", pos)
    }
}

pub(crate) fn number(input: &[u8], start: usize) -> Result<(Node, usize), SyntaxError> {
    let mut pos = start;
    let negative = input[pos] == b'-';
    if negative {
        pos += 1;
    }
    let digits = pos;
    match input.get(pos) {
        Some(b'0') => {
            pos += 1;
            if let Some(b'0'..=b'9') = input.get(pos) {
                return err("number with leading zero", start);
            }
        }
        Some(b'1'..=b'9') => {
            while let Some(b'0'..=b'9') = input.get(pos) {
                pos += 1;
            }
        }
        _ => return err("no digit after sign", start),
    }
    let int_end = pos;
    let mut integer = true;
    if input.get(pos) == Some(&b'.') {
        integer = false;
        pos += 1;
        if !matches!(input.get(pos), Some(b'0'..=b'9')) {
            return err("no digit after decimal point", pos);
        }
        while let Some(b'0'..=b'9') = input.get(pos) {
            pos += 1;
        }
    }
    if let Some(b'e' | b'E') = input.get(pos) {
        integer = false;
        pos += 1;
        if let Some(b'+' | b'-') = input.get(pos) {
            pos += 1;
        }
        if !matches!(input.get(pos), Some(b'0'..=b'9')) {
            return err("no digit after exponent", pos);
        }
        while let Some(b'0'..=b'9') = input.get(pos) {
            pos += 1;
        }
    }
    if integer && int_end - digits <= 20 {
        let mut n: u64 = 0;
        let mut overflow = false;
        for &d in &input[digits..int_end] {
            match n
                .checked_mul(10)
                .and_then(|n| n.checked_add((d - b'0') as u64))
            {
                Some(v) => n = v,
                None => {
                    overflow = true;
                    break;
                }
            }
        }
        if !overflow {
            if !negative {
                return Ok((
                    if n <= i64::MAX as u64 {
                        Node::Int(n as i64)
                    } else {
                        Node::UInt(n)
                    },
                    pos,
                ));
            }
            if n <= 1u64 << 63 {
                return Ok((Node::Int((n as i64).wrapping_neg()), pos));
            }
        }
    }
    // ASCII by construction
    let text = std::str::from_utf8(&input[start..pos]).map_err(|_| SyntaxError {
        what: "number",
        at: start,
    })?;
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok((Node::Float(x), pos)),
        _ => err("number is infinity when parsed as double", start),
    }
}

/// The value of each byte as a hex digit (either case), 0xFF where it is none.
pub(crate) static HEX_DIGITS: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The four hex digits at `pos` (of a `\u` escape), None unless all four are.
#[inline]
fn hex4(input: &[u8], pos: usize) -> Option<u32> {
    let d = input.get(pos..pos + 4)?;
    let [a, b, c, e] = [d[0], d[1], d[2], d[3]].map(|x| HEX_DIGITS[x as usize] as u32);
    // a digit is below 16, so any 0xFF leaves bits above the four a digit has
    ((a | b | c | e) < 16).then_some(a << 12 | b << 8 | c << 4 | e)
}

/// Where [`string`] puts what it unescapes: bytes for the transcoder, which writes them to the
/// wire as they are, or the tape's text ([`Tape`]), whose strings are read as `str`.
pub(crate) trait Unescaped {
    fn len(&self) -> usize;
    /// `input[range]`, which [`plain_run`] found valid UTF-8
    fn run(&mut self, input: &[u8], range: std::ops::Range<usize>);
    fn byte(&mut self, ascii: u8);
    fn char(&mut self, c: char);
}

impl Unescaped for Vec<u8> {
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
    #[inline]
    fn run(&mut self, input: &[u8], range: std::ops::Range<usize>) {
        self.extend_from_slice(&input[range]);
    }
    #[inline]
    fn byte(&mut self, ascii: u8) {
        self.push(ascii);
    }
    #[inline]
    fn char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        // byte by byte: a call of memcpy for one to four bytes costs more than the bytes
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            self.push(b);
        }
    }
}

/// A tape's unescaped strings: what an escape makes is a char and the runs between escapes are
/// sliced from the document's text, so no string is checked for UTF-8 again when it is read.
struct Tape<'t, 's> {
    text: Option<&'t str>,
    out: &'s mut String,
}

impl Unescaped for Tape<'_, '_> {
    #[inline]
    fn len(&self) -> usize {
        self.out.len()
    }
    #[inline]
    fn run(&mut self, input: &[u8], range: std::ops::Range<usize>) {
        // A document not yet known to be UTF-8 (a value the transcoder skips) has its run
        // checked again: the crate forbids unchecked conversion to a str.
        let run = match self.text {
            Some(text) => text.get(range),
            None => std::str::from_utf8(&input[range]).ok(),
        };
        // plain_run checked the run and ends it on an ASCII byte, so both always hold
        self.out
            .push_str(run.expect("a run plain_run found UTF-8, cut at ASCII bytes"));
    }
    #[inline]
    fn byte(&mut self, ascii: u8) {
        self.out.push(ascii as char);
    }
    #[inline]
    fn char(&mut self, c: char) {
        self.out.push(c);
    }
}

impl Doc<'_> {
    fn tape(&mut self) -> Tape<'_, '_> {
        Tape {
            text: self.text,
            out: &mut self.strings,
        }
    }
}

pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
pub(crate) const HIGH: u64 = 0x8080_8080_8080_8080;

/// Length of the well-formed UTF-8 sequence at `at` whose lead byte is >= 0x80 (Unicode's
/// table 3-7: no overlong forms, surrogates or code points past U+10FFFF), 0 if it is not one.
#[inline]
fn utf8_sequence(input: &[u8], at: usize) -> usize {
    let byte = |i: usize| input.get(at + i).copied().unwrap_or(0);
    let cont = |i: usize| byte(i) & 0xC0 == 0x80;
    let (len, second) = match byte(0) {
        0xC2..=0xDF => (2, 0x80..=0xBF),
        0xE0 => (3, 0xA0..=0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80..=0xBF),
        0xED => (3, 0x80..=0x9F),
        0xF0 => (4, 0x90..=0xBF),
        0xF1..=0xF3 => (4, 0x80..=0xBF),
        0xF4 => (4, 0x80..=0x8F),
        _ => return 0,
    };
    if second.contains(&byte(1)) && (2..len).all(cont) {
        len
    } else {
        0
    }
}

/// Where the first byte `flags` marks in `b` is, judged eight bytes at a time (two words a
/// test while they last: one branch for sixteen bytes): its index, or, where no whole word
/// holds one, the length of the whole words (the tail of fewer than eight is the caller's).
/// `flags` sets a byte's high bit where the byte is marked, and at most above a marked one
/// besides (the classic has-zero-byte tests), so the lowest mark of a word is exact.
#[inline]
pub(crate) fn first_marked(b: &[u8], flags: impl Fn(u64) -> u64) -> usize {
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("eight bytes"));
    let at = |found: u64| (found.trailing_zeros() / 8) as usize;
    let mut n = 0;
    let mut pairs = b.chunks_exact(16);
    for pair in &mut pairs {
        let (x, y) = pair.split_at(8);
        let (x, y) = (flags(word(x)), flags(word(y)));
        if x | y != 0 {
            return n + if x != 0 { at(x) } else { 8 + at(y) };
        }
        n += 16;
    }
    match pairs.remainder().get(..8).map(|w| flags(word(w))) {
        Some(0) => n + 8,
        Some(x) => n + at(x),
        None => n,
    }
}

/// Index of the first '"', '\\', control character or byte that does not start valid UTF-8
/// at or after `pos` (the input's length if none), and whether it is valid UTF-8 up to there
/// (so no caller needs a separate UTF-8 pass). A word at a time while it is plain ASCII.
#[inline]
pub(crate) fn plain_run(input: &[u8], mut pos: usize) -> (usize, bool) {
    let flags = |w: u64| {
        let quote = w ^ (ONES * b'"' as u64);
        let backslash = w ^ (ONES * b'\\' as u64);
        ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w)
            | w)
            & HIGH
    };
    loop {
        pos += first_marked(input.get(pos..).unwrap_or_default(), flags);
        match input.get(pos) {
            None | Some(b'"' | b'\\' | 0..=0x1F) => return (pos, true),
            Some(0x20..=0x7F) => pos += 1,
            Some(_) => match utf8_sequence(input, pos) {
                0 => return (pos, false),
                n => pos += n,
            },
        }
    }
}

/// Parses the string whose opening quote is at `start`: its node (escaped strings are
/// unescaped onto the end of `strings`) and the index after the closing quote.  Its UTF-8 is
/// validated here, for callers that did not validate the whole input beforehand.
#[inline]
pub(crate) fn string(
    input: &[u8],
    start: usize,
    strings: &mut impl Unescaped,
) -> Result<(Node, usize), SyntaxError> {
    let begin = start + 1;
    let (mut pos, valid) = plain_run(input, begin);
    if !valid {
        return err("invalid UTF-8", pos);
    }
    match input.get(pos) {
        None => return err("unexpected end of data", pos),
        Some(b'"') => {
            let node = Node::Str {
                off: begin as u32,
                len: (pos - begin) as u32,
                esc: false,
            };
            return Ok((node, pos + 1));
        }
        Some(b'\\') => {}
        Some(_) => return err("unexpected control character in string", pos),
    }
    let off = strings.len();
    strings.run(input, begin..pos);
    loop {
        match input.get(pos) {
            None => return err("unexpected end of data", pos),
            Some(b'"') => {
                let len = strings.len() - off;
                let node = Node::Str {
                    off: off as u32,
                    len: len as u32,
                    esc: true,
                };
                return Ok((node, pos + 1));
            }
            Some(b'\\') => {
                let e = *input.get(pos + 1).ok_or(SyntaxError {
                    what: "unexpected end of data",
                    at: pos,
                })?;
                pos += 2;
                let c = match e {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        let hi = hex4(input, pos).ok_or(SyntaxError {
                            what: "invalid escape",
                            at: pos,
                        })?;
                        pos += 4;
                        let code = if (0xD800..0xDC00).contains(&hi) {
                            if input.get(pos) != Some(&b'\\') || input.get(pos + 1) != Some(&b'u') {
                                return err("no low surrogate in string", pos);
                            }
                            let lo = hex4(input, pos + 2).ok_or(SyntaxError {
                                what: "invalid escape",
                                at: pos,
                            })?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return err("invalid low surrogate in string", pos);
                            }
                            pos += 6;
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        } else if (0xDC00..0xE000).contains(&hi) {
                            return err("invalid high surrogate in string", pos);
                        } else {
                            hi
                        };
                        let ch = char::from_u32(code).ok_or(SyntaxError {
                            what: "invalid escape",
                            at: pos,
                        })?;
                        strings.char(ch);
                        continue;
                    }
                    _ => return err("invalid escaped sequence in string", pos),
                };
                strings.byte(c);
            }
            Some(&c) if c < 0x20 => return err("unexpected control character in string", pos),
            Some(_) => {
                let run = pos;
                let (end, valid) = plain_run(input, pos);
                if !valid {
                    return err("invalid UTF-8", end);
                }
                pos = end;
                strings.run(input, run..pos);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The string at the start of `json` as each sink unescapes it (a string without escapes
    /// is its bytes in the input, given to none): the transcoder's bytes, the tape's text when
    /// the document is known to be UTF-8, and when it is not yet.
    fn both(json: &str) -> Result<(Vec<u8>, String, String), &'static str> {
        let mut bytes = Vec::new();
        let (node, _) = string(json.as_bytes(), 0, &mut bytes).map_err(|e| e.what)?;
        let mut texts = [String::new(), String::new()];
        for (text, out) in [Some(json), None].into_iter().zip(&mut texts) {
            string(json.as_bytes(), 0, &mut Tape { text, out }).map_err(|e| e.what)?;
        }
        let [known, checked] = texts;
        Ok(match node {
            Node::Str { esc: true, .. } => (bytes, known, checked),
            _ => {
                let inside = &json[1..json.len() - 1];
                (inside.into(), inside.into(), inside.into())
            }
        })
    }

    #[test]
    fn every_sink_unescapes_to_the_same_text() {
        for (json, want) in [
            (r#""plain""#, "plain"),
            (r#""a\nb\tc\\d\"e\/f\b\f\r""#, "a\nb\tc\\d\"e/f\u{8}\u{c}\r"),
            (r#""\u4e2d\u6587，\u00E9t\u00e9""#, "中文，été"),
            (r#""\ud83d\ude00 smile""#, "😀 smile"),
            (r#""ünï \u00fc cödé""#, "ünï ü cödé"),
            (r#""\u0000\u001F""#, "\u{0}\u{1f}"),
        ] {
            let (bytes, known, checked) = both(json).unwrap();
            assert_eq!(std::str::from_utf8(&bytes).unwrap(), want, "{json}");
            assert_eq!(known, want, "{json}");
            assert_eq!(checked, want, "{json}");
        }
    }

    #[test]
    fn a_bad_escape_is_refused_with_its_reason() {
        for (json, what) in [
            (r#""\u12G4""#, "invalid escape"),
            (r#""\u00""#, "invalid escape"),
            (r#""\ud800""#, "no low surrogate in string"),
            (r#""\ud800\u0041""#, "invalid low surrogate in string"),
            (r#""\udc00""#, "invalid high surrogate in string"),
            (r#""\x""#, "invalid escaped sequence in string"),
            ("\"a\\", "unexpected end of data"),
        ] {
            assert_eq!(both(json).unwrap_err(), what, "{json}");
        }
    }

    #[test]
    fn hex4_reads_four_digits_of_either_case_and_nothing_else() {
        assert_eq!(hex4(b"00e9", 0), Some(0xe9));
        assert_eq!(hex4(b"FFff", 0), Some(0xffff));
        assert_eq!(hex4(b"x1a2B", 1), Some(0x1a2b));
        for bad in [&b"12g4"[..], b"12 4", b"123", b"\xff123", b"-123"] {
            assert_eq!(hex4(bad, 0), None, "{bad:?}");
        }
    }
}
