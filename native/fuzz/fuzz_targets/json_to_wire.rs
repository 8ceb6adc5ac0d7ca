//! The JSON transcoder on arbitrary bytes: it never panics; an error renders; what it accepts
//! is valid protobuf that the JSON writer reads back, and JSON -> wire -> JSON is stable after
//! one round (the written JSON decodes again to JSON identical to itself); the receiver's check
//! of transcoded bytes answers as the full intake check on them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_router_native::json::error::approx_python_str_repr;
use otlp_router_native::wire::inspect::{inspect, inspect_transcoded, Signal};
use otlp_router_native::{json_to_wire, message_index, wire_to_json, DecodeError};

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
    let name = ROOTS[selector as usize % ROOTS.len()];
    let root = message_index(name).unwrap();
    match json_to_wire(root, body) {
        Ok(wire) => {
            if let Some(signal) = Signal::of(name) {
                assert_eq!(inspect_transcoded(signal, &wire), inspect(signal, &wire));
            }
            let json = wire_to_json(root, &wire)
                .expect("the transcoder wrote wire bytes its reader refuses");
            let again = json_to_wire(root, &json).expect("written JSON does not decode");
            let json2 = wire_to_json(root, &again).expect("second round");
            assert_eq!(json, json2, "JSON -> wire -> JSON is not stable");
        }
        Err(DecodeError::Problem(p)) => {
            let text = p.render(&|s: &str| approx_python_str_repr(s));
            assert!(!text.is_empty());
        }
        Err(DecodeError::Syntax(_)) => {}
    }
});
