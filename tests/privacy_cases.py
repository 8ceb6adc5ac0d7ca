"""Requests for privacy's golden corpus (tests/golden/make_privacy.py) and its differential tests
(tests/test_native_privacy.py): GenAI fixtures, the bench payload, GenAI event log records, and
hypothesis strategies whose attribute keys are drawn from the conventions table (content keys and
prefixes, not-content keys, kept keys and prefixes, type keys with values the type rules read,
salvage keys holding JSON usage) mixed with arbitrary ones."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

from google.protobuf.message import Message
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otlp_router.model import conventions, otlp_json
from proto_tests.test_otlp_json import any_values, build, doubles, int64s, texts

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "genai"

_table = conventions.active()
_type_values = sorted({v for r in _table.type_rules for v in (r.values or {})}
                      | {p for r in _table.type_rules for p, _ in r.prefixes})
_span_names = sorted({n for r in _table.type_rules for n in (r.span_names or {})}
                     | {p + "gpt-4o" for r in _table.type_rules for p, _ in r.name_prefixes})

CONTENT_KEYS = sorted(_table.content_keys)
CONTENT_PREFIXES = list(_table.content_prefixes)
KEEP_KEYS = sorted(_table.keep_keys)
KEEP_PREFIXES = list(_table.keep_prefixes)
TYPE_KEYS = sorted(_table.type_keys)
SALVAGE_KEYS = sorted(_table.salvage)
CONTENT_EVENTS = sorted(_table.content_events)
NOT_CONTENT = sorted(_table.not_content)


def _string(s: str) -> AnyValue:
    return AnyValue(string_value=s)


type_values = st.one_of(
    st.sampled_from(_type_values).map(_string),
    st.sampled_from(_type_values).map(lambda v: _string(f'"{v}"')),          # MLflow's JSON-quoted
    st.sampled_from(_type_values).map(lambda v: _string(v.upper())),
    st.sampled_from(["gpt-4o", "claude-3", "", "x"]).map(_string),
    any_values(),
)
_usage_json = st.builds(
    lambda a, b, c, nested, cfg: json.dumps({
        "usage": {"inputTokens": a, "outputTokens": b, "totalTokens": c, "prompt_tokens": a,
                  "completion_tokens": b, "input_tokens": a, "output_tokens": b, "thoughtsTokens": c},
        "usage_metadata": {"cached_content_token_count": a},
        "model": nested, "config": cfg, "request": {"config": cfg}}),
    st.integers(0, 10**6), st.integers(-5, 10**6) | st.just("7"), st.integers(0, 10**6) | st.none(),
    st.sampled_from(["gpt-4o", "", "m"]) | st.none(), st.dictionaries(st.sampled_from(["temperature", "top_p"]),
                                                                       doubles | st.integers(0, 9), max_size=2))
salvage_values = st.one_of(
    _usage_json.map(_string),
    st.sampled_from(["", "not json", "[1, 2]", '"s"', "{bad"]).map(_string),
    any_values(),
)

suffixes = st.sampled_from(["", "0", "0.content", "x.y", "name", "1.role"])
keys = st.one_of(
    st.sampled_from(CONTENT_KEYS),
    st.tuples(st.sampled_from(CONTENT_PREFIXES), suffixes).map("".join),
    st.sampled_from(NOT_CONTENT or ["gen_ai.prompt.name"]),
    st.sampled_from(KEEP_KEYS),
    st.tuples(st.sampled_from(KEEP_PREFIXES), suffixes).map("".join),
    st.sampled_from(TYPE_KEYS),
    st.sampled_from(SALVAGE_KEYS),
    st.sampled_from(["request_data", "response_data", "event.name", "service.name", "http.method", "my.custom",
                     "gen_ai.usage.input_tokens", "llm.response.model", "llm.invocation_parameters", ""]),
    texts,
)


def _kv(key: str, draw_value: Any) -> KeyValue:
    return KeyValue(key=key, value=draw_value)


@st.composite
def key_values(draw: Any) -> KeyValue:
    key = draw(keys)
    if key in _table.type_keys:
        value = draw(type_values)
    elif key in _table.salvage:
        value = draw(salvage_values)
    elif key == "event.name":
        value = draw(st.sampled_from(CONTENT_EVENTS + ["other.event", ""]).map(_string) | any_values())
    else:
        value = draw(st.one_of(texts.map(_string), int64s.map(lambda i: AnyValue(int_value=i)), any_values()))
    return KeyValue(key=key, value=value)


attributes = st.lists(key_values(), max_size=8)
resource_attributes = st.lists(st.one_of(
    key_values(), st.sampled_from(["python", "js", ""]).map(
        lambda v: KeyValue(key="telemetry.sdk.language", value=_string(v)))), max_size=4)
resources = build(Resource, attributes=resource_attributes)
scope_names = st.sampled_from(["genkit-tracer", "gcp.vertex.agent", "livekit-agents", "langfuse-sdk",
                               "openai.instrumentation", ""]) | texts
scope_versions = st.sampled_from(["", "3.2.0", "3.3", "3.4.1", "2.60.0", "x"]) | texts
scopes = build(InstrumentationScope, name=scope_names, version=scope_versions, attributes=attributes)
event_names = st.sampled_from(CONTENT_EVENTS + ["exception", "gen_ai.other", ""]) | texts
span_names = st.sampled_from(_span_names + ["chat gpt-4o", "plain"]) | texts
spans = build(
    Span, trace_id=st.just(b"\x01" * 16), span_id=st.just(b"\x02" * 8), name=span_names,
    attributes=attributes,
    events=st.lists(build(Span.Event, time_unix_nano=st.integers(0, 10), name=event_names, attributes=attributes),
                    max_size=3),
    links=st.lists(build(Span.Link, trace_id=st.just(b"\x03" * 16), span_id=st.just(b"\x04" * 8),
                         attributes=attributes), max_size=1),
    start_time_unix_nano=st.integers(0, 2**64 - 1),
)
trace_requests = st.lists(build(ResourceSpans, resource=resources, schema_url=texts, scope_spans=st.lists(
    build(ScopeSpans, scope=scopes, schema_url=texts, spans=st.lists(spans, max_size=4)), max_size=2)),
    max_size=2).map(lambda rs: ExportTraceServiceRequest(resource_spans=rs))

log_records = build(
    LogRecord, time_unix_nano=st.integers(0, 10), body=any_values(), attributes=attributes,
    event_name=event_names, severity_text=texts,
)
logs_requests = st.lists(build(ResourceLogs, resource=resources, schema_url=texts, scope_logs=st.lists(
    build(ScopeLogs, scope=scopes, schema_url=texts, log_records=st.lists(log_records, max_size=4)), max_size=2)),
    max_size=2).map(lambda rs: ExportLogsServiceRequest(resource_logs=rs))

exemplars = st.lists(build(m.Exemplar, filtered_attributes=attributes, as_double=doubles), max_size=1)
number_points = st.lists(build(m.NumberDataPoint, attributes=attributes, as_int=int64s, exemplars=exemplars),
                         max_size=2)
metric_data = st.one_of(
    st.just({}),
    build(m.Gauge, data_points=number_points).map(lambda x: {"gauge": x}),
    build(m.Sum, data_points=number_points, is_monotonic=st.booleans()).map(lambda x: {"sum": x}),
    build(m.Histogram, data_points=st.lists(build(m.HistogramDataPoint, attributes=attributes, count=st.integers(0, 9),
                                                  bucket_counts=st.lists(st.integers(0, 9), max_size=3)), max_size=2))
    .map(lambda x: {"histogram": x}),
    build(m.ExponentialHistogram, data_points=st.lists(build(m.ExponentialHistogramDataPoint, attributes=attributes,
                                                             scale=st.integers(-3, 3)), max_size=2))
    .map(lambda x: {"exponential_histogram": x}),
    build(m.Summary, data_points=st.lists(build(m.SummaryDataPoint, attributes=attributes, count=st.integers(0, 9)),
                                          max_size=2)).map(lambda x: {"summary": x}),
)
metrics = st.builds(lambda fields, data: m.Metric(**fields, **data),
                    build(dict, name=texts, metadata=attributes), metric_data)
metrics_requests = st.lists(build(m.ResourceMetrics, resource=resources, scope_metrics=st.lists(
    build(m.ScopeMetrics, scope=scopes, metrics=st.lists(metrics, max_size=3)), max_size=2)),
    max_size=2).map(lambda rs: ExportMetricsServiceRequest(resource_metrics=rs))

STRATEGIES = {"traces": trace_requests, "logs": logs_requests, "metrics": metrics_requests}


# --- fixed requests ---------------------------------------------------------------------------------

def fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*.json") if p.name != "expected.json")


def fixture_request(path: Path) -> ExportTraceServiceRequest:
    return otlp_json.decode(ExportTraceServiceRequest, path.read_bytes())


def event_log_request(trace: ExportTraceServiceRequest) -> ExportLogsServiceRequest:
    """The span events of a fixture as GenAI event log records: by `event_name`, by the older
    `event.name` attribute, or as a record that is no event; each with a body."""
    out = ExportLogsServiceRequest()
    for rs in trace.resource_spans:
        rl = out.resource_logs.add()
        rl.resource.CopyFrom(rs.resource)
        for ss in rs.scope_spans:
            sl = rl.scope_logs.add()
            sl.scope.CopyFrom(ss.scope)
            n = 0
            for span in ss.spans:
                for event in span.events:
                    record = sl.log_records.add(time_unix_nano=event.time_unix_nano, trace_id=span.trace_id,
                                                span_id=span.span_id)
                    record.attributes.extend(event.attributes)
                    record.body.kvlist_value.values.extend(event.attributes)
                    if n % 3 == 0:
                        record.event_name = event.name
                    elif n % 3 == 1:
                        record.attributes.add(key="event.name").value.string_value = event.name
                    n += 1
    return out


def bench_request() -> Message:
    sys.path.insert(0, str(ROOT / "bench"))
    import pipeline_payloads  # noqa: PLC0415

    return pipeline_payloads.genai_request()


def fixed_requests() -> Iterator[tuple[str, str, Message]]:
    """(source, signal, request) for every fixed case."""
    for path in fixture_files():
        request = fixture_request(path)
        yield f"fixture:{path.name}", "traces", request
        logs = event_log_request(request)
        if logs.resource_logs:
            yield f"fixture-events:{path.name}", "logs", logs
    yield "bench:genai_request", "traces", bench_request()
