//! Routing on arbitrary bytes: the rule evaluator, selection and the partition keys never panic;
//! damaged bytes are an error, never a guess.  What it routes, it splits whole: every item is in
//! one group, the groups' selections hold every item once (re-routed, each takes the routes it
//! took), and a selection of bytes the JSON writer reads is read by it too.  Agreement with
//! upb and with Python's semantics is tested in Python (tests/test_native_routing.py).
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_router_native::routing::{
    item_keys, route, select, Cmp, KeyBy, Keys, Pattern, Program, Route, Rule, Test, Value,
};
use otlp_router_native::wire::otlp::Signal;
use otlp_router_native::{message_index, wire_to_json};

const SIGNALS: [(Signal, &str); 3] = [
    (Signal::Traces, "traces"),
    (Signal::Logs, "logs"),
    (Signal::Metrics, "metrics"),
];

fn program() -> Program {
    let mut keys = Keys::default();
    let k = keys.subject(0, "k");
    let service = keys.subject(1, "service.name");
    let scoped = keys.subject(2, "k");
    use otlp_router_native::routing::Subject::*;
    let cond = |s, t| Rule::Cond(s, t);
    let routes = vec![
        Route {
            signals: [true, true, true],
            rule: Some(Rule::Any(vec![
                cond(k, Test::Equals(Value::Int(1))),
                cond(
                    k,
                    Test::In(vec![
                        Value::Str("a".into()),
                        Value::List(vec![Value::Bool(true)]),
                    ]),
                ),
                cond(
                    k,
                    Test::Equals(Value::Dict(vec![("a".into(), Value::Float(1.0))])),
                ),
            ])),
            stop: false,
        },
        Route {
            signals: [true, true, false],
            rule: Some(Rule::All(vec![
                cond(Name, Test::Regex(Pattern::new("^(chat|gen_ai)").unwrap())),
                Rule::Not(Box::new(cond(Kind, Test::Equals(Value::Int(2))))),
            ])),
            stop: true,
        },
        Route {
            signals: [true, true, true],
            rule: Some(Rule::Any(vec![
                cond(service, Test::Prefix("svc".into())),
                cond(scoped, Test::Exists(true)),
                cond(ScopeName, Test::NotEquals(Value::Str(String::new()))),
                cond(ScopeVersion, Test::Number(Cmp::Ge, 1.0)),
                cond(Status, Test::In(vec![Value::Int(2)])),
                cond(Severity, Test::Number(Cmp::Gt, 16.0)),
                cond(ApiKey, Test::Equals(Value::Str("prod".into()))),
                cond(k, Test::Number(Cmp::Lt, 0.5)),
            ])),
            stop: false,
        },
        Route {
            signals: [false, true, true],
            rule: None,
            stop: false,
        },
    ];
    Program::new(routes, keys)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, wire)) = data.split_first() else {
        return;
    };
    let (signal, kind) = SIGNALS[selector as usize % 3];
    let program = program();
    let allowed = [true, selector & 8 == 0, true, selector & 16 == 0];
    let allowed = (selector & 4 != 0).then_some(&allowed[..]);
    // the event-name hook answers like Python's str() would for something
    let mut hook = |b: &[u8]| -> Result<String, ()> { Ok(format!("{}", b.len())) };
    let Ok(routed) = route(&program, signal, wire, Some(b"prod"), allowed, &mut hook) else {
        return;
    };
    let items = routed.groups.len();
    assert_eq!(routed.choices.len(), routed.weights.len());
    assert!(routed
        .groups
        .iter()
        .all(|&g| (g as usize) < routed.choices.len()));
    let readable = wire_to_json(message_index(kind).unwrap(), wire).is_ok();
    let mut total = 0;
    for g in 0..routed.choices.len() {
        let mut take = vec![false; routed.choices.len()];
        take[g] = true;
        let (part, count) =
            select(signal, wire, &routed.groups, &take).expect("routed bytes select");
        assert_eq!(count, routed.weights[g]);
        if readable {
            wire_to_json(message_index(kind).unwrap(), &part)
                .expect("a selection the writer refuses");
        }
        let again = route(&program, signal, &part, Some(b"prod"), allowed, &mut hook)
            .expect("a selection routing refuses");
        assert_eq!(again.choices, vec![routed.choices[g].clone()]);
        total += again.groups.len();
    }
    assert_eq!(total, items);
    for by in [KeyBy::TraceId, KeyBy::Service, KeyBy::TraceIdOrService] {
        if let Ok((keys, index)) = item_keys(signal, wire, by) {
            assert_eq!(index.len(), items);
            assert!(index.iter().all(|&k| (k as usize) < keys.len()));
        }
    }
});
