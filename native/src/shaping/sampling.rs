//! Deterministic sampling on the wire: the items (spans, log records) of the traces the caller
//! drops are cut out of the request, unchanged bytes copied through and the lengths of the
//! scope and resource messages around a cut written anew.
//!
//! The decisions stay with Python (`Decide`), asked once per request: its hash, its rate and
//! what it remembers of sessions across requests are those of `otlp_router/routing/sampling.py`.
//! The core reads what they need: each item's trace id (the last occurrence, as upb reads it),
//! the value of each item's first `session.id` attribute, and the bytes of the items without a
//! trace id (decided by their content, which Python reads).

use std::borrow::Cow;

use crate::privacy::Error;
use crate::wire::fields::{parse_kv, rewrite, Fields};
use crate::wire::otlp::{numbers, Signal};

type Res<T, E> = Result<T, Error<E>>;

/// An item's first `session.id` attribute: (the item's trace id, the merged AnyValue bytes).
pub type Session<'a> = (&'a [u8], Cow<'a, [u8]>);

/// What stays in Python: which traces and lone items are kept.
pub trait Decide {
    type Error;
    /// `sessions`: every item's first `session.id` attribute, in item order (only when sampling
    /// by session); `traces`: the distinct non-empty trace ids, first seen first; `lone`: the
    /// bytes of each item without a trace id.  Returns whether each trace, and each lone item,
    /// is kept.
    fn decide(
        &mut self,
        sessions: &[Session],
        traces: &[&[u8]],
        lone: &[&[u8]],
    ) -> Result<(Vec<bool>, Vec<bool>), Self::Error>;
}

/// Samples the export request `wire` of `signal` (traces or logs; metrics belong to no trace);
/// `None` when every item is kept (the bytes stand), else the new bytes and how many items went.
pub fn sample<'a, D: Decide>(
    signal: Signal,
    wire: &'a [u8],
    by_session: bool,
    decide: &mut D,
) -> Res<Option<(Vec<u8>, u64)>, D::Error> {
    let n = numbers();
    let (trace_field, attributes) = match signal {
        Signal::Traces => (n.span_trace_id, n.span_attributes),
        Signal::Logs => (n.log_trace_id, n.log_attributes),
        Signal::Metrics => return Ok(None),
    };
    // which trace (index into `traces`) or lone item (!index into `lone`) each item follows
    let mut follows: Vec<usize> = Vec::new();
    let mut traces: Vec<&'a [u8]> = Vec::new();
    let mut index: crate::ClientMap<&'a [u8], usize> = crate::ClientMap::default();
    let mut lone: Vec<&'a [u8]> = Vec::new();
    let mut sessions: Vec<Session<'a>> = Vec::new();
    items(signal, wire, &mut |item| {
        let mut trace_id: &[u8] = b"";
        let mut session = None;
        for f in Fields::new(item) {
            let f = f?;
            if f.wire != 2 {
                continue;
            }
            if f.number == trace_field {
                trace_id = f.data;
            } else if by_session && f.number == attributes && session.is_none() {
                let kv = parse_kv(f.data)?;
                if kv.key == b"session.id" {
                    session = Some(kv.value_wire());
                }
            }
        }
        if let Some(value) = session {
            sessions.push((trace_id, value));
        }
        follows.push(if trace_id.is_empty() {
            lone.push(item);
            !(lone.len() - 1)
        } else {
            *index.entry(trace_id).or_insert_with(|| {
                traces.push(trace_id);
                traces.len() - 1
            })
        });
        Ok(())
    })?;
    let (keep_trace, keep_lone) = decide
        .decide(&sessions, &traces, &lone)
        .map_err(Error::Hook)?;
    if keep_trace.len() != traces.len() || keep_lone.len() != lone.len() {
        return Err(Error::Wire(
            "a decision per trace and lone item was expected",
        ));
    }
    let keep: Vec<bool> = follows
        .iter()
        .map(|&i| {
            if i < traces.len() {
                keep_trace[i]
            } else {
                keep_lone[!i]
            }
        })
        .collect();
    let removed = keep.iter().filter(|&&k| !k).count() as u64;
    if removed == 0 {
        return Ok(None);
    }
    Ok(Some((cut(signal, wire, &keep)?, removed)))
}

/// Calls `each` with the bytes of every item of the request, in order.
fn items<'a, E>(
    signal: Signal,
    wire: &'a [u8],
    each: &mut impl FnMut(&'a [u8]) -> Res<(), E>,
) -> Res<(), E> {
    let layout = &numbers().layouts[signal as usize];
    for r in Fields::new(wire) {
        let r = r?;
        if r.number != layout.request_items || r.wire != 2 {
            continue;
        }
        for s in Fields::new(r.data) {
            let s = s?;
            if s.number != layout.scopes || s.wire != 2 {
                continue;
            }
            for i in Fields::new(s.data) {
                let i = i?;
                if i.number == layout.items && i.wire == 2 {
                    each(i.data)?;
                }
            }
        }
    }
    Ok(())
}

/// The request without the items whose `keep` flag (in `items` order) is false.
fn cut<E>(signal: Signal, wire: &[u8], keep: &[bool]) -> Res<Vec<u8>, E> {
    let layout = &numbers().layouts[signal as usize];
    let mut out = Vec::with_capacity(wire.len());
    let mut next = 0;
    let is = |number: u64| move |x: u64| x == number;
    rewrite::<Error<E>>(
        &mut out,
        wire,
        is(layout.request_items),
        &mut |out, _, r| {
            rewrite::<Error<E>>(out, r, is(layout.scopes), &mut |out, _, s| {
                rewrite::<Error<E>>(out, s, is(layout.items), &mut |out, _, item| {
                    next += 1;
                    let kept = keep[next - 1];
                    if kept {
                        out.extend_from_slice(item);
                    }
                    Ok(kept)
                })?;
                Ok(true)
            })?;
            Ok(true)
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fields::ld;

    struct Keep(Vec<u8>);

    impl Decide for Keep {
        type Error = ();
        fn decide(
            &mut self,
            _s: &[Session],
            traces: &[&[u8]],
            lone: &[&[u8]],
        ) -> Result<(Vec<bool>, Vec<bool>), ()> {
            Ok((
                traces.iter().map(|t| self.0.contains(&t[0])).collect(),
                lone.iter().map(|_| false).collect(),
            ))
        }
    }

    #[test]
    fn dropped_traces_leave_and_lengths_shrink() {
        let span = |t: u8| ld(2, &[ld(1, &[t; 16]), ld(5, &[b'n'; 60])].concat());
        let scope = |spans: &[u8]| ld(2, spans);
        let all = scope(&[span(1), span(2), span(1)].concat());
        let wire = ld(1, &all);
        let (out, removed) = sample(Signal::Traces, &wire, false, &mut Keep(vec![2]))
            .unwrap()
            .unwrap();
        assert_eq!(removed, 2);
        assert_eq!(out, ld(1, &scope(&span(2))));
        assert!(sample(Signal::Traces, &wire, false, &mut Keep(vec![1, 2]))
            .unwrap()
            .is_none());
        assert!(sample(
            Signal::Traces,
            &wire[..wire.len() - 1],
            false,
            &mut Keep(vec![])
        )
        .is_err());
    }
}
