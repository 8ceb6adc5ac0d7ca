//! Attribute actions on the wire (insert, update, upsert, rename, delete, hash), applied in
//! order to the attributes of every item (span, log record, metric data point), as the former
//! `otlp_router/routing/actions.py` did on upb messages.  An item's attributes are read into a
//! list, the actions run on it, and only a changed list is written back (where the attributes
//! were; untouched KeyValues copied as they are).
//!
//! Python keeps what is Python's (`Hooks`): a delete pattern's `re.search` (asked once per
//! key and remembered) and a hash's digest of `value_of`'s text; the values to set are the
//! AnyValue bytes upb writes for them, given when the actions are compiled.

use std::borrow::Cow;

use crate::json::decode::put_varint;
use crate::privacy::Error;
use crate::wire::fields::{parse_kv, push_len_prefixed, rewrite, Fields};
use crate::wire::otlp::{numbers, Signal, N_KV_KEY, N_KV_VALUE};

type Res<T, E> = Result<T, Error<E>>;

/// Where a value set by insert, update or upsert comes from.
pub enum Source {
    /// the AnyValue bytes of a constant
    Value(Vec<u8>),
    /// another attribute's value (nothing is set when it is absent)
    From(Vec<u8>),
}

pub enum Action {
    Insert(Vec<u8>, Source),
    Update(Vec<u8>, Source),
    Upsert(Vec<u8>, Source),
    Rename(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// by a pattern: `Hooks::deletes` with the action's index
    DeleteMatching,
    Hash(Vec<u8>),
}

/// What stays in Python.
pub trait Hooks {
    type Error;
    /// Does action `index`'s delete pattern find something in `key`?
    fn deletes(&mut self, index: usize, key: &[u8]) -> Result<bool, Self::Error>;
    /// Action `index`'s hex digest of the value (AnyValue bytes).
    fn hash(&mut self, index: usize, value: &[u8]) -> Result<Vec<u8>, Self::Error>;
}

const MAX_MATCHED: usize = 20_000;

/// Pattern answers remembered between requests, per (action, key).
#[derive(Default)]
pub struct Cache {
    matched: crate::ClientMap<(usize, Box<[u8]>), bool>,
}

/// One attribute of the list being changed.
struct A<'a> {
    key: Cow<'a, [u8]>,
    /// the AnyValue's bytes; None: no value field
    value: Option<Cow<'a, [u8]>>,
    /// the KeyValue's bytes while it is untouched
    original: Option<&'a [u8]>,
}

struct Run<'c, H: Hooks> {
    actions: &'c [Action],
    cache: &'c mut Cache,
    hooks: &'c mut H,
    changed: bool,
}

/// Applies the actions to the export request `wire` of `signal`; `applies(item, action)` says
/// whether an action applies to an item (its include / exclude rules; items counted in request
/// order).  `None` when nothing changed.
pub fn apply<H: Hooks>(
    actions: &[Action],
    cache: &mut Cache,
    signal: Signal,
    wire: &[u8],
    applies: &dyn Fn(usize, usize) -> bool,
    hooks: &mut H,
) -> Res<Option<Vec<u8>>, H::Error> {
    let n = numbers();
    let layout = &n.layouts[signal as usize];
    let mut run = Run {
        actions,
        cache,
        hooks,
        changed: false,
    };
    let mut out = Vec::with_capacity(wire.len() + 64);
    let mut item = 0;
    let is = |number: u64| move |x: u64| x == number;
    rewrite::<Error<H::Error>>(
        &mut out,
        wire,
        is(layout.request_items),
        &mut |out, _, r| {
            rewrite::<Error<H::Error>>(out, r, is(layout.scopes), &mut |out, _, s| {
                rewrite::<Error<H::Error>>(out, s, is(layout.items), &mut |out, _, b| {
                    item += 1;
                    let at = item - 1;
                    match signal {
                        Signal::Traces => run.list(out, b, n.span_attributes, at, applies)?,
                        Signal::Logs => run.list(out, b, n.log_attributes, at, applies)?,
                        Signal::Metrics => {
                            let member = |x: u64| n.metric_data.iter().any(|d| d.0 == x);
                            rewrite::<Error<H::Error>>(out, b, member, &mut |out, x, data| {
                                let &(_, points, attributes) =
                                    n.metric_data.iter().find(|d| d.0 == x).unwrap();
                                rewrite::<Error<H::Error>>(
                                    out,
                                    data,
                                    is(points),
                                    &mut |out, _, p| {
                                        run.list(out, p, attributes, at, applies)?;
                                        Ok(true)
                                    },
                                )?;
                                Ok(true)
                            })?
                        }
                    }
                    Ok(true)
                })?;
                Ok(true)
            })?;
            Ok(true)
        },
    )?;
    Ok(run.changed.then_some(out))
}

fn find(list: &[A], key: &[u8]) -> Option<usize> {
    list.iter().position(|a| *a.key == *key)
}

impl<H: Hooks> Run<'_, H> {
    /// Writes message `b` with its attributes (field `field`) changed by the actions that
    /// apply to item `item`.
    fn list<'a>(
        &mut self,
        out: &mut Vec<u8>,
        b: &'a [u8],
        field: u64,
        item: usize,
        applies: &dyn Fn(usize, usize) -> bool,
    ) -> Res<(), H::Error> {
        let mut list: Vec<A<'a>> = Vec::new();
        for f in Fields::new(b) {
            let f = f?;
            if f.number == field && f.wire == 2 {
                let kv = parse_kv(f.data)?;
                let present = Fields::new(f.data)
                    .any(|x| matches!(x, Ok(x) if x.number == N_KV_VALUE && x.wire == 2));
                list.push(A {
                    key: Cow::Borrowed(kv.key),
                    value: present.then(|| kv.value_wire()),
                    original: Some(f.data),
                });
            }
        }
        let mut changed = false;
        for (index, action) in self.actions.iter().enumerate() {
            if applies(item, index) {
                changed |= self.act(index, action, &mut list)?;
            }
        }
        if !changed {
            out.extend_from_slice(b);
            return Ok(());
        }
        self.changed = true;
        // The list goes where the attributes were, else before the first later field (where
        // upb, writing fields in number order, puts it).
        let mut written = false;
        let mut pending = 0;
        for f in Fields::new(b) {
            let f = f?;
            let here = f.number == field && f.wire == 2;
            if !written && (here || f.number > field) {
                out.extend_from_slice(&b[pending..f.start]);
                pending = f.start;
                write_list(out, field, &list);
                written = true;
            }
            if here {
                out.extend_from_slice(&b[pending..f.start]);
                pending = f.end;
            }
        }
        out.extend_from_slice(&b[pending..]);
        if !written {
            write_list(out, field, &list);
        }
        Ok(())
    }

    /// Action `index` on one list; true when it changed something.
    fn act<'a>(
        &mut self,
        index: usize,
        action: &Action,
        list: &mut Vec<A<'a>>,
    ) -> Res<bool, H::Error> {
        Ok(match action {
            Action::Insert(key, source) => {
                find(list, key).is_none() && set(list, key, None, source)
            }
            Action::Update(key, source) => match find(list, key) {
                Some(i) => set(list, key, Some(i), source),
                None => false,
            },
            Action::Upsert(key, source) => {
                let i = find(list, key);
                set(list, key, i, source)
            }
            Action::Rename(key, to) => {
                let Some(i) = find(list, key) else {
                    return Ok(false);
                };
                match find(list, to) {
                    Some(existing) => {
                        // `existing.value.CopyFrom(value)`: present from then on (a copy onto
                        // itself changes nothing), and the renamed attribute goes
                        if existing != i {
                            let value = list[i].value.clone().unwrap_or(Cow::Borrowed(b""));
                            list[existing].value = Some(value);
                            list[existing].original = None;
                        }
                        list.remove(i);
                    }
                    None => {
                        list[i].key = Cow::Owned(to.clone());
                        list[i].original = None;
                    }
                }
                true
            }
            Action::Delete(key) => {
                let before = list.len();
                list.retain(|a| *a.key != **key);
                list.len() != before
            }
            Action::DeleteMatching => {
                let before = list.len();
                let mut keep = Vec::with_capacity(list.len());
                for a in list.iter() {
                    keep.push(!self.deletes(index, &a.key)?);
                }
                let mut k = keep.iter();
                list.retain(|_| *k.next().unwrap());
                list.len() != before
            }
            Action::Hash(key) => {
                let Some(i) = find(list, key) else {
                    return Ok(false);
                };
                let value = list[i].value.as_deref().unwrap_or(b"");
                let digest = self.hooks.hash(index, value).map_err(Error::Hook)?;
                let mut any = Vec::with_capacity(digest.len() + 2);
                put_varint(&mut any, (1 << 3) | 2); // AnyValue.string_value
                push_len_prefixed(&mut any, &digest);
                list[i].value = Some(Cow::Owned(any));
                list[i].original = None;
                true
            }
        })
    }

    fn deletes(&mut self, index: usize, key: &[u8]) -> Res<bool, H::Error> {
        let k = (index, Box::<[u8]>::from(key));
        if let Some(&d) = self.cache.matched.get(&k) {
            return Ok(d);
        }
        let d = self.hooks.deletes(index, key).map_err(Error::Hook)?;
        if self.cache.matched.len() < MAX_MATCHED {
            self.cache.matched.insert(k, d);
        }
        Ok(d)
    }
}

/// `_set`: the value (constant, or copied from another attribute) onto attribute `at`, or onto
/// a new one appended; true when it set something.
fn set<'a>(list: &mut Vec<A<'a>>, key: &[u8], at: Option<usize>, source: &Source) -> bool {
    let value: Cow<'a, [u8]> = match source {
        Source::Value(v) => Cow::Owned(v.clone()),
        Source::From(from) => match find(list, from) {
            // a copy onto itself changes nothing (not even an absent value's presence)
            Some(s) if Some(s) == at => return false,
            Some(s) => Cow::Owned(list[s].value.as_deref().unwrap_or(b"").to_vec()),
            None => return false,
        },
    };
    match at {
        Some(i) => {
            list[i].value = Some(value);
            list[i].original = None;
        }
        None => list.push(A {
            key: Cow::Owned(key.to_vec()),
            value: Some(value),
            original: None,
        }),
    }
    true
}

fn write_list(out: &mut Vec<u8>, field: u64, list: &[A]) {
    let mut kv = Vec::new();
    for a in list {
        put_varint(out, (field << 3) | 2);
        if let Some(original) = a.original {
            push_len_prefixed(out, original);
            continue;
        }
        kv.clear();
        if !a.key.is_empty() {
            put_varint(&mut kv, (N_KV_KEY << 3) | 2);
            push_len_prefixed(&mut kv, &a.key);
        }
        if let Some(value) = &a.value {
            put_varint(&mut kv, (N_KV_VALUE << 3) | 2);
            push_len_prefixed(&mut kv, value);
        }
        push_len_prefixed(out, &kv);
    }
}
