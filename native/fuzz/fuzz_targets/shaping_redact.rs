//! Redaction on arbitrary bytes: it never panics (nor overflows its stack on deep AnyValues);
//! damaged bytes are an error, never a guess; what it writes for bytes the JSON writer reads is
//! read by it too (lengths fixed up right), and redacting that again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_router_native::privacy::Signal;
use otlp_router_native::shaping::redaction::{redact, Cache, Masks, Redact, Rules};
use otlp_router_native::{message_index, wire_to_json};

/// Drops keys starting with `x`; masks by cutting a string at its first `@` (idempotent).
struct Cut;

impl Redact for Cut {
    type Error = ();
    fn drop(&mut self, key: &[u8]) -> Result<bool, ()> {
        Ok(key.first() == Some(&b'x'))
    }
    fn mask(&mut self, text: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        Ok(text
            .iter()
            .position(|&b| b == b'@')
            .map(|at| text[..at].to_vec()))
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
    let rules = Rules {
        masks: Masks {
            email: selector & 4 != 0,
            ..Masks::default()
        },
        keys: selector & 8 != 0,
    };
    let mut cache = Cache::default();
    let Ok(Some(out)) = redact(&rules, &mut cache, signal, wire, &mut Cut) else {
        return;
    };
    let index = message_index(root).unwrap();
    if wire_to_json(index, wire).is_ok() {
        wire_to_json(index, &out).expect("redaction wrote bytes the reader refuses");
    }
    if let Ok(Some(_)) = redact(&rules, &mut cache, signal, &out, &mut Cut) {
        panic!("redacting twice changed more");
    }
});
