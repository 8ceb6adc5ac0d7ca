//! Redaction on the wire: attributes of resources, scopes, items, span events and links dropped
//! by key (blocked globs, or an allow-list), and secrets masked inside the string values left
//! (at any depth of arrays and kvlists), span status messages and log bodies; unchanged bytes
//! copied through, the lengths around a change written anew.
//!
//! What a key and a string come to stays Python's (`Redact`), so the globs and the regular
//! expressions are Python's `fnmatch` and `re`, as before: a key is asked once and remembered
//! (per config), and a string is asked only when one of the configured masks could match it at
//! all (`Masks::maybe`: an `@` for an email, 13 digits for a card, `bearer` for a token, a
//! provider prefix for an API key, anything for a user pattern), which most values never are.

use crate::json::decode::put_varint;
use crate::privacy::Error;
use crate::wire::fields::{close, open, parse_kv, Fields, F};
use crate::wire::inspect::MAX_DEPTH;
use crate::wire::otlp::{numbers, Numbers, Signal, N_KV_VALUE};

type Res<T, E> = Result<T, Error<E>>;

/// Which masks a config has, for the cheap "could any match" test.
#[derive(Clone, Copy, Default, Debug)]
pub struct Masks {
    pub email: bool,
    pub card: bool,
    pub bearer: bool,
    pub api_key: bool,
    /// a user pattern: anything may match
    pub pattern: bool,
}

const API_KEY_NEEDLES: [&[u8]; 6] = [b"sk-", b"AKIA", b"gh", b"xox", b"AIza", b"xaat-"];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Masks {
    pub fn any(&self) -> bool {
        self.email || self.card || self.bearer || self.api_key || self.pattern
    }

    /// False only when no configured mask can match `text` (then every `sub` leaves it as it is).
    pub fn maybe(&self, text: &[u8]) -> bool {
        if self.pattern {
            return true;
        }
        if self.email && text.contains(&b'@') {
            return true;
        }
        // 13 decimal digits at least; any non-ASCII character may be one (Python's \d is Unicode)
        if self.card
            && text
                .iter()
                .filter(|&&b| b.is_ascii_digit() || b >= 0xc0)
                .count()
                >= 13
        {
            return true;
        }
        // (?i)bearer: no other character case-folds to these four letters
        if self.bearer && text.windows(6).any(|w| w.eq_ignore_ascii_case(b"bearer")) {
            return true;
        }
        self.api_key && API_KEY_NEEDLES.iter().any(|n| contains(text, n))
    }
}

/// A config's redaction: which masks, and whether keys are decided at all.
pub struct Rules {
    pub masks: Masks,
    /// blocked keys or an allow-list are configured
    pub keys: bool,
}

/// What stays in Python: `fnmatch` on keys, `re` on strings.
pub trait Redact {
    type Error;
    /// Does an attribute with this key go?
    fn drop(&mut self, key: &[u8]) -> Result<bool, Self::Error>;
    /// The masked text; `None` when it stays as it is.
    fn mask(&mut self, text: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;
}

const MAX_DECIDED: usize = 20_000;

/// Key decisions remembered between requests.
#[derive(Default)]
pub struct Cache {
    decided: crate::ClientMap<Box<[u8]>, bool>,
}

/// What a message is, for how its fields are rewritten.
#[derive(Clone, Copy)]
enum Kind {
    Request,
    Resources,
    Scopes,
    /// a resource, scope, event, link or data point: attributes under this field number
    Holder(u64),
    Span,
    Status,
    Record,
    Metric,
    /// a metric's data member: its points (field), their attributes (field)
    Points(u64, u64),
    KeyValue,
    Any,
    /// ArrayValue or KeyValueList: `values` of AnyValues (false) or KeyValues (true)
    List(bool),
}

enum Visit {
    Keep,
    Drop,
    Into(Kind),
    Str,
}

struct Walk<'c, H: Redact> {
    rules: &'c Rules,
    cache: &'c mut Cache,
    hooks: &'c mut H,
    n: &'static Numbers,
    signal: Signal,
    out: Vec<u8>,
    changed: bool,
}

/// Redacts the export request `wire` of `signal`; `None` when nothing changed.
pub fn redact<H: Redact>(
    rules: &Rules,
    cache: &mut Cache,
    signal: Signal,
    wire: &[u8],
    hooks: &mut H,
) -> Res<Option<Vec<u8>>, H::Error> {
    if !rules.keys && !rules.masks.any() {
        return Ok(None);
    }
    let mut w = Walk {
        rules,
        cache,
        hooks,
        n: numbers(),
        signal,
        out: Vec::with_capacity(wire.len()),
        changed: false,
    };
    w.message(wire, Kind::Request, 0)?;
    Ok(w.changed.then_some(w.out))
}

impl<H: Redact> Walk<'_, H> {
    fn drop_key(&mut self, key: &[u8]) -> Res<bool, H::Error> {
        if !self.rules.keys {
            return Ok(false);
        }
        if let Some(&d) = self.cache.decided.get(key) {
            return Ok(d);
        }
        let d = self.hooks.drop(key).map_err(Error::Hook)?;
        if self.cache.decided.len() < MAX_DECIDED {
            self.cache.decided.insert(key.into(), d);
        }
        Ok(d)
    }

    /// How field `f` of a message of kind `kind` is written.
    fn visit(&mut self, kind: Kind, f: &F) -> Res<Visit, H::Error> {
        let n = self.n;
        let layout = &n.layouts[self.signal as usize];
        let masks = self.rules.masks.any();
        if f.wire != 2 {
            return Ok(Visit::Keep);
        }
        let x = f.number;
        Ok(match kind {
            Kind::Request if x == layout.request_items => Visit::Into(Kind::Resources),
            Kind::Resources if x == layout.resource => {
                Visit::Into(Kind::Holder(n.resource_attributes))
            }
            Kind::Resources if x == layout.scopes => Visit::Into(Kind::Scopes),
            Kind::Scopes if x == layout.scope => Visit::Into(Kind::Holder(n.scope_attributes)),
            Kind::Scopes if x == layout.items => Visit::Into(match self.signal {
                Signal::Traces => Kind::Span,
                Signal::Logs => Kind::Record,
                Signal::Metrics => Kind::Metric,
            }),
            Kind::Holder(a) if x == a => self.attribute(f)?,
            Kind::Span if x == n.span_attributes => self.attribute(f)?,
            Kind::Span if x == n.span_events => Visit::Into(Kind::Holder(n.event_attributes)),
            Kind::Span if x == n.span_links => Visit::Into(Kind::Holder(n.link_attributes)),
            Kind::Span if x == n.span_status && masks => Visit::Into(Kind::Status),
            Kind::Status if x == n.status_message => Visit::Str,
            Kind::Record if x == n.log_attributes => self.attribute(f)?,
            Kind::Record if x == n.log_body && masks => Visit::Into(Kind::Any),
            Kind::Metric => match n.metric_data.iter().find(|d| d.0 == x) {
                Some(&(_, points, attributes)) => Visit::Into(Kind::Points(points, attributes)),
                None => Visit::Keep,
            },
            Kind::Points(points, attributes) if x == points => {
                Visit::Into(Kind::Holder(attributes))
            }
            Kind::KeyValue if x == N_KV_VALUE => Visit::Into(Kind::Any),
            Kind::Any if x == n.any[0] => Visit::Str,
            Kind::Any if x == n.any[4] => Visit::Into(Kind::List(false)),
            Kind::Any if x == n.any[5] => Visit::Into(Kind::List(true)),
            Kind::List(false) if x == n.array_values => Visit::Into(Kind::Any),
            Kind::List(true) if x == n.kvlist_values => Visit::Into(Kind::KeyValue),
            _ => Visit::Keep,
        })
    }

    fn attribute(&mut self, f: &F) -> Res<Visit, H::Error> {
        let kv = parse_kv(f.data)?;
        Ok(if self.drop_key(kv.key)? {
            Visit::Drop
        } else if self.rules.masks.any() {
            Visit::Into(Kind::KeyValue)
        } else {
            Visit::Keep
        })
    }

    /// Writes message `b` of kind `kind`, rewritten.
    fn message(&mut self, b: &[u8], kind: Kind, depth: u32) -> Res<(), H::Error> {
        if depth > MAX_DEPTH {
            return Err(Error::Wire("nested too deep"));
        }
        let mut pending = 0;
        for f in Fields::new(b) {
            let f = f?;
            match self.visit(kind, &f)? {
                Visit::Keep => continue,
                Visit::Drop => {
                    self.changed = true;
                    self.out.extend_from_slice(&b[pending..f.start]);
                }
                Visit::Str => {
                    if !self.rules.masks.maybe(f.data) {
                        continue;
                    }
                    let Some(masked) = self.hooks.mask(f.data).map_err(Error::Hook)? else {
                        continue;
                    };
                    self.changed = true;
                    self.out.extend_from_slice(&b[pending..f.start]);
                    put_varint(&mut self.out, (f.number << 3) | 2);
                    put_varint(&mut self.out, masked.len() as u64);
                    self.out.extend_from_slice(&masked);
                }
                Visit::Into(inner) => {
                    self.out.extend_from_slice(&b[pending..f.start]);
                    let at = open(&mut self.out, &f);
                    self.message(f.data, inner, depth + 1)?;
                    close(&mut self.out, at);
                }
            }
            pending = f.end;
        }
        self.out.extend_from_slice(&b[pending..]);
        Ok(())
    }
}
