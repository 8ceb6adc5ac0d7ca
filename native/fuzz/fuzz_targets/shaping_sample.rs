//! Sampling on arbitrary bytes: it never panics; damaged bytes are an error, never a guess; what
//! it writes for bytes the JSON writer reads is read by it too (lengths fixed up right), holds
//! exactly the kept items, and sampling it again with the same decisions removes nothing.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use otlp_router_native::privacy::Signal;
use otlp_router_native::shaping::sampling::{sample, Decide, Session};
use otlp_router_native::{message_index, wire_to_json};

/// Keeps a trace by its first byte's bit `salt`, a lone item by its length's.
struct Bits(u8, usize);

impl Decide for Bits {
    type Error = ();
    fn decide(
        &mut self,
        sessions: &[Session],
        traces: &[&[u8]],
        lone: &[&[u8]],
    ) -> Result<(Vec<bool>, Vec<bool>), ()> {
        self.1 += sessions
            .iter()
            .filter(|(_, v)| matches!(v, Cow::Owned(_)))
            .count();
        let bit = |b: u8| (b >> (self.0 & 7)) & 1 == 1;
        Ok((
            traces.iter().map(|t| bit(t[0])).collect(),
            lone.iter().map(|b| bit(b.len() as u8)).collect(),
        ))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, wire)) = data.split_first() else {
        return;
    };
    let (signal, root) = if selector & 1 == 0 {
        (Signal::Traces, "traces")
    } else {
        (Signal::Logs, "logs")
    };
    let by_session = selector & 2 != 0;
    let mut bits = Bits(selector >> 2, 0);
    let Ok(Some((out, removed))) = sample(signal, wire, by_session, &mut bits) else {
        return;
    };
    assert!(removed > 0 && out.len() < wire.len());
    let index = message_index(root).unwrap();
    if wire_to_json(index, wire).is_ok() {
        wire_to_json(index, &out).expect("sampling wrote bytes the reader refuses");
    }
    if let Ok(Some((_, again))) = sample(signal, &out, by_session, &mut Bits(selector >> 2, 0)) {
        panic!("sampling twice removed {again} more");
    }
});
