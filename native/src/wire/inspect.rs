//! The receiver's intake check on the bytes of an OTLP export request, with no object tree.
//!
//! `inspect` answers "how many items does this request hold" (spans; log records; metric
//! data points, as `signals.py` counts them) only when it is certain that
//!
//! * upb (`FromString`, as Python's protobuf runs it) parses these bytes: every level is
//!   read by the generated field tables of `json::tables` (the installed opentelemetry-proto
//!   descriptors), the way upb reads it: tags of at most 5 bytes and 32 bits with a non-zero
//!   field number, varints of at most 10 bytes, lengths inside their message, fixed-size
//!   values whole, every `string` (at every level: names, keys, AnyValue strings inside
//!   arrays and kvlists, repeated strings) valid UTF-8, sub-messages read recursively and
//!   nested at most `MAX_DEPTH` levels below the root (upb's default limit), packed and
//!   unpacked repeated scalars, packed fixed-size runs a whole number of values; unknown
//!   fields are skipped as upb skips them (varint, fixed, length-delimited);
//! * and the receiver rejects none of its items: every span has a 16-byte non-zero trace id,
//!   an 8-byte non-zero span id and an empty or 8-byte parent id; every log record an empty
//!   or 16-byte non-zero trace id and an empty or 8-byte non-zero span id (the last of a
//!   field given twice counts, as in upb).
//!
//! Anything else gives `None`, and the receiver parses with upb and inspects in Python as
//! before, with the same errors and partial_success: bytes upb refuses, bytes with an item to
//! reject, and whatever is merely unusual, where being stricter than upb costs only that
//! fallback: groups (wire types 3 and 4) and the undefined wire types 6 and 7, a known field
//! with another wire type than its own (upb would keep it as an unknown field), a length of
//! 2^31 - 1 or more, a metric with more than one member of its `data` oneof (upb's replace
//! and merge rules would decide its data points).  So it never says "valid" for bytes upb
//! rejects: accepting them would let data through that fails to parse later.
//!
//! Recursion is once per message level, at most `MAX_DEPTH` deep.

use std::sync::OnceLock;

use crate::json::table::{message_index, Kind};
use crate::json::tables::MESSAGES;

/// Deepest message nesting below the root that upb parses (its default depth limit, the one
/// Python's protobuf uses); the JSON transcoder's `MAX_NESTING` is the same limit.
pub const MAX_DEPTH: u32 = 100;

/// The export request a body claims to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(usize);

impl Signal {
    /// "traces", "logs", "metrics" or the full name of one of their export requests.
    pub fn of(kind: &str) -> Option<Signal> {
        let index = message_index(kind)?;
        roles().root[index].then_some(Signal(index))
    }
}

/// Not certainly valid and clean: the caller falls back to upb.
struct Bail;
type R<T> = Result<T, Bail>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    /// opentelemetry.proto.trace.v1.Span: counted, ids checked
    Span,
    /// opentelemetry.proto.logs.v1.LogRecord: counted, ids checked
    LogRecord,
    /// opentelemetry.proto.metrics.v1.Metric: counts the data points of its `data` member
    Metric,
    /// Gauge, Sum, Histogram, ExponentialHistogram, Summary: their `data_points` (field 1)
    Points,
}

/// What to do with the value after a tag, decided once per (message, tag) from the tables.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// fall back: a group, an undefined wire type, field 0, a known field of another wire type
    Bail,
    /// a varint (a scalar field, or an unknown field skipped)
    Varint,
    Fixed64,
    Fixed32,
    /// a length-delimited value that is only bounds-checked (unknown fields)
    Skip,
    /// a `string`: UTF-8 checked
    Str,
    /// a `bytes` value; `slot` < 3: the Span / LogRecord id it is (trace, span, parent)
    Bytes {
        slot: u8,
    },
    /// a packed run of a repeated scalar of this wire type
    Packed {
        wire_type: u8,
    },
    /// a sub-message; `count`: 1 a member of Metric's `data`, 2 a `data_points` element
    Message {
        index: u8,
        count: u8,
    },
}

/// The op of field `number` with wire type `wire_type` in MESSAGES[index] (role `role`).
fn op_of(index: usize, role: Role, number: u64, wire_type: u32) -> Op {
    let m = &MESSAGES[index];
    if number == 0 {
        return Op::Bail;
    }
    let Some(f) = m.field_by_number(number).map(|k| &m.fields[k]) else {
        return match wire_type {
            0 => Op::Varint,
            1 => Op::Fixed64,
            2 => Op::Skip,
            5 => Op::Fixed32,
            _ => Op::Bail,
        };
    };
    let own = f.kind.wire_type();
    let scalar = match own {
        0 => Op::Varint,
        1 => Op::Fixed64,
        _ => Op::Fixed32,
    };
    if f.packed {
        // a repeated scalar: packed or not, as upb reads either
        return match wire_type {
            2 => Op::Packed {
                wire_type: own as u8,
            },
            w if w == own => scalar,
            _ => Op::Bail,
        };
    }
    if wire_type != own {
        return Op::Bail;
    }
    match f.kind {
        Kind::Message => {
            let count = match role {
                Role::Metric if f.oneof != 0 => 1,
                Role::Points if f.number == 1 => 2,
                _ => 0,
            };
            Op::Message {
                index: f.message as u8,
                count,
            }
        }
        Kind::String => Op::Str,
        Kind::Bytes | Kind::HexId => {
            let slot = match (role, f.name) {
                (Role::Span | Role::LogRecord, "trace_id") => 0,
                (Role::Span | Role::LogRecord, "span_id") => 1,
                (Role::Span, "parent_span_id") => 2,
                _ => 3,
            };
            Op::Bytes { slot }
        }
        _ => scalar,
    }
}

struct Plan {
    role: Role,
    /// whether items can be found inside (it is an item, a Metric or a Points, or reaches one)
    holds_items: bool,
    /// the op of every one-byte tag (field numbers 1 to 15)
    ops: [Op; 128],
}

struct Roles {
    plans: Vec<Plan>,
    root: Vec<bool>,
}

fn roles() -> &'static Roles {
    static ROLES: OnceLock<Roles> = OnceLock::new();
    ROLES.get_or_init(|| {
        assert!(MESSAGES.len() <= 256, "message indexes must fit an Op");
        let mut plans: Vec<Plan> = MESSAGES
            .iter()
            .enumerate()
            .map(|(index, m)| {
                let role = match m.full_name {
                    "opentelemetry.proto.trace.v1.Span" => Role::Span,
                    "opentelemetry.proto.logs.v1.LogRecord" => Role::LogRecord,
                    "opentelemetry.proto.metrics.v1.Metric" => Role::Metric,
                    "opentelemetry.proto.metrics.v1.Gauge"
                    | "opentelemetry.proto.metrics.v1.Sum"
                    | "opentelemetry.proto.metrics.v1.Histogram"
                    | "opentelemetry.proto.metrics.v1.ExponentialHistogram"
                    | "opentelemetry.proto.metrics.v1.Summary" => Role::Points,
                    _ => Role::Other,
                };
                let ops =
                    std::array::from_fn(|t| op_of(index, role, (t >> 3) as u64, (t & 7) as u32));
                Plan {
                    role,
                    holds_items: role != Role::Other,
                    ops,
                }
            })
            .collect();
        // Reaching an item, to a fixed point (message types refer to each other).
        loop {
            let mut grew = false;
            for (index, m) in MESSAGES.iter().enumerate() {
                if !plans[index].holds_items
                    && m.fields
                        .iter()
                        .any(|f| f.kind == Kind::Message && plans[f.message].holds_items)
                {
                    plans[index].holds_items = true;
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        let root = MESSAGES
            .iter()
            .map(|m| {
                matches!(
                    m.full_name,
                    "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"
                        | "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest"
                        | "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"
                )
            })
            .collect();
        Roles { plans, root }
    })
}

/// Items of the request `wire` when it is certainly valid protobuf with no item to reject;
/// `None` otherwise (see the module's documentation).
pub fn inspect(signal: Signal, wire: &[u8]) -> Option<u64> {
    walk(signal, wire, false)
}

/// `inspect` of what the JSON transcoder wrote (`json::transcode`): its strings are UTF-8
/// (checked as the JSON was scanned), its tags, lengths and nesting are its own and within
/// upb's limits, so only what decides the answer is read: the way down to the items, their
/// ids, and each Metric's `data` (the attributes, resources, events and the rest are stepped
/// over). The same answer as `inspect` on those bytes (tests/test_native_inspect.py).
pub fn inspect_transcoded(signal: Signal, wire: &[u8]) -> Option<u64> {
    walk(signal, wire, true)
}

fn walk(signal: Signal, wire: &[u8], transcoded: bool) -> Option<u64> {
    let mut walk = Walk {
        items: 0,
        plans: &roles().plans,
        transcoded,
    };
    walk.message(signal.0, wire, 0).ok()?;
    Some(walk.items)
}

/// A varint of at most 10 bytes at b[*i..] (upb ignores the bits past 64 of a 10th byte).
#[inline(always)]
fn varint(b: &[u8], i: &mut usize) -> R<u64> {
    match b.get(*i) {
        Some(&x) if x < 0x80 => {
            *i += 1;
            Ok(u64::from(x))
        }
        _ => long_varint(b, i),
    }
}

#[inline(never)]
fn long_varint(b: &[u8], i: &mut usize) -> R<u64> {
    let mut value = 0u64;
    for k in 0..10 {
        let Some(&byte) = b.get(*i) else {
            return Err(Bail);
        };
        *i += 1;
        value |= u64::from(byte & 0x7F) << (7 * k);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(Bail)
}

/// A tag as upb reads it: at most 5 bytes, at most 32 bits, field number not 0.
#[inline]
fn tag(b: &[u8], i: &mut usize) -> R<(u64, u32)> {
    let start = *i;
    let key = varint(b, i)?;
    if *i - start > 5 || key > u64::from(u32::MAX) || key >> 3 == 0 {
        return Err(Bail);
    }
    Ok((key >> 3, (key & 7) as u32))
}

/// The bytes of a length-delimited value at b[*i..] (after its tag).
#[inline(always)]
fn delimited<'b>(b: &'b [u8], i: &mut usize) -> R<&'b [u8]> {
    let n = varint(b, i)?;
    if n >= i32::MAX as u64 || n > (b.len() - *i) as u64 {
        return Err(Bail);
    }
    let start = *i;
    *i += n as usize;
    Ok(&b[start..*i])
}

#[inline]
fn fixed(b: &[u8], i: &mut usize, n: usize) -> R<()> {
    if b.len() - *i < n {
        return Err(Bail);
    }
    *i += n;
    Ok(())
}

/// The body of a packed repeated scalar field: whole values only.
fn packed(data: &[u8], wire_type: u32) -> R<()> {
    match wire_type {
        0 => {
            let mut i = 0;
            while i < data.len() {
                varint(data, &mut i)?;
            }
            Ok(())
        }
        1 if data.len().is_multiple_of(8) => Ok(()),
        5 if data.len().is_multiple_of(4) => Ok(()),
        _ => Err(Bail),
    }
}

fn valid_trace_id(id: &[u8]) -> bool {
    id.len() == 16 && id.iter().any(|&x| x != 0)
}

fn valid_span_id(id: &[u8]) -> bool {
    id.len() == 8 && id.iter().any(|&x| x != 0)
}

/// Whether `data` is UTF-8: ASCII words first (most keys and values), std for the rest.
#[inline]
fn utf8(data: &[u8]) -> bool {
    let mut chunks = data.chunks_exact(8);
    let mut high = 0u64;
    for c in &mut chunks {
        high |= u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    }
    for &c in chunks.remainder() {
        high |= u64::from(c);
    }
    high & 0x8080_8080_8080_8080 == 0 || std::str::from_utf8(data).is_ok()
}

struct Walk {
    items: u64,
    plans: &'static [Plan],
    /// the transcoder's bytes: strings not checked, messages without items not entered
    transcoded: bool,
}

impl Walk {
    /// Checks one message of type MESSAGES[index] whose bytes are `b`, `depth` levels below
    /// the root; returns its data points when it is a `Points` message (else 0).
    fn message(&mut self, index: usize, b: &[u8], depth: u32) -> R<u64> {
        let plan = &self.plans[index];
        let role = plan.role;
        // Span: trace_id, span_id, parent_span_id; LogRecord: trace_id, span_id (last wins)
        let mut ids: [&[u8]; 4] = [&[], &[], &[], &[]];
        let mut points = 0u64;
        let mut members = 0u32;
        let mut i = 0;
        while i < b.len() {
            let first = b[i];
            let op = if first < 0x80 {
                i += 1;
                plan.ops[first as usize]
            } else {
                let (number, wire_type) = tag(b, &mut i)?;
                op_of(index, role, number, wire_type)
            };
            match op {
                Op::Varint => {
                    varint(b, &mut i)?;
                }
                Op::Str => {
                    let data = delimited(b, &mut i)?;
                    if !self.transcoded && !utf8(data) {
                        return Err(Bail);
                    }
                }
                Op::Message {
                    index: inner,
                    count,
                } => {
                    let data = delimited(b, &mut i)?;
                    if depth >= MAX_DEPTH {
                        return Err(Bail);
                    }
                    let n = if self.transcoded && !self.plans[inner as usize].holds_items {
                        0 // a data point is counted here, by its `data_points` field
                    } else {
                        self.message(inner as usize, data, depth + 1)?
                    };
                    match count {
                        1 => {
                            members += 1;
                            points = n;
                        }
                        2 => points += 1,
                        _ => {}
                    }
                }
                Op::Bytes { slot } => ids[slot as usize] = delimited(b, &mut i)?,
                Op::Fixed64 => fixed(b, &mut i, 8)?,
                Op::Fixed32 => fixed(b, &mut i, 4)?,
                Op::Skip => {
                    delimited(b, &mut i)?;
                }
                Op::Packed { wire_type } => packed(delimited(b, &mut i)?, u32::from(wire_type))?,
                Op::Bail => return Err(Bail),
            }
        }
        match role {
            Role::Span => {
                let [trace, span, parent, _] = ids;
                if !valid_trace_id(trace)
                    || !valid_span_id(span)
                    || !(parent.is_empty() || parent.len() == 8)
                {
                    return Err(Bail);
                }
                self.items += 1;
            }
            Role::LogRecord => {
                let [trace, span, _, _] = ids;
                if !(trace.is_empty() || valid_trace_id(trace))
                    || !(span.is_empty() || valid_span_id(span))
                {
                    return Err(Bail);
                }
                self.items += 1;
            }
            Role::Metric => {
                if members > 1 {
                    return Err(Bail);
                }
                self.items += points;
            }
            Role::Points => return Ok(points),
            Role::Other => {}
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces() -> Signal {
        Signal::of("traces").unwrap()
    }

    fn ld(number: u8, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 128);
        let mut out = vec![number << 3 | 2, body.len() as u8];
        out.extend_from_slice(body);
        out
    }

    fn span(trace: &[u8], id: &[u8], parent: &[u8]) -> Vec<u8> {
        let mut s = ld(1, trace);
        s.extend(ld(2, id));
        if !parent.is_empty() {
            s.extend(ld(4, parent));
        }
        s.extend(ld(5, b"name"));
        s
    }

    fn request(spans: &[Vec<u8>]) -> Vec<u8> {
        let mut scope = Vec::new();
        for s in spans {
            scope.extend(ld(2, s));
        }
        ld(1, &ld(2, &scope))
    }

    #[test]
    fn counts_clean_spans() {
        let s = span(&[1; 16], &[2; 8], &[3; 8]);
        assert_eq!(inspect(traces(), &request(&[s.clone(), s])), Some(2));
        assert_eq!(inspect(traces(), b""), Some(0));
    }

    #[test]
    fn bad_ids_fall_back() {
        for s in [
            span(&[0; 16], &[2; 8], b""),
            span(&[1; 15], &[2; 8], b""),
            span(&[1; 16], &[0; 8], b""),
            span(&[1; 16], &[2; 8], &[3; 4]),
        ] {
            assert_eq!(inspect(traces(), &request(&[s])), None);
        }
    }

    #[test]
    fn invalid_utf8_and_groups_fall_back() {
        let mut s = span(&[1; 16], &[2; 8], b"");
        s.extend(ld(5, b"\xff"));
        assert_eq!(inspect(traces(), &request(&[s])), None);
        assert_eq!(inspect(traces(), &[0x0b, 0x0c]), None);
        assert_eq!(inspect(traces(), &[0x00, 0x00]), None);
    }

    #[test]
    fn only_requests_are_roots() {
        assert!(Signal::of("logs").is_some() && Signal::of("metrics").is_some());
        assert!(Signal::of("opentelemetry.proto.trace.v1.Span").is_none());
    }
}
