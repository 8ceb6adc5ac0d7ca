//! The GenAI formats on arbitrary bytes: splitting a request, the per-trace JSON document and
//! the Aperture record never panic; a document is JSON, whatever the spans' bytes.  The table is
//! a small one built here (a source of every reader, a prefix family, span events, a type rule),
//! the engine the same as with the shipped table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_router_native::genai::aperture;
use otlp_router_native::genai::document::{split_traces, trace_document, SpanPart};
use otlp_router_native::genai::table::{
    role_of, Case, Field, HashSet, Read, Source, Table, TypeRule,
};
use otlp_router_native::genai::value::{parse_json, Map, Value};
use otlp_router_native::genai::view::{Estimate, Priced};

fn source(
    fields: &mut Vec<Field>,
    field: &str,
    read: Read,
    key: Option<&str>,
    prefix: Option<&str>,
) -> Source {
    let index = fields
        .iter()
        .position(|f| f.name == field)
        .unwrap_or_else(|| {
            fields.push(Field {
                name: field.to_string(),
                role: role_of(field).expect("a known field"),
                merged: field == "metadata" || field == "usage.other",
                dict: field == "model_parameters",
            });
            fields.len() - 1
        });
    Source {
        field: index,
        priority: 0,
        read,
        key: key.map(str::to_string),
        prefix: prefix.map(str::to_string),
        events: vec![],
        attribute: None,
        compose: vec![],
        require: vec![],
        merge: vec![],
        in_python: false,
        span_names: Default::default(),
        constant: Value::Null,
        path: vec![],
        pick: None,
        values: None,
        unit: 1.0,
        exclude: Default::default(),
        known: true,
        when: None,
        prepend: None,
        scopes: None,
        system_instructions: false,
        fast: key.is_some(),
    }
}

fn table() -> Table {
    let mut fields = Vec::new();
    let mut sources = vec![
        source(
            &mut fields,
            "model",
            Read::Text,
            Some("gen_ai.request.model"),
            None,
        ),
        source(
            &mut fields,
            "provider",
            Read::Text,
            Some("gen_ai.provider.name"),
            None,
        ),
        source(
            &mut fields,
            "operation",
            Read::Operation,
            Some("gen_ai.operation.name"),
            None,
        ),
        source(
            &mut fields,
            "input",
            Read::Content,
            Some("gen_ai.input.messages"),
            None,
        ),
        source(
            &mut fields,
            "input",
            Read::Paths,
            None,
            Some("gen_ai.prompt."),
        ),
        source(
            &mut fields,
            "output",
            Read::ContentNonempty,
            Some("gen_ai.output.messages"),
            None,
        ),
        source(
            &mut fields,
            "usage.input",
            Read::Count,
            Some("gen_ai.usage.input_tokens"),
            None,
        ),
        source(
            &mut fields,
            "usage.output",
            Read::Count,
            Some("gen_ai.usage.output_tokens"),
            None,
        ),
        source(
            &mut fields,
            "usage.input_cached_tokens",
            Read::PositiveCount,
            Some("cached"),
            None,
        ),
        source(
            &mut fields,
            "usage.other",
            Read::UsageOther,
            None,
            Some("gen_ai.usage."),
        ),
        source(
            &mut fields,
            "usage_details",
            Read::UsageDetails,
            Some("usage_details"),
            None,
        ),
        source(&mut fields, "cost.total", Read::Usd, Some("cost"), None),
        source(
            &mut fields,
            "cost_details",
            Read::CostDetails,
            Some("cost_details"),
            None,
        ),
        source(
            &mut fields,
            "model_parameters",
            Read::Params,
            Some("params"),
            None,
        ),
        source(
            &mut fields,
            "model_parameters",
            Read::FlatParams,
            None,
            Some("gen_ai.request."),
        ),
        source(&mut fields, "tags", Read::Tags, Some("tags"), None),
        source(&mut fields, "metadata", Read::Flat, None, Some("metadata.")),
        source(&mut fields, "metadata", Read::Mapping, Some("meta"), None),
        source(&mut fields, "level", Read::Level, Some("level"), None),
        source(
            &mut fields,
            "environment",
            Read::Environment,
            Some("env"),
            None,
        ),
        source(
            &mut fields,
            "completion_start_time",
            Read::Time,
            Some("start"),
            None,
        ),
        source(
            &mut fields,
            "time_to_first_chunk",
            Read::Offset,
            Some("ttft"),
            None,
        ),
        source(&mut fields, "name", Read::JsString, Some("name"), None),
        source(&mut fields, "tools", Read::ToolList, Some("tools"), None),
        source(
            &mut fields,
            "tools",
            Read::OpenInferenceTools,
            None,
            Some("llm.tools."),
        ),
        source(
            &mut fields,
            "input",
            Read::LogfireInput,
            Some("events"),
            None,
        ),
        source(
            &mut fields,
            "output",
            Read::LogfireOutput,
            Some("events"),
            None,
        ),
        source(
            &mut fields,
            "system_instructions",
            Read::Content,
            Some("gen_ai.system_instructions"),
            None,
        ),
    ];
    for (read, name) in [
        (Read::EventMessages, "gen_ai.user.message"),
        (Read::EventChoices, "gen_ai.choice"),
    ] {
        let mut s = source(
            &mut fields,
            if read == Read::EventChoices {
                "output"
            } else {
                "input"
            },
            read,
            None,
            None,
        );
        s.events = vec![name.to_string()];
        s.fast = false;
        sources.push(s);
    }
    let rule = TypeRule {
        key: Some("gen_ai.operation.name".into()),
        values: Some(
            [("chat".to_string(), "GENERATION".to_string())]
                .into_iter()
                .collect(),
        ),
        prefixes: vec![],
        name_prefixes: vec![],
        span_names: None,
        any_of: vec![],
        ty: None,
        requires_any: vec![],
        case: Case::Lower,
        scopes: None,
        resource: None,
        version_at_most: None,
    };
    let keys: HashSet<String> = ["gen_ai.operation.name".to_string()].into_iter().collect();
    Table::new(
        fields,
        sources,
        vec![],
        vec![rule],
        keys,
        vec![],
        true,
        (
            Default::default(),
            vec!["gen_ai.prompt".into()],
            Default::default(),
        ),
        (Default::default(), vec![]),
    )
}

fn pricer(q: &Priced) -> Result<Option<Estimate>, otlp_router_native::genai::read::Python> {
    Ok(q.model.map(|m| Estimate {
        input: 1e-6,
        output: 2e-6,
        total: 3e-6,
        model: m.to_string(),
        provider: "p".into(),
    }))
}

fuzz_target!(|data: &[u8]| {
    thread_local!(static TABLE: Table = table());
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // parts separated by 0xff 0xfe: span, resource, span, resource, ...
    let chunks: Vec<&[u8]> = rest.split(|&b| b == 0xfe).collect();
    TABLE.with(|table| match mode % 3 {
        0 => {
            let _ = split_traces(rest);
        }
        1 => {
            let parts: Vec<SpanPart> = chunks
                .chunks(2)
                .map(|c| SpanPart {
                    span: c[0],
                    resource: c.get(1).copied().unwrap_or(b""),
                    scope_name: "s",
                    scope_version: "1",
                })
                .collect();
            if let Ok(doc) = trace_document(table, b"\x01\x02", &parts, &mut pricer, "fuzz") {
                let text = std::str::from_utf8(&doc).expect("UTF-8");
                assert!(
                    parse_json(text).is_some() || text.len() > 1_000_000,
                    "not JSON: {text}"
                );
            }
        }
        _ => {
            let part = SpanPart {
                span: chunks[0],
                resource: chunks.get(1).copied().unwrap_or(b""),
                scope_name: "ai",
                scope_version: "",
            };
            let _ = aperture::record(table, &part, 7, mode & 4 != 0, None, &mut pricer);
        }
    });
    let _ = Map::new();
});
