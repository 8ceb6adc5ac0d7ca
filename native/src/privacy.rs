//! Privacy on the protobuf wire (issue #17): what `otlp_router/routing/privacy.py` did per
//! attribute on upb messages, done on the bytes of an export request, with the same result byte
//! for byte (the output of a canonical upb serialisation is the canonical serialisation of the
//! stripped message).
//!
//! A `Rules` value is the conventions table's privacy part, compiled once per table: its content
//! keys and prefixes, not-content keys, kept keys and prefixes, type keys, resource keys of the
//! type rules, salvage keys and content events.  `strip` walks request -> resource -> scope ->
//! item and
//!
//! * drops every content attribute of resources, spans, span events, log records and metric data
//!   points (`Table.decide`: a content key, or under a content prefix and not a not-content key);
//! * on a span that has attributes that are neither kept nor content *and* a type key (on the span
//!   or its resource), asks `Hooks::classify` whether it is a model call, and then drops every
//!   attribute the table does not keep (allow-list);
//! * asks `Hooks::salvage` for the plain attributes that stand for values read from inside a
//!   dropped salvage key, and writes them after the span's last attribute;
//! * drops content span events, strips content keys from the other events;
//! * clears the body of GenAI event log records (`event_name`, else the first kept `event.name`
//!   attribute's string value, names a content event).
//!
//! Unchanged bytes are copied through; only the lengths of the messages around a change are
//! written anew (minimal varints, as upb writes them).  Repeated singular fields follow upb's
//! parse: the last scalar wins, message occurrences merge.  No recursion past the fixed OTLP
//! nesting; safe Rust only (the crate forbids anything else, see lib.rs).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::json::decode::put_varint;
use crate::json::encode::WireError;
pub use crate::wire::fields::{any_member, scalar, Kv, Scalar};
use crate::wire::fields::{close, open, parse_kv, push_len_prefixed, Fields, F};
pub use crate::wire::otlp::Signal;
use crate::wire::otlp::{numbers, Numbers};

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

type Res<T, E> = Result<T, Error<E>>;

/// A small multiplicative hasher (FxHash's) for the compiled key sets: short attribute names,
/// hashed often. Unseeded: what clients send is kept in `crate::ClientMap`s.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        self.0 = h;
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

// flags of exact keys
const CONTENT_KEY: u8 = 1;
const NOT_CONTENT: u8 = 2;
const KEEP_KEY: u8 = 4;
const TYPE_KEY: u8 = 8;
const SALVAGE_KEY: u8 = 16;
const RESOURCE_KEY: u8 = 32;

/// What privacy does with one attribute key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision(u8);

impl Decision {
    const CONTENT: u8 = 1;
    const KEPT: u8 = 2;
    const TYPED: u8 = 4;
    const SALVAGE: u8 = 8;
    const RESOURCE: u8 = 16;
    /// carries content (dropped everywhere)
    pub fn content(self) -> bool {
        self.0 & Self::CONTENT != 0
    }
    /// kept on a model call (non-content and named by the table)
    pub fn kept(self) -> bool {
        self.0 & Self::KEPT != 0
    }
    /// a type rule looks at it
    pub fn typed(self) -> bool {
        self.0 & Self::TYPED != 0
    }
    /// the table reads values from inside it (`Table.salvage`)
    pub fn salvage(self) -> bool {
        self.0 & Self::SALVAGE != 0
    }
    /// a type rule looks at it on the resource
    pub fn resource(self) -> bool {
        self.0 & Self::RESOURCE != 0
    }
}

/// The privacy part of a conventions table, compiled.
pub struct Rules {
    exact: FxMap<Box<[u8]>, u8>,
    content_prefixes: Vec<Box<[u8]>>,
    keep_prefixes: Vec<Box<[u8]>>,
    content_events: FxMap<Box<[u8]>, ()>,
}

pub struct RuleSets<'s> {
    pub content_keys: &'s [String],
    pub content_prefixes: &'s [String],
    pub not_content: &'s [String],
    pub content_events: &'s [String],
    pub keep_keys: &'s [String],
    pub keep_prefixes: &'s [String],
    pub type_keys: &'s [String],
    pub resource_keys: &'s [String],
    pub salvage_keys: &'s [String],
}

impl Rules {
    pub fn new(s: &RuleSets) -> Rules {
        let mut exact: FxMap<Box<[u8]>, u8> = FxMap::default();
        for (keys, flag) in [
            (s.content_keys, CONTENT_KEY),
            (s.not_content, NOT_CONTENT),
            (s.keep_keys, KEEP_KEY),
            (s.type_keys, TYPE_KEY),
            (s.salvage_keys, SALVAGE_KEY),
            (s.resource_keys, RESOURCE_KEY),
        ] {
            for k in keys {
                *exact.entry(k.as_bytes().into()).or_insert(0) |= flag;
            }
        }
        let boxed = |v: &[String]| {
            v.iter()
                .map(|p| p.as_bytes().into())
                .collect::<Vec<Box<[u8]>>>()
        };
        Rules {
            exact,
            content_prefixes: boxed(s.content_prefixes),
            keep_prefixes: boxed(s.keep_prefixes),
            content_events: s
                .content_events
                .iter()
                .map(|e| (e.as_bytes().into(), ()))
                .collect(),
        }
    }

    /// `Table.decide(key)`, plus the salvage and resource-key flags.
    pub fn decide(&self, key: &[u8]) -> Decision {
        let flags = self.exact.get(key).copied().unwrap_or(0);
        let content = flags & CONTENT_KEY != 0
            || (flags & NOT_CONTENT == 0
                && self.content_prefixes.iter().any(|p| key.starts_with(p)));
        let kept = !content
            && (flags & KEEP_KEY != 0 || self.keep_prefixes.iter().any(|p| key.starts_with(p)));
        let mut d = 0;
        if content {
            d |= Decision::CONTENT;
        }
        if kept {
            d |= Decision::KEPT;
        }
        if flags & TYPE_KEY != 0 {
            d |= Decision::TYPED;
        }
        if flags & SALVAGE_KEY != 0 {
            d |= Decision::SALVAGE;
        }
        if flags & RESOURCE_KEY != 0 {
            d |= Decision::RESOURCE;
        }
        Decision(d)
    }

    pub fn is_content_event(&self, name: &[u8]) -> bool {
        self.content_events.contains_key(name)
    }
}

const MAX_DECIDED: usize = 20_000;
const MAX_CLASSIFIED: usize = 4096;

/// What a table remembers between requests: decisions per key, model-call answers per span
/// signature (span name, scope, the typed attributes' bytes, the resource's typed bytes).
#[derive(Default)]
pub struct Caches {
    decided: crate::ClientMap<Box<[u8]>, Decision>,
    classified: crate::ClientMap<Box<[u8]>, bool>,
}

#[derive(Clone, Copy, Debug)]
pub struct Attr<'a> {
    pub kv: Kv<'a>,
    pub decision: Decision,
    pub drop: bool,
}

pub struct ClassifyQuery<'q, 'a> {
    /// the resource's attributes a type rule looks at, in order
    pub resource_typed: &'q [Kv<'a>],
    /// the resource's attributes a type rule's `resource` condition looks at
    pub resource_rule: &'q [Kv<'a>],
    /// the span's typed attributes, in order
    pub span_typed: &'q [Kv<'a>],
    pub name: &'a [u8],
    pub scope_name: &'a [u8],
    pub scope_version: &'a [u8],
}

/// What stays in Python: the type rules (classify) and reading values inside content (salvage).
pub trait Hooks {
    type Error;
    /// Is the span a model call (GENERATION or EMBEDDING)?
    fn classify(&mut self, q: &ClassifyQuery) -> Result<bool, Self::Error>;
    /// The KeyValues (each a serialised message) to append to a span whose attributes `attrs`
    /// (with their drop flags) lose a salvage key.
    fn salvage(&mut self, attrs: &[Attr], scope_name: &[u8]) -> Result<Vec<Vec<u8>>, Self::Error>;
}

// --- writing ----------------------------------------------------------------------------------

struct ResourceCtx<'a> {
    typed: Vec<Kv<'a>>,
    rule: Vec<Kv<'a>>,
    /// the typed and rule attributes' bytes, for the classification cache key
    signature: Vec<u8>,
}

struct ScopeCtx<'a> {
    name: &'a [u8],
    version: &'a [u8],
}

struct Walk<'a, 'c, H: Hooks> {
    rules: &'c Rules,
    caches: &'c mut Caches,
    hooks: &'c mut H,
    n: &'static Numbers,
    out: Vec<u8>,
    removed: u64,
    attrs: Vec<Attr<'a>>,
    /// a span's attribute and event fields, between its two passes
    fields: Vec<F<'a>>,
    flags: Vec<bool>,
    key_buf: Vec<u8>,
}

/// Strips the export request `wire` of `signal`; `None` when nothing was removed (the bytes
/// stand as they are), else the new bytes and how many attributes, events and bodies went.
pub fn strip<H: Hooks>(
    rules: &Rules,
    caches: &mut Caches,
    signal: Signal,
    wire: &[u8],
    hooks: &mut H,
) -> Res<Option<(Vec<u8>, u64)>, H::Error> {
    let mut w = Walk {
        rules,
        caches,
        hooks,
        n: numbers(),
        out: Vec::with_capacity(wire.len()),
        removed: 0,
        attrs: Vec::new(),
        fields: Vec::new(),
        flags: Vec::new(),
        key_buf: Vec::new(),
    };
    let layout = &w.n.layouts[signal as usize];
    let mut pending = 0;
    for f in Fields::new(wire) {
        let f = f?;
        if f.number == layout.request_items && f.wire == 2 {
            w.flush(wire, pending, f.start);
            let at = w.open(&f);
            w.resource_x(signal, f.data)?;
            w.close(at);
            pending = f.end;
        }
    }
    if w.removed == 0 {
        return Ok(None);
    }
    w.flush(wire, pending, wire.len());
    Ok(Some((w.out, w.removed)))
}

impl<'a, 'c, H: Hooks> Walk<'a, 'c, H> {
    #[inline]
    fn decide(&mut self, key: &[u8]) -> Decision {
        if let Some(&d) = self.caches.decided.get(key) {
            return d;
        }
        let d = self.rules.decide(key);
        if self.caches.decided.len() < MAX_DECIDED {
            self.caches.decided.insert(key.into(), d);
        }
        d
    }

    #[inline]
    fn flush(&mut self, b: &[u8], from: usize, to: usize) {
        if to > from {
            self.out.extend_from_slice(&b[from..to]);
        }
    }

    #[inline]
    fn open(&mut self, f: &F) -> (usize, usize) {
        open(&mut self.out, f)
    }

    #[inline]
    fn close(&mut self, at: (usize, usize)) {
        close(&mut self.out, at)
    }

    /// Writes message `b` less its content attributes (field `attributes`).
    fn strip_attrs(&mut self, b: &'a [u8], attributes: u64) -> Res<(), H::Error> {
        let mut pending = 0;
        for f in Fields::new(b) {
            let f = f?;
            if f.number == attributes && f.wire == 2 {
                let kv = parse_kv(f.data)?;
                if self.decide(kv.key).content() {
                    self.flush(b, pending, f.start);
                    pending = f.end;
                    self.removed += 1;
                }
            }
        }
        self.flush(b, pending, b.len());
        Ok(())
    }

    /// Writes `b` with each length-delimited field numbered `number` rewritten by `each`.
    fn children(
        &mut self,
        b: &'a [u8],
        number: u64,
        mut each: impl FnMut(&mut Self, &'a [u8]) -> Res<(), H::Error>,
    ) -> Res<(), H::Error> {
        let mut pending = 0;
        for f in Fields::new(b) {
            let f = f?;
            if f.number == number && f.wire == 2 {
                self.flush(b, pending, f.start);
                let at = self.open(&f);
                each(self, f.data)?;
                self.close(at);
                pending = f.end;
            }
        }
        self.flush(b, pending, b.len());
        Ok(())
    }

    fn resource_x(&mut self, signal: Signal, b: &'a [u8]) -> Res<(), H::Error> {
        let n = self.n;
        let layout = &n.layouts[signal as usize];
        let mut ctx = ResourceCtx {
            typed: Vec::new(),
            rule: Vec::new(),
            signature: Vec::new(),
        };
        if signal == Signal::Traces {
            for f in Fields::new(b) {
                let f = f?;
                if f.number == layout.resource && f.wire == 2 {
                    for a in Fields::new(f.data) {
                        let a = a?;
                        if a.number == n.resource_attributes && a.wire == 2 {
                            let kv = parse_kv(a.data)?;
                            let d = self.decide(kv.key);
                            if d.typed() {
                                ctx.typed.push(kv);
                            }
                            if d.resource() {
                                ctx.rule.push(kv);
                            }
                            if d.typed() || d.resource() {
                                push_len_prefixed(&mut ctx.signature, kv.body);
                            }
                        }
                    }
                }
            }
        }
        let mut pending = 0;
        for f in Fields::new(b) {
            let f = f?;
            if f.wire != 2 || (f.number != layout.resource && f.number != layout.scopes) {
                continue;
            }
            self.flush(b, pending, f.start);
            let at = self.open(&f);
            if f.number == layout.resource {
                self.strip_attrs(f.data, n.resource_attributes)?;
            } else {
                self.scope_x(signal, f.data, &ctx)?;
            }
            self.close(at);
            pending = f.end;
        }
        self.flush(b, pending, b.len());
        Ok(())
    }

    fn scope_x(
        &mut self,
        signal: Signal,
        b: &'a [u8],
        resource: &ResourceCtx<'a>,
    ) -> Res<(), H::Error> {
        let n = self.n;
        let layout = &n.layouts[signal as usize];
        match signal {
            Signal::Traces => {
                let mut scope = ScopeCtx {
                    name: b"",
                    version: b"",
                };
                for f in Fields::new(b) {
                    let f = f?;
                    if f.number == layout.scope && f.wire == 2 {
                        for s in Fields::new(f.data) {
                            let s = s?;
                            if s.wire == 2 && s.number == n.scope_name {
                                scope.name = s.data;
                            } else if s.wire == 2 && s.number == n.scope_version {
                                scope.version = s.data;
                            }
                        }
                    }
                }
                self.children(b, layout.items, |w, span| w.span(span, &scope, resource))
            }
            Signal::Logs => self.children(b, layout.items, |w, record| w.record(record)),
            Signal::Metrics => self.children(b, layout.items, |w, metric| w.metric(metric)),
        }
    }

    fn span(
        &mut self,
        b: &'a [u8],
        scope: &ScopeCtx<'a>,
        resource: &ResourceCtx<'a>,
    ) -> Res<(), H::Error> {
        let n = self.n;
        self.attrs.clear();
        let mut fields = std::mem::take(&mut self.fields);
        fields.clear();
        let mut name: &'a [u8] = b"";
        let (mut unkept_plain, mut typed) = (false, false);
        for f in Fields::new(b) {
            let f = f?;
            if f.wire != 2 {
                continue;
            }
            if f.number == n.span_attributes || f.number == n.span_events {
                fields.push(f);
            }
            if f.number == n.span_attributes {
                let kv = parse_kv(f.data)?;
                let d = self.decide(kv.key);
                unkept_plain |= !d.kept() && !d.content();
                typed |= d.typed();
                self.attrs.push(Attr {
                    kv,
                    decision: d,
                    drop: d.content(),
                });
            } else if f.number == n.span_name {
                name = f.data;
            }
        }
        // Content is never kept: when nothing else is unkept, what the span is does not matter.
        if unkept_plain
            && (typed || !resource.typed.is_empty())
            && self.model_call(name, scope, resource)?
        {
            for a in self.attrs.iter_mut() {
                a.drop = !a.decision.kept();
            }
        }
        let dropped = self.attrs.iter().filter(|a| a.drop).count();
        let salvaged = if self.attrs.iter().any(|a| a.drop && a.decision.salvage()) {
            self.hooks
                .salvage(&self.attrs, scope.name)
                .map_err(Error::Hook)?
        } else {
            Vec::new()
        };
        self.removed += dropped as u64;
        let count = self.attrs.len();
        let mut index = 0;
        let mut pending = 0;
        for &f in &fields {
            if f.number == n.span_attributes {
                let drop = self.attrs[index].drop;
                index += 1;
                if drop {
                    self.flush(b, pending, f.start);
                    pending = f.end;
                }
                if index == count && !salvaged.is_empty() {
                    // Salvaged attributes are appended to the list, as the Python path did.
                    self.flush(b, pending, f.end);
                    pending = f.end;
                    for kv in &salvaged {
                        put_varint(&mut self.out, (n.span_attributes << 3) | 2);
                        put_varint(&mut self.out, kv.len() as u64);
                        self.out.extend_from_slice(kv);
                    }
                }
            } else if f.number == n.span_events {
                let mut event_name: &[u8] = b"";
                for e in Fields::new(f.data) {
                    let e = e?;
                    if e.number == n.event_name && e.wire == 2 {
                        event_name = e.data;
                    }
                }
                self.flush(b, pending, f.start);
                pending = f.end;
                if self.rules.is_content_event(event_name) {
                    self.removed += 1;
                } else {
                    let at = self.open(&f);
                    self.strip_attrs(f.data, n.event_attributes)?;
                    self.close(at);
                }
            }
        }
        self.fields = fields;
        self.flush(b, pending, b.len());
        Ok(())
    }

    fn model_call(
        &mut self,
        name: &'a [u8],
        scope: &ScopeCtx<'a>,
        resource: &ResourceCtx<'a>,
    ) -> Res<bool, H::Error> {
        let key = &mut self.key_buf;
        key.clear();
        push_len_prefixed(key, name);
        push_len_prefixed(key, scope.name);
        push_len_prefixed(key, scope.version);
        push_len_prefixed(key, &resource.signature);
        for a in &self.attrs {
            if a.decision.typed() {
                push_len_prefixed(key, a.kv.body);
            }
        }
        if let Some(&got) = self.caches.classified.get(&key[..]) {
            return Ok(got);
        }
        let span_typed: Vec<Kv<'a>> = self
            .attrs
            .iter()
            .filter(|a| a.decision.typed())
            .map(|a| a.kv)
            .collect();
        let q = ClassifyQuery {
            resource_typed: &resource.typed,
            resource_rule: &resource.rule,
            span_typed: &span_typed,
            name,
            scope_name: scope.name,
            scope_version: scope.version,
        };
        let got = self.hooks.classify(&q).map_err(Error::Hook)?;
        if self.caches.classified.len() >= MAX_CLASSIFIED {
            self.caches.classified.clear();
        }
        self.caches
            .classified
            .insert(self.key_buf.as_slice().into(), got);
        Ok(got)
    }

    fn record(&mut self, b: &'a [u8]) -> Res<(), H::Error> {
        let n = self.n;
        self.flags.clear();
        let mut event_name: &[u8] = b"";
        let mut by_attribute: Option<bool> = None; // the first kept event.name names a content event
        let mut body = false;
        for f in Fields::new(b) {
            let f = f?;
            if f.wire != 2 {
                continue;
            }
            if f.number == n.log_attributes {
                let kv = parse_kv(f.data)?;
                let content = self.decide(kv.key).content();
                self.flags.push(content);
                if !content && by_attribute.is_none() && kv.key == b"event.name" {
                    // `kv.value.string_value`: the string when that is the (merged) value's member
                    let value = kv.value_wire();
                    by_attribute = Some(match any_member(&value)? {
                        Some((0, s)) => self.rules.is_content_event(s),
                        _ => self.rules.is_content_event(b""),
                    });
                }
            } else if f.number == n.log_event_name {
                event_name = f.data;
            } else if f.number == n.log_body {
                body = true;
            }
        }
        let content_event = if event_name.is_empty() {
            by_attribute.unwrap_or_else(|| self.rules.is_content_event(b""))
        } else {
            self.rules.is_content_event(event_name)
        };
        let clear_body = body && content_event;
        if clear_body {
            self.removed += 1;
        }
        let mut index = 0;
        let mut pending = 0;
        for f in Fields::new(b) {
            let f = f?;
            if f.wire != 2 {
                continue;
            }
            let drop = if f.number == n.log_attributes {
                index += 1;
                self.flags[index - 1]
            } else {
                f.number == n.log_body && clear_body
            };
            if drop {
                self.flush(b, pending, f.start);
                pending = f.end;
            }
        }
        self.removed += self.flags.iter().filter(|&&c| c).count() as u64;
        self.flush(b, pending, b.len());
        Ok(())
    }

    fn metric(&mut self, b: &'a [u8]) -> Res<(), H::Error> {
        let n = self.n;
        let mut pending = 0;
        for f in Fields::new(b) {
            let f = f?;
            if f.wire != 2 {
                continue;
            }
            let Some(&(_, points, attributes)) = n.metric_data.iter().find(|d| d.0 == f.number)
            else {
                continue;
            };
            self.flush(b, pending, f.start);
            let at = self.open(&f);
            self.children(f.data, points, |w, point| w.strip_attrs(point, attributes))?;
            self.close(at);
            pending = f.end;
        }
        self.flush(b, pending, b.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fields::ld;

    struct Answer(bool, usize);

    impl Hooks for Answer {
        type Error = ();
        fn classify(&mut self, _q: &ClassifyQuery) -> Result<bool, ()> {
            self.1 += 1;
            Ok(self.0)
        }
        fn salvage(&mut self, _attrs: &[Attr], _scope: &[u8]) -> Result<Vec<Vec<u8>>, ()> {
            Ok(Vec::new())
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn rules() -> Rules {
        let (ck, cp, nc, ce, kk, kp, tk) = (
            s(&["gen_ai.prompt"]),
            s(&["llm.prompts"]),
            s(&["llm.prompts.name"]),
            s(&["gen_ai.choice"]),
            s(&["gen_ai.operation.name"]),
            s(&["gen_ai.usage."]),
            s(&["gen_ai.operation.name"]),
        );
        Rules::new(&RuleSets {
            content_keys: &ck,
            content_prefixes: &cp,
            not_content: &nc,
            content_events: &ce,
            keep_keys: &kk,
            keep_prefixes: &kp,
            type_keys: &tk,
            resource_keys: &[],
            salvage_keys: &[],
        })
    }

    fn attr(key: &str, value: &str) -> Vec<u8> {
        ld(
            9,
            &[ld(1, key.as_bytes()), ld(2, &ld(1, value.as_bytes()))].concat(),
        )
    }

    fn request(span: &[u8]) -> Vec<u8> {
        ld(1, &ld(2, &ld(2, span)))
    }

    #[test]
    fn decisions_follow_table_decide() {
        let r = rules();
        assert!(r.decide(b"gen_ai.prompt").content());
        assert!(r.decide(b"llm.prompts.0.content").content());
        assert!(!r.decide(b"llm.prompts.name").content());
        assert!(r.decide(b"gen_ai.usage.input_tokens").kept());
        let op = r.decide(b"gen_ai.operation.name");
        assert!(op.kept() && op.typed() && !op.content());
        assert_eq!(r.decide(b"other"), Decision(0));
    }

    #[test]
    fn lengths_shrink_and_a_model_call_drops_what_is_not_kept() {
        let big = "x".repeat(300); // a 2-byte length before, 1 byte after
        let span = [
            attr("gen_ai.operation.name", "chat"),
            attr("gen_ai.prompt", &big),
            attr("custom", "y"),
            attr("gen_ai.usage.input_tokens", "1"),
        ]
        .concat();
        let wire = request(&span);
        let mut caches = Caches::default();
        let mut hooks = Answer(false, 0);
        let (out, removed) = strip(&rules(), &mut caches, Signal::Traces, &wire, &mut hooks)
            .unwrap()
            .unwrap();
        assert_eq!(removed, 1);
        let kept = [
            attr("gen_ai.operation.name", "chat"),
            attr("custom", "y"),
            attr("gen_ai.usage.input_tokens", "1"),
        ]
        .concat();
        assert_eq!(out, request(&kept));
        let mut model = Answer(true, 0);
        let (out, removed) = strip(
            &rules(),
            &mut Caches::default(),
            Signal::Traces,
            &wire,
            &mut model,
        )
        .unwrap()
        .unwrap();
        assert_eq!((removed, model.1), (2, 1));
        assert_eq!(
            out,
            request(
                &[
                    attr("gen_ai.operation.name", "chat"),
                    attr("gen_ai.usage.input_tokens", "1")
                ]
                .concat()
            )
        );
        // the answer is remembered per span signature
        strip(&rules(), &mut caches, Signal::Traces, &wire, &mut hooks).unwrap();
        assert_eq!(hooks.1, 1);
    }

    #[test]
    fn nothing_to_remove_is_none_and_damage_is_an_error() {
        let wire = request(&attr("custom", "y"));
        assert!(strip(
            &rules(),
            &mut Caches::default(),
            Signal::Traces,
            &wire,
            &mut Answer(true, 0)
        )
        .unwrap()
        .is_none());
        let cut = &wire[..wire.len() - 1];
        assert!(matches!(
            strip(
                &rules(),
                &mut Caches::default(),
                Signal::Traces,
                cut,
                &mut Answer(true, 0)
            ),
            Err(Error::Wire(_))
        ));
    }
}
