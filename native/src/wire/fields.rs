//! Reading and writing protobuf fields in place: a message's field occurrences, attributes
//! (KeyValue) and AnyValue members as upb parses them, and length-delimited fields rewritten
//! with their lengths fixed up (minimal varints, as upb writes them).

use std::borrow::Cow;

use crate::json::decode::{put_varint, varint_len};
use crate::json::encode::{read_varint, skip, WireError};
use crate::wire::otlp::{numbers, N_KV_KEY, N_KV_VALUE};

/// One attribute (KeyValue) on the wire.
#[derive(Clone, Copy, Debug)]
pub struct Kv<'a> {
    pub key: &'a [u8],
    /// the KeyValue's bytes
    pub body: &'a [u8],
    pub(crate) value: &'a [u8],
    /// the value field occurs more than once (upb merges the occurrences)
    pub(crate) multi: bool,
}

impl<'a> Kv<'a> {
    /// The AnyValue's bytes (occurrences concatenated: what upb merges).
    pub fn value_wire(&self) -> Cow<'a, [u8]> {
        if !self.multi {
            return Cow::Borrowed(self.value);
        }
        let mut out = Vec::new();
        for f in Fields::new(self.body) {
            match f {
                Ok(f) if f.number == N_KV_VALUE && f.wire == 2 => out.extend_from_slice(f.data),
                _ => {}
            }
        }
        Cow::Owned(out)
    }
}

// --- reading the wire -------------------------------------------------------------------------

/// One field occurrence: `start..end` of the message's bytes, `data` its value (the payload of
/// a length-delimited field, else the value's bytes).
#[derive(Clone, Copy)]
pub struct F<'a> {
    pub number: u64,
    pub wire: u64,
    pub start: usize,
    pub end: usize,
    pub data: &'a [u8],
}

pub struct Fields<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Fields<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Fields { b, i: 0 }
    }

    #[inline]
    fn varint(b: &[u8], i: &mut usize) -> Result<u64, WireError> {
        // the common case, tags and short lengths: one byte
        match b.get(*i) {
            Some(&x) if x < 0x80 => {
                *i += 1;
                Ok(x as u64)
            }
            _ => read_varint(b, i),
        }
    }

    #[inline(always)]
    fn read(&mut self) -> Result<F<'a>, WireError> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let tag = Self::varint(b, &mut i)?;
        let wire = tag & 7;
        let data;
        if wire == 2 {
            let n = Self::varint(b, &mut i)?;
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| i.checked_add(n))
                .filter(|&e| e <= b.len())
                .ok_or(WireError("truncated field"))?;
            data = &b[i..end];
            i = end;
        } else {
            let v = i;
            skip(b, &mut i, wire, 0)?;
            data = &b[v..i];
        }
        self.i = i;
        Ok(F {
            number: tag >> 3,
            wire,
            start,
            end: i,
            data,
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<F<'a>, WireError>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.i >= self.b.len() {
            return None;
        }
        let got = self.read();
        if got.is_err() {
            self.i = self.b.len();
        }
        Some(got)
    }
}

pub fn parse_kv(body: &[u8]) -> Result<Kv<'_>, WireError> {
    let mut kv = Kv {
        key: b"",
        body,
        value: b"",
        multi: false,
    };
    let mut seen_value = false;
    for f in Fields::new(body) {
        let f = f?;
        if f.wire != 2 {
            continue;
        }
        if f.number == N_KV_KEY {
            kv.key = f.data;
        } else if f.number == N_KV_VALUE {
            if seen_value {
                kv.multi = true;
            }
            seen_value = true;
            kv.value = f.data;
        }
    }
    Ok(kv)
}

/// The wire type of AnyValue oneof member `which` (its index in `numbers().any`): string, array,
/// kvlist and bytes are length-delimited, the double fixed64, the rest varints.
pub fn any_member_wire(which: usize) -> u64 {
    match which {
        0 | 4 | 5 | 6 => 2,
        3 => 1,
        _ => 0,
    }
}

/// The AnyValue's (merged) oneof member as upb parses it: the last member occurrence, with
/// its wire type checked (a mismatch is an unknown field to upb).  `None` for an unset value.
pub fn any_member(value: &[u8]) -> Result<Option<(usize, &[u8])>, WireError> {
    let n = numbers();
    let mut last = None;
    for f in Fields::new(value) {
        let f = f?;
        if let Some(which) = n.any.iter().position(|&x| x == f.number) {
            if f.wire == any_member_wire(which) {
                last = Some((which, f.data));
            }
        }
    }
    Ok(last)
}

/// A scalar AnyValue member, decoded as upb holds it.
#[derive(Debug, PartialEq)]
pub enum Scalar<'a> {
    None,
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Strindex(i32),
}

/// The AnyValue as a scalar; `None` when it is an array or kvlist (or an array / kvlist member
/// occurs at all: occurrences merge), which Python reads itself.
pub fn scalar(value: &[u8]) -> Result<Option<Scalar<'_>>, WireError> {
    let n = numbers();
    for f in Fields::new(value) {
        let f = f?;
        if (f.number == n.any[4] || f.number == n.any[5]) && f.wire == 2 {
            return Ok(None);
        }
    }
    let varint = |d: &[u8]| {
        let mut i = 0;
        read_varint(d, &mut i)
    };
    Ok(Some(match any_member(value)? {
        None => Scalar::None,
        Some((0, d)) => Scalar::Str(d),
        Some((1, d)) => Scalar::Bool(varint(d)? != 0),
        Some((2, d)) => Scalar::Int(varint(d)? as i64),
        Some((3, d)) => Scalar::Double(f64::from_le_bytes(
            d.try_into().map_err(|_| WireError("truncated double"))?,
        )),
        Some((6, d)) => Scalar::Bytes(d),
        Some((7, d)) => Scalar::Strindex(varint(d)? as i32),
        Some(_) => return Ok(None),
    }))
}

/// Appends `b` with its length before it.
pub fn push_len_prefixed(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Writes the tag of the length-delimited field `f` and room for its length (as many bytes as
/// its present length takes); returns where the length goes, for `close`.
#[inline]
pub fn open(out: &mut Vec<u8>, f: &F) -> (usize, usize) {
    put_varint(out, (f.number << 3) | 2);
    let reserve = varint_len(f.data.len() as u64);
    let at = out.len();
    out.resize(at + reserve, 0);
    (at, reserve)
}

/// Writes the length of what was written since `open`, moving it when the length takes fewer
/// or more bytes than reserved.
#[inline]
pub fn close(out: &mut Vec<u8>, (at, reserve): (usize, usize)) {
    let body = at + reserve;
    let len = out.len() - body;
    let need = varint_len(len as u64);
    if need < reserve {
        out.copy_within(body.., at + need);
        out.truncate(out.len() - (reserve - need));
    } else if need > reserve {
        let old = out.len();
        out.resize(old + need - reserve, 0);
        out.copy_within(body..old, at + need);
    }
    let mut n = len as u64;
    let mut i = at;
    while n >= 0x80 {
        out[i] = (n as u8) | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
}

/// The length-delimited field `number` holding `body` (tests build requests with it).
pub fn ld(number: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    put_varint(&mut out, (number << 3) | 2);
    push_len_prefixed(&mut out, body);
    out
}

/// Rewrites one field's payload (its number, its bytes) into the output; false: the field goes.
pub type Each<'f, E> = dyn FnMut(&mut Vec<u8>, u64, &[u8]) -> Result<bool, E> + 'f;

/// Writes message `b` with every length-delimited field whose number is `pick`ed rewritten by
/// `each` (its length fixed up), the rest copied through.
pub fn rewrite<E: From<WireError>>(
    out: &mut Vec<u8>,
    b: &[u8],
    pick: impl Fn(u64) -> bool,
    each: &mut Each<E>,
) -> Result<(), E> {
    let mut pending = 0;
    for f in Fields::new(b) {
        let f = f?;
        if f.wire != 2 || !pick(f.number) {
            continue;
        }
        out.extend_from_slice(&b[pending..f.start]);
        let mark = out.len();
        let at = open(out, &f);
        if each(out, f.number, f.data)? {
            close(out, at);
        } else {
            out.truncate(mark);
        }
        pending = f.end;
    }
    out.extend_from_slice(&b[pending..]);
    Ok(())
}
