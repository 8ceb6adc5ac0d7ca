//! Attribute actions on arbitrary bytes: they never panic; damaged bytes are an error, never a
//! guess; what they write for bytes the JSON writer reads is read by it too (lengths fixed up
//! right), and running idempotent actions again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_router_native::privacy::Signal;
use otlp_router_native::shaping::actions::{apply, Action, Cache, Hooks, Source};
use otlp_router_native::{message_index, wire_to_json};

/// Deletes keys starting with `i`; hashes to a fixed digest.
struct Fixed;

impl Hooks for Fixed {
    type Error = ();
    fn deletes(&mut self, _index: usize, key: &[u8]) -> Result<bool, ()> {
        Ok(key.first() == Some(&b'i'))
    }
    fn hash(&mut self, _index: usize, _value: &[u8]) -> Result<Vec<u8>, ()> {
        Ok(b"0123456789abcdef".to_vec())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, wire)) = data.split_first() else {
        return;
    };
    let (signal, root) = match selector % 3 {
        0 => (Signal::Traces, "traces"),
        1 => (Signal::Logs, "logs"),
        _ => (Signal::Metrics, "metrics"),
    };
    let k = |s: &str| s.as_bytes().to_vec();
    // all but the last idempotent: a second run finds everything already as they make it
    let actions = [
        Action::Upsert(
            k("env"),
            Source::Value(vec![0x0a, 0x04, b'p', b'r', b'o', b'd']),
        ),
        Action::Delete(k("x")),
        Action::DeleteMatching,
        Action::Upsert(k("copy"), Source::From(k("env"))),
        Action::Hash(k("user.id")),
        Action::Rename(k("a"), k("b")), // a second `a` is renamed by a second run
    ];
    let used = &actions[..1 + (selector as usize >> 2) % actions.len()];
    let mut cache = Cache::default();
    let all = |_: usize, _: usize| true;
    let Ok(Some(out)) = apply(used, &mut cache, signal, wire, &all, &mut Fixed) else {
        return;
    };
    let index = message_index(root).unwrap();
    if wire_to_json(index, wire).is_ok() {
        wire_to_json(index, &out).expect("actions wrote bytes the reader refuses");
    }
    if used.len() < actions.len() {
        if let Ok(Some(again)) = apply(used, &mut cache, signal, &out, &all, &mut Fixed) {
            assert_eq!(again, out, "running the actions twice changed more");
        }
    }
});
