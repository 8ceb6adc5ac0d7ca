//! Tailscale Aperture export records (destinations/formats/aperture.py's `record` +
//! `encode_record`): one CBOR map per model call, byte for byte what cbor2 writes for the
//! record Python builds from the same view.

use std::rc::Rc;

use super::document::{hex, parse_span, resource_attributes, span_view, SpanPart};
use super::read::{self, Python};
use super::table::Table;
use super::value::{self, Map, Value};
use super::view::{Attrs, Pricer, View};

const VERSION: i128 = 2;

fn api_path(api_type: &str) -> &'static str {
    match api_type {
        "oai_completions" => "/v1/chat/completions",
        "oai_text_completions" => "/v1/completions",
        "oai_responses" => "/v1/responses",
        "oai_embeddings" => "/v1/embeddings",
        "ant_messages" => "/v1/messages",
        "gai_generate_content" => "/v1beta/models/{model}:generateContent",
        "gai_embed_content" => "/v1beta/models/{model}:embedContent",
        "bedrock_model_invoke" => "/model/{model}/invoke",
        _ => "",
    }
}

const PATH_API_TYPES: [(&str, &str); 8] = [
    ("/chat/completions", "oai_completions"),
    ("/completions", "oai_text_completions"),
    ("/responses", "oai_responses"),
    ("/embeddings", "oai_embeddings"),
    ("/messages", "ant_messages"),
    (":generateContent", "gai_generate_content"),
    (":streamGenerateContent", "gai_generate_content"),
    (":embedContent", "gai_embed_content"),
];

fn provider_family(provider: &str) -> Option<&'static str> {
    Some(match provider {
        "openai" | "azure.ai.openai" | "az.ai.openai" | "azure" | "azure_openai" => "openai",
        "openrouter" | "azure.ai.inference" | "az.ai.inference" | "groq" | "deepseek"
        | "mistral_ai" | "mistralai" | "x_ai" | "xai" | "perplexity" | "together_ai"
        | "together" | "fireworks" | "ollama" | "vllm" => "openai_compatible",
        "anthropic" => "anthropic",
        "gcp.gemini" | "gcp.gen_ai" | "gemini" | "google" | "google ai studio" => "gemini",
        "gcp.vertex_ai" | "vertex_ai" | "vertexai" | "google vertex" => "vertex",
        "aws.bedrock" | "bedrock" | "amazon bedrock" => "bedrock",
        _ => return None,
    })
}

const MODEL_PREFIXES: [(&str, &str); 9] = [
    ("claude", "anthropic"),
    ("gemini", "gemini"),
    ("gpt-", "openai"),
    ("chatgpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-3", "openai"),
    ("text-embedding-ada", "openai"),
];

fn operation_kind(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "chat" | "generate_content" => "chat",
        "text_completion" => "text_completion",
        "embeddings" => "embeddings",
        "responses" => "responses",
        _ => return None,
    })
}

fn api_type_of(family: &str, kind: &str) -> &'static str {
    match (family, kind) {
        ("openai", "chat") | ("openai_compatible", "chat") => "oai_completions",
        ("openai", "text_completion") | ("openai_compatible", "text_completion") => {
            "oai_text_completions"
        }
        ("openai", "embeddings") | ("openai_compatible", "embeddings") => "oai_embeddings",
        ("openai", "responses") => "oai_responses",
        ("anthropic", "chat") | ("anthropic", "text_completion") => "ant_messages",
        ("gemini", "chat") | ("gemini", "text_completion") => "gai_generate_content",
        ("gemini", "embeddings") => "gai_embed_content",
        ("vertex", "chat") | ("vertex", "text_completion") => "vertex_generate_content",
        ("bedrock", "chat") | ("bedrock", "text_completion") | ("bedrock", "embeddings") => {
            "bedrock_model_invoke"
        }
        _ => "unknown",
    }
}

const OPENROUTER_MARKERS: [&str; 2] = ["openrouter.provider_slug", "openrouter.api_key_name"];
const NODE_KEYS: [&str; 3] = ["host.id", "service.instance.id", "host.name"];
const PATH_KEYS: [&str; 3] = ["http.route", "url.path", "http.target"];
const STATUS_KEYS: [&str; 2] = ["http.response.status_code", "http.status_code"];
const REQUEST_HEADER: &str = "http.request.header.";
const RESPONSE_HEADER: &str = "http.response.header.";
const SECRET_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
];
const CALL_TYPES: [&str; 3] = ["tool_call", "tool_use", "function_call"];

fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

static NULL: Value = Value::Null;

/// `x or y` of two values (None for a missing one).
fn either<'a>(a: Option<&'a Value>, b: Option<&'a Value>) -> &'a Value {
    match a {
        Some(x) if x.truthy() => x,
        _ => b.unwrap_or(&NULL),
    }
}

fn or(a: Option<&Value>, b: Option<&Value>) -> Value {
    either(a, b).clone()
}

/// A non-empty string of the view (its text readers give strings), as `view.x or ""` reads it.
fn text_or_empty(v: &Value) -> Result<String, Python> {
    match v {
        Value::Null => Ok(String::new()),
        Value::Str(x) => Ok(x.clone()),
        _ => Err(Python),
    }
}

fn request_path(v: Option<&Value>) -> Option<String> {
    let Some(Value::Str(text)) = v else {
        return None;
    };
    let path = text.split('?').next().unwrap_or("").trim_end_matches('/');
    (!path.is_empty()).then(|| path.to_string())
}

fn status(v: Option<&Value>) -> Result<Option<i128>, Python> {
    let n = match v {
        Some(Value::Str(text)) => {
            if text.is_empty() || !text.chars().all(char::is_numeric) {
                return Ok(None);
            }
            if !text.is_ascii() {
                return Err(Python); // Unicode digits: what int() makes of them is Python's
            }
            text.trim_start_matches('0').parse::<i128>().unwrap_or(
                if text.trim_start_matches('0').is_empty() {
                    0
                } else {
                    i128::MAX
                },
            )
        }
        Some(Value::Int(n)) => *n,
        _ => return Ok(None),
    };
    Ok((100..=599).contains(&n).then_some(n))
}

/// Python's `str()` of a header value.
fn header_text(v: &Value) -> Result<String, Python> {
    Ok(match v {
        Value::Str(x) => x.clone(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => read::float_str(*f),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        _ => return Err(Python),
    })
}

fn add_header(headers: &mut Map, name: &str, v: &Value) -> Result<(), Python> {
    if name.is_empty() || SECRET_HEADERS.contains(&name.to_lowercase().as_str()) {
        return Ok(());
    }
    let values: Vec<&Value> = match v {
        Value::List(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for x in values {
        if !matches!(x, Value::Null) {
            out.push(Value::Str(header_text(x)?));
        }
    }
    headers.insert(name.to_string(), Value::List(out));
    Ok(())
}

fn is_call(item: &Map) -> bool {
    matches!(item.get("type"), Some(Value::Str(kind)) if CALL_TYPES.contains(&kind.as_str()))
}

fn tool_use(call: &Map) -> Value {
    let call = match call.get("tool_call") {
        Some(Value::Map(inner)) => inner,
        _ => call,
    };
    let (name, arguments) = match call.get("function") {
        Some(Value::Map(function)) => (
            function.get("name").cloned(),
            function.get("arguments").cloned(),
        ),
        _ => (
            call.get("name").cloned(),
            if call.contains_key("arguments") {
                call.get("arguments").cloned()
            } else {
                call.get("input").cloned()
            },
        ),
    };
    Value::Map(Map(vec![
        ("id".into(), or(call.get("call_id"), call.get("id"))),
        ("name".into(), name.unwrap_or(Value::Null)),
        ("arguments".into(), arguments.unwrap_or(Value::Null)),
    ]))
}

/// `_tool_uses`: the tool calls in a span's output, whichever message shape holds them.
fn tool_uses(output: &Value) -> Vec<Value> {
    // Borrowed: an output's messages hold its content, copied for nothing but a look.
    let messages: Vec<&Value> = match output {
        Value::List(items) => items.iter().collect(),
        Value::Map(m) => match (m.get("choices"), m.get("output")) {
            (Some(Value::List(choices)), _) => choices
                .iter()
                .filter_map(|c| match c {
                    Value::Map(c) => Some(either(c.get("message"), c.get("delta"))),
                    _ => None,
                })
                .collect(),
            (_, Some(Value::List(items))) => items.iter().collect(),
            _ => vec![output],
        },
        _ => return vec![],
    };
    let mut uses = Vec::new();
    for message in messages {
        let message = match message {
            Value::Map(m) => match m.get("message") {
                Some(Value::Map(inner)) => inner,
                _ => m,
            },
            _ => continue,
        };
        if is_call(message) {
            uses.push(tool_use(message));
            continue;
        }
        if let Some(Value::List(calls)) = message.get("tool_calls") {
            uses.extend(calls.iter().filter_map(|c| match c {
                Value::Map(c) => Some(tool_use(c)),
                _ => None,
            }));
        }
        for key in ["parts", "content"] {
            if let Some(Value::List(items)) = message.get(key) {
                uses.extend(items.iter().filter_map(|i| match i {
                    Value::Map(i) if is_call(i) => Some(tool_use(i)),
                    _ => None,
                }));
            }
        }
        if let Some(Value::Map(call)) = message.get("function_call") {
            uses.push(tool_use(call));
        }
    }
    uses
}

/// `_body`: a body as text, whose UTF-8 is its bytes too; None for none (`None, b""`). What is
/// not a string is JSON to write (orjson's dumps), checked here before a byte of the record is.
enum Body<'a> {
    None,
    Text(&'a str),
    Json(&'a Value),
}

fn body(v: &Value) -> Result<Body<'_>, Python> {
    Ok(match v {
        Value::Null => Body::None,
        Value::Str(x) => Body::Text(x),
        other if value::dumpable(other, 0) => Body::Json(other),
        _ => return Err(Python),
    })
}

/// A body as a CBOR text (null for none), written straight into the record: a dumped one after a
/// head sized for 256 to 65535 bytes, moved where it is of another length. Where its bytes are,
/// for the raw body after it.
fn write_body(out: &mut Vec<u8>, body: &Body) -> Option<std::ops::Range<usize>> {
    match body {
        Body::None => {
            out.push(0xf6);
            None
        }
        Body::Text(x) => {
            text(out, x);
            Some(out.len() - x.len()..out.len())
        }
        Body::Json(v) => {
            let at = out.len();
            out.extend_from_slice(&[0x79, 0, 0]);
            value::write_json(v, out);
            let n = out.len() - at - 3;
            if (0x100..=0xffff).contains(&n) {
                out[at + 1..at + 3].copy_from_slice(&(n as u16).to_be_bytes());
            } else {
                let mut h = Vec::with_capacity(9);
                head(&mut h, 3, n as u64);
                out.splice(at..at + 3, h);
            }
            Some(out.len() - n..out.len())
        }
    }
}

/// The raw body: the text's bytes again, as a CBOR byte string (empty for none).
fn write_raw_body(out: &mut Vec<u8>, written: Option<std::ops::Range<usize>>) {
    let range = written.unwrap_or(0..0);
    head(out, 2, range.len() as u64);
    out.extend_from_within(range);
}

fn api_type(v: &View, path: Option<&str>) -> Result<&'static str, Python> {
    if let Some(path) = path {
        if let Some((_, t)) = PATH_API_TYPES
            .iter()
            .find(|(ending, _)| path.ends_with(ending))
        {
            return Ok(t);
        }
    }
    let Value::Map(metadata) = &v.metadata else {
        return Err(Python);
    };
    let family = if OPENROUTER_MARKERS.iter().any(|m| metadata.contains_key(m)) {
        Some("openai_compatible")
    } else if v.provider.truthy() {
        let Value::Str(provider) = &v.provider else {
            return Err(Python);
        };
        provider_family(&provider.to_lowercase())
    } else {
        let model = text_or_empty(&v.model)?.to_lowercase();
        MODEL_PREFIXES
            .iter()
            .find(|(p, _)| model.starts_with(p))
            .map(|(_, f)| *f)
    };
    let Some(family) = family else {
        return Ok("unknown");
    };
    let operation = text_or_empty(&v.operation)?;
    let kind = operation_kind(&operation).unwrap_or(if v.ty == "EMBEDDING" {
        "embeddings"
    } else {
        "chat"
    });
    Ok(api_type_of(family, kind))
}

/// The record's CBOR of a span, None when it is no model call.
#[allow(clippy::too_many_arguments)]
pub fn record(
    table: &Table,
    part: &SpanPart,
    record_id: i128,
    privacy: bool,
    api_key_name: Option<&str>,
    pricer: &mut Pricer,
) -> Result<Option<Vec<u8>>, Python> {
    let resource = resource_attributes(part.resource)?;
    let mut cbor = Vec::new();
    let made = record_into(
        &mut cbor,
        table,
        part,
        &resource,
        record_id,
        privacy,
        api_key_name,
        pricer,
    )?;
    Ok(made.then_some(cbor))
}

/// `record` of a span whose resource is read already (the spans of a request share a few),
/// written at the end of `cbor`; false when the span is not a model call.
#[allow(clippy::too_many_arguments)]
pub fn record_into(
    cbor: &mut Vec<u8>,
    table: &Table,
    part: &SpanPart,
    resource: &Rc<Attrs>,
    record_id: i128,
    privacy: bool,
    api_key_name: Option<&str>,
    pricer: &mut Pricer,
) -> Result<bool, Python> {
    let span = parse_span(part.span)?;
    let (attrs, v) = span_view(table, &span, part, resource, pricer, true)?;
    if !v.is_genai {
        return Ok(false);
    }

    // The span's own attributes, as read for its view (each key once, with its last value).
    let mut found: Vec<(&str, &Value)> = Vec::new(); // paths and status codes
    let mut request_headers = Map::new();
    let mut response_headers = Map::new();
    let mut tool: [Option<&Value>; 3] = [None; 3]; // the span's own call: id, name, arguments
    for (key, value) in attrs.own() {
        if !(key.starts_with("http.") || key.starts_with("url.") || key.starts_with("gen_ai.tool."))
        {
            continue;
        }
        if PATH_KEYS.contains(&key) || STATUS_KEYS.contains(&key) {
            found.push((key, value));
        } else if privacy {
            continue;
        } else if let Some(name) = key.strip_prefix(REQUEST_HEADER) {
            add_header(&mut request_headers, name, value)?;
        } else if let Some(name) = key.strip_prefix(RESPONSE_HEADER) {
            add_header(&mut response_headers, name, value)?;
        } else if let Some(slot) = match key {
            "gen_ai.tool.call.id" => Some(0),
            "gen_ai.tool.name" => Some(1),
            "gen_ai.tool.call.arguments" => Some(2),
            _ => None,
        } {
            tool[slot] = Some(value);
        }
    }

    let found = |k: &str| found.iter().find(|(x, _)| *x == k).map(|(_, v)| *v);
    let model = text_or_empty(&v.model)?;
    let path_found = PATH_KEYS.iter().find_map(|k| request_path(found(k)));
    let api_type = api_type(&v, path_found.as_deref())?;
    let path = match path_found {
        Some(p) => p,
        None => {
            let p = api_path(api_type);
            if p.contains("{model}") {
                if model.is_empty() {
                    String::new()
                } else {
                    p.replace("{model}", &model)
                }
            } else {
                p.to_string()
            }
        }
    };
    let mut status_code = None;
    for k in STATUS_KEYS {
        if let Some(code) = status(found(k))? {
            status_code = Some(code);
            break;
        }
    }
    let status_code = status_code.unwrap_or(if span.status_code == 2 { 500 } else { 200 });

    let usage: Vec<(&str, i128)> = [
        ("input_tokens", v.counts[0]),
        ("output_tokens", v.counts[1]),
        ("cached_tokens", v.counts[3]),
        ("reasoning_tokens", v.counts[4]),
    ]
    .into_iter()
    .filter_map(|(key, count)| count.map(|n| (key, n)))
    .collect();
    let Value::Map(metadata) = &v.metadata else {
        return Err(Python);
    };
    let api_key_name_value;
    let login_name = if v.user_id.truthy() {
        &v.user_id
    } else if let Some(name) = api_key_name.filter(|n| !n.is_empty()) {
        api_key_name_value = s(name);
        &api_key_name_value
    } else {
        api_key_name_value = read::text(
            metadata
                .get("openrouter.api_key_name")
                .unwrap_or(&Value::Null),
        )
        .unwrap_or_else(|| s(""));
        &api_key_name_value
    };
    let stable_node_id = NODE_KEYS
        .iter()
        .find_map(|k| read::text(resource.get(k).unwrap_or(&Value::Null)))
        .unwrap_or_else(|| s(""));
    let timestamp = rfc3339_nanos(span.start);
    let capture_id = hex(span.span_id);
    let no_session = s("");
    let session_id = if v.session_id.truthy() {
        &v.session_id
    } else {
        &no_session
    };
    let elapsed = span.end as i128 - span.start as i128;
    let duration = if span.end != 0 && elapsed > 0 {
        (elapsed + 500_000).div_euclid(1_000_000)
    } else {
        0
    };
    let cost_basis = v.cost.map(|_| match &v.estimate {
        Some(e) => e.model.as_str(),
        None => model.as_str(),
    });
    // What only the capture holds, read (and refused where Python's) before a byte is written.
    let capture = if privacy {
        None
    } else {
        let mut uses = tool_uses(&v.output);
        if tool[0].is_some() || tool[1].is_some() {
            let get = |slot: usize| tool[slot].cloned().unwrap_or(Value::Null);
            uses.push(Value::Map(Map(vec![
                ("id".into(), get(0)),
                ("name".into(), get(1)),
                ("arguments".into(), get(2)),
            ])));
        }
        let Value::List(tags) = &v.tags else {
            return Err(Python);
        };
        let bodies = (body(&v.input)?, body(&v.output)?);
        Some((uses, tags, bodies))
    };

    // The record, written as cbor2 writes the dict Python builds, keys in its order.
    cbor.reserve(part.span.len() * 2 + 256);
    let out = cbor;
    head(
        out,
        5,
        12 + u64::from(cost_basis.is_some()) + u64::from(capture.is_some()),
    );
    key(out, "id");
    int(out, record_id);
    key(out, "ver");
    int(out, VERSION);
    key(out, "timestamp");
    text(out, &timestamp);
    key(out, "identity");
    head(out, 5, 2);
    key(out, "login_name");
    write_cbor(login_name, out);
    key(out, "stable_node_id");
    write_cbor(&stable_node_id, out);
    key(out, "model");
    text(out, &model);
    key(out, "api_type");
    text(out, api_type);
    key(out, "usage");
    write_usage(out, &usage);
    if let (Some(cost), Some(basis)) = (v.cost, cost_basis) {
        key(out, "estimated_cost");
        head(out, 5, 3);
        key(out, "dollars");
        write_cbor(&Value::Float(cost), out);
        key(out, "cost_basis");
        text(out, basis);
        key(out, "usage");
        write_usage(out, &usage);
    }
    key(out, "duration_ms");
    int(out, duration);
    key(out, "capture_id");
    text(out, &capture_id);
    key(out, "session_id");
    write_cbor(session_id, out);
    key(out, "path");
    text(out, &path);
    key(out, "status_code");
    int(out, status_code);
    if let Some((uses, tags, (request, response))) = capture {
        key(out, "capture");
        head(out, 5, 16);
        key(out, "id");
        text(out, &capture_id);
        key(out, "model");
        text(out, &model);
        key(out, "startTime");
        text(out, &timestamp);
        key(out, "loginName");
        write_cbor(login_name, out);
        key(out, "stableNodeId");
        write_cbor(&stable_node_id, out);
        key(out, "tags");
        write_list(out, tags);
        key(out, "statusCode");
        int(out, status_code);
        key(out, "path");
        text(out, &path);
        key(out, "toolUseData");
        write_list(out, &uses);
        key(out, "requestHeaders");
        write_map(out, &request_headers);
        key(out, "responseHeaders");
        write_map(out, &response_headers);
        key(out, "requestBody");
        let request = write_body(out, &request);
        key(out, "responseBody");
        let response = write_body(out, &response);
        key(out, "rawRequestBody");
        write_raw_body(out, request);
        key(out, "rawResponseBody");
        write_raw_body(out, response);
        key(out, "sessionId");
        write_cbor(session_id, out);
    }
    Ok(true)
}

fn write_usage(out: &mut Vec<u8>, usage: &[(&str, i128)]) {
    head(out, 5, usage.len() as u64);
    for (name, n) in usage {
        key(out, name);
        int(out, *n);
    }
}

/// genai.py's `rfc3339` with 9 digits.
fn rfc3339_nanos(unix_nano: u64) -> String {
    read::format_utc_fraction(
        (unix_nano / 1_000_000_000) as i64,
        (unix_nano % 1_000_000_000) as i64,
        9,
    )
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// cbor2.dumps of a value with cbor2's defaults: definite lengths, minimal heads, floats as
/// doubles (NaN and the infinities as half floats), integers past 64 bits as bignums.
pub fn write_cbor(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Int(n) => int(out, *n),
        Value::Float(f) => {
            if f.is_nan() {
                out.extend_from_slice(&[0xf9, 0x7e, 0x00]);
            } else if f.is_infinite() {
                out.extend_from_slice(if *f > 0.0 {
                    &[0xf9, 0x7c, 0x00]
                } else {
                    &[0xf9, 0xfc, 0x00]
                });
            } else {
                out.push(0xfb);
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
        Value::Str(x) => text(out, x),
        Value::Bytes(b) => {
            head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::List(items) => write_list(out, items),
        Value::Map(m) => write_map(out, m),
    }
}

fn write_list(out: &mut Vec<u8>, items: &[Value]) {
    head(out, 4, items.len() as u64);
    for x in items {
        write_cbor(x, out);
    }
}

fn write_map(out: &mut Vec<u8>, m: &Map) {
    head(out, 5, m.len() as u64);
    for (k, x) in m.iter() {
        key(out, k);
        write_cbor(x, out);
    }
}

fn text(out: &mut Vec<u8>, x: &str) {
    head(out, 3, x.len() as u64);
    out.extend_from_slice(x.as_bytes());
}

/// A map's key (always a text).
fn key(out: &mut Vec<u8>, k: &str) {
    text(out, k)
}

fn int(out: &mut Vec<u8>, n: i128) {
    let (major, magnitude) = if n >= 0 {
        (0, n as u128)
    } else {
        (1, (-1 - n) as u128)
    };
    match u64::try_from(magnitude) {
        Ok(m) => head(out, major, m),
        Err(_) => {
            out.push(0xc2 + major); // tag 2 (positive) or 3 (negative) bignum
            let bytes = magnitude.to_be_bytes();
            let first = bytes
                .iter()
                .position(|&b| b != 0)
                .unwrap_or(bytes.len() - 1);
            head(out, 2, (bytes.len() - first) as u64);
            out.extend_from_slice(&bytes[first..]);
        }
    }
}
