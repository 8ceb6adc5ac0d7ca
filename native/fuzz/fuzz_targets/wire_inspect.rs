//! The intake check on arbitrary bytes: it never panics, and whatever it vouches for (a count)
//! is protobuf that the core's independent wire reader (the JSON writer) reads whole, with no
//! more items than the bytes could hold.  Its agreement with upb itself is tested in Python
//! (tests/test_native_inspect.py), where upb is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_router_native::wire::inspect::{inspect, Signal};
use otlp_router_native::{message_index, wire_to_json};

const KINDS: [&str; 3] = ["traces", "logs", "metrics"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, wire)) = data.split_first() else {
        return;
    };
    let kind = KINDS[selector as usize % KINDS.len()];
    let signal = Signal::of(kind).unwrap();
    if let Some(items) = inspect(signal, wire) {
        // every counted item (a span, a log record, a data point) takes at least 2 bytes
        assert!(
            items as usize <= wire.len() / 2,
            "{items} items in {} bytes",
            wire.len()
        );
        wire_to_json(message_index(kind).unwrap(), wire)
            .expect("vouched-for bytes the wire reader refuses");
    }
});
