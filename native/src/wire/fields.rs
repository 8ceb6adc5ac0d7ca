//! Reading protobuf wire bytes with no object tree: field occurrences, OTLP attributes (KeyValue)
//! and their scalar AnyValues as upb holds them, and the field numbers of the three export
//! requests' resource -> scope -> item nesting, read off the generated tables.  Privacy
//! (`crate::privacy`) and routing (`crate::routing`) both walk requests with these.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::json::encode::{read_varint, skip, WireError};
use crate::json::tables::MESSAGES;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub fn from_name(name: &str) -> Option<Signal> {
        match name {
            "traces" => Some(Signal::Traces),
            "logs" => Some(Signal::Logs),
            "metrics" => Some(Signal::Metrics),
            _ => None,
        }
    }
}

/// A walk's failure: bytes that are not the protobuf they claim to be, or a Python hook's error.
#[derive(Debug)]
pub enum Error<E> {
    Wire(&'static str),
    Hook(E),
}

impl<E> From<WireError> for Error<E> {
    fn from(e: WireError) -> Self {
        Error::Wire(e.0)
    }
}

pub const N_KV_KEY: u64 = 1;
pub const N_KV_VALUE: u64 = 2;

/// The field numbers of one signal's nesting: request -> resource_x -> scope_x -> items.
pub struct Layout {
    /// the request's resource_x list
    pub request_items: u64,
    /// resource_x: the Resource, the scope_x list and the schema URL
    pub resource: u64,
    pub scopes: u64,
    pub resource_schema: u64,
    /// scope_x: the InstrumentationScope, the items and the schema URL
    pub scope: u64,
    pub items: u64,
    pub scope_schema: u64,
}

pub fn number(message: &str, field: &str) -> u64 {
    let full = format!("opentelemetry.proto.{message}");
    let m = MESSAGES
        .iter()
        .find(|m| m.full_name == full)
        .unwrap_or_else(|| panic!("no message {full}"));
    m.fields
        .iter()
        .find(|f| f.name == field)
        .unwrap_or_else(|| panic!("no field {full}.{field}"))
        .number as u64
}

/// Traces, logs, metrics (in `Signal` order).
pub fn layouts() -> &'static [Layout; 3] {
    static L: OnceLock<[Layout; 3]> = OnceLock::new();
    L.get_or_init(|| {
        let layout = |request: &str,
                      items_of_request: &str,
                      resource: &str,
                      scopes_field: &str,
                      scope: &str,
                      items_field: &str| Layout {
            request_items: number(request, items_of_request),
            resource: number(resource, "resource"),
            scopes: number(resource, scopes_field),
            resource_schema: number(resource, "schema_url"),
            scope: number(scope, "scope"),
            items: number(scope, items_field),
            scope_schema: number(scope, "schema_url"),
        };
        assert_eq!(number("common.v1.KeyValue", "key"), N_KV_KEY);
        assert_eq!(number("common.v1.KeyValue", "value"), N_KV_VALUE);
        [
            layout(
                "collector.trace.v1.ExportTraceServiceRequest",
                "resource_spans",
                "trace.v1.ResourceSpans",
                "scope_spans",
                "trace.v1.ScopeSpans",
                "spans",
            ),
            layout(
                "collector.logs.v1.ExportLogsServiceRequest",
                "resource_logs",
                "logs.v1.ResourceLogs",
                "scope_logs",
                "logs.v1.ScopeLogs",
                "log_records",
            ),
            layout(
                "collector.metrics.v1.ExportMetricsServiceRequest",
                "resource_metrics",
                "metrics.v1.ResourceMetrics",
                "scope_metrics",
                "metrics.v1.ScopeMetrics",
                "metrics",
            ),
        ]
    })
}

/// AnyValue's string_value, bool_value, int_value, double_value, array_value, kvlist_value,
/// bytes_value, string_value_strindex.
pub fn any_numbers() -> &'static [u64; 8] {
    static A: OnceLock<[u64; 8]> = OnceLock::new();
    A.get_or_init(|| {
        let any = |f: &str| number("common.v1.AnyValue", f);
        [
            any("string_value"),
            any("bool_value"),
            any("int_value"),
            any("double_value"),
            any("array_value"),
            any("kvlist_value"),
            any("bytes_value"),
            any("string_value_strindex"),
        ]
    })
}

/// One attribute (KeyValue) on the wire.
#[derive(Clone, Copy, Debug)]
pub struct Kv<'a> {
    pub key: &'a [u8],
    /// the KeyValue's bytes
    pub body: &'a [u8],
    value: &'a [u8],
    /// the value field occurs more than once (upb merges the occurrences)
    multi: bool,
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

    #[inline]
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

/// The AnyValue's (merged) oneof member as upb parses it: the last member occurrence, with
/// its wire type checked (a mismatch is an unknown field to upb).  `None` for an unset value.
pub fn any_member(value: &[u8]) -> Result<Option<(usize, &[u8])>, WireError> {
    let mut last = None;
    for f in Fields::new(value) {
        let f = f?;
        if let Some(which) = any_numbers().iter().position(|&x| x == f.number) {
            let wire = match which {
                0 | 4 | 5 | 6 => 2,
                3 => 1,
                _ => 0,
            };
            if f.wire == wire {
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
    for f in Fields::new(value) {
        let f = f?;
        if (f.number == any_numbers()[4] || f.number == any_numbers()[5]) && f.wire == 2 {
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
