//! The single-pass transcoder against the exact tape path on arbitrary bytes: whatever the
//! fast path returns, the exact path returns too, byte for byte (the fast path may give up on
//! anything; it may never accept what the exact path refuses, nor write other bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_router_native::json::{decode::exact, fast::transcode};
use otlp_router_native::message_index;

const ROOTS: [&str; 5] = [
    "traces",
    "logs",
    "metrics",
    "opentelemetry.proto.common.v1.AnyValue",
    "opentelemetry.proto.trace.v1.Span",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let root = message_index(ROOTS[selector as usize % ROOTS.len()]).unwrap();
    if let Some(fast) = transcode(root, body) {
        match exact(root, body) {
            Ok(wire) => assert!(wire == fast, "the fast path wrote other bytes"),
            Err(e) => panic!("the fast path accepted what the exact path refuses: {e:?}"),
        }
    }
});
