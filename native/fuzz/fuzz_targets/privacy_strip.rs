//! Privacy on arbitrary bytes: it never panics; damaged bytes are an error, never a guess; what
//! it writes for bytes the JSON writer reads is read by it too (lengths fixed up right), and
//! stripping that again with the same answers removes nothing more unless salvage added keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_router_native::privacy::{
    strip, Attr, Caches, ClassifyQuery, Hooks, RuleSets, Rules, Signal,
};
use otlp_router_native::{message_index, wire_to_json};

struct Fixed(bool);

impl Hooks for Fixed {
    type Error = ();
    fn classify(&mut self, _q: &ClassifyQuery) -> Result<bool, ()> {
        Ok(self.0)
    }
    fn salvage(&mut self, _attrs: &[Attr], _scope: &[u8]) -> Result<Vec<Vec<u8>>, ()> {
        // KeyValue{key: "gen_ai.usage.input_tokens", value: {int_value: 7}}
        let mut kv = vec![0x0a, 25];
        kv.extend_from_slice(b"gen_ai.usage.input_tokens");
        kv.extend_from_slice(&[0x12, 0x02, 0x18, 0x07]);
        Ok(vec![kv])
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
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
    let sets = (
        s(&["gen_ai.prompt", "genkit:output"]),
        s(&["gen_ai.prompt.", "a"]),
        s(&["gen_ai.prompt.name"]),
        s(&["gen_ai.choice", ""]),
        s(&["gen_ai.request.model"]),
        s(&["gen_ai.usage."]),
        s(&["gen_ai.operation.name", "gen_ai.request.model"]),
        s(&["telemetry.sdk.language"]),
        s(&["genkit:output"]),
    );
    let rules = Rules::new(&RuleSets {
        content_keys: &sets.0,
        content_prefixes: &sets.1,
        not_content: &sets.2,
        content_events: &sets.3,
        keep_keys: &sets.4,
        keep_prefixes: &sets.5,
        type_keys: &sets.6,
        resource_keys: &sets.7,
        salvage_keys: &sets.8,
    });
    let model = selector & 0x80 != 0;
    let mut caches = Caches::default();
    let Ok(Some((out, removed))) = strip(&rules, &mut caches, signal, wire, &mut Fixed(model))
    else {
        return;
    };
    assert!(removed > 0);
    let index = message_index(root).unwrap();
    if wire_to_json(index, wire).is_ok() {
        wire_to_json(index, &out).expect("privacy wrote bytes the reader refuses");
    }
    if let Ok(Some((_, again))) = strip(&rules, &mut caches, signal, &out, &mut Fixed(model)) {
        // only salvaged keys (not content here) can be met again, never what went
        panic!("stripping twice removed {again} more");
    }
});
