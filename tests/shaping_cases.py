"""Requests and configs for shaping's golden corpus (tests/golden/make_shaping.py) and its
differential tests (tests/test_native_shaping.py): attribute keys and values aimed at the rules
(blocked and allowed globs, the built-in masks with Luhn-valid and -invalid card numbers, bearer
tokens and API keys, user patterns, the keys the attribute actions name, session ids) mixed with
arbitrary ones, trace ids from a small pool (whole traces kept or dropped) and empty ones (log
records sampled one by one)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from proto_tests.test_otlp_json import build, doubles, int64s, texts

KEYS = ["user.id", "session.id", "db.password", "user.password", "password", "http.request.header.cookie",
        "http.request.header.authorization", "gen_ai.request.model", "gen_ai.usage.input_tokens", "service.name",
        "internal.x", "internal.y", "llm.user", "team", "env", "deployment.environment", "service.namespace",
        "note", "a", "b", "tier", "x.password.y", "[x]", "k*"]

SECRETS = ["bob@example.com", "a.b+c@sub.example.co.uk", "x@y", "4111 1111 1111 1111", "4111-1111-1111-1111",
           "4111111111111111", "1234 5678 9012 3456", "5500 0000 0000 0004", "378282246310005", "12345678901234567890",
           "Bearer abc.def-ghi", "bearer   xyz==", "BEARER t0k/en+", "sk-or-v1-0123456789abcdef0123",
           "sk-ant-abcdefghijklmnopqrst", "sk-short", "AKIAABCDEFGHIJKLMNOP", "ghp_" + "a" * 30,
           "xoxb-1234567890-abc", "AIza" + "B" * 35, "xaat-0123456789abcdef", "ACME-123456", "ACME-12345",
           "١٢٣٤ ٥٦٧٨ ٩٠١٢ ٣٤٥٦", "4111 1111 1111 1111x", "é4111111111111111", "tel 555-0100 id 42"]

secret_text = st.one_of(
    st.sampled_from(SECRETS),
    st.lists(st.sampled_from(SECRETS) | texts | st.sampled_from([" ", ", ", "\n", "mail ", "card "]),
             min_size=1, max_size=5).map("".join),
    texts,
)
keys = st.sampled_from(KEYS) | texts


def _values(strings: st.SearchStrategy[str]) -> st.SearchStrategy[AnyValue]:
    leaves = st.one_of(
        st.just(AnyValue()),
        st.builds(AnyValue, string_value=strings),
        st.builds(AnyValue, bool_value=st.booleans()),
        st.builds(AnyValue, int_value=int64s),
        st.builds(AnyValue, double_value=doubles),
        st.builds(AnyValue, bytes_value=st.binary(max_size=10)),
    )
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
        st.builds(lambda kvs: AnyValue(kvlist_value=KeyValueList(values=kvs)),
                  st.lists(st.builds(KeyValue, key=keys, value=inner), max_size=3)),
    ), max_leaves=6)


values = st.one_of(st.builds(AnyValue, string_value=secret_text), _values(secret_text))
attributes = st.lists(st.builds(KeyValue, key=keys, value=values), max_size=6)
resources = build(Resource, attributes=attributes)
scopes = build(InstrumentationScope, name=texts, version=texts, attributes=attributes)
trace_ids = st.sampled_from([bytes([i]) * 16 for i in range(1, 9)]) | st.binary(min_size=16, max_size=16)
span_ids = st.binary(min_size=8, max_size=8)

spans = build(
    Span, trace_id=trace_ids, span_id=span_ids, name=texts, kind=st.integers(0, 5), attributes=attributes,
    status=build(Status, message=secret_text, code=st.integers(0, 2)),
    events=st.lists(build(Span.Event, time_unix_nano=st.integers(0, 10), name=texts, attributes=attributes),
                    max_size=2),
    links=st.lists(build(Span.Link, trace_id=trace_ids, span_id=span_ids, attributes=attributes), max_size=1),
    start_time_unix_nano=st.integers(0, 2**64 - 1),
)
trace_requests = st.lists(build(ResourceSpans, resource=resources, schema_url=texts, scope_spans=st.lists(
    build(ScopeSpans, scope=scopes, schema_url=texts, spans=st.lists(spans, max_size=5)), max_size=2)),
    max_size=2).map(lambda rs: ExportTraceServiceRequest(resource_spans=rs))

log_records = build(
    LogRecord, time_unix_nano=st.integers(0, 10), body=values, attributes=attributes,
    trace_id=trace_ids | st.just(b""), span_id=span_ids, severity_text=texts, event_name=texts,
)
logs_requests = st.lists(build(ResourceLogs, resource=resources, schema_url=texts, scope_logs=st.lists(
    build(ScopeLogs, scope=scopes, schema_url=texts, log_records=st.lists(log_records, max_size=5)), max_size=2)),
    max_size=2).map(lambda rs: ExportLogsServiceRequest(resource_logs=rs))

number_points = st.lists(build(m.NumberDataPoint, attributes=attributes, as_int=int64s), max_size=2)
metric_data = st.one_of(
    st.just({}),
    build(m.Gauge, data_points=number_points).map(lambda x: {"gauge": x}),
    build(m.Sum, data_points=number_points, is_monotonic=st.booleans()).map(lambda x: {"sum": x}),
    build(m.Histogram, data_points=st.lists(build(m.HistogramDataPoint, attributes=attributes, count=st.integers(0, 9)),
                                            max_size=2)).map(lambda x: {"histogram": x}),
    build(m.Summary, data_points=st.lists(build(m.SummaryDataPoint, attributes=attributes, count=st.integers(0, 9)),
                                          max_size=2)).map(lambda x: {"summary": x}),
)
metrics = st.builds(lambda fields, data: m.Metric(**fields, **data),
                    build(dict, name=texts, metadata=attributes), metric_data)
metrics_requests = st.lists(build(m.ResourceMetrics, resource=resources, scope_metrics=st.lists(
    build(m.ScopeMetrics, scope=scopes, metrics=st.lists(metrics, max_size=3)), max_size=2)),
    max_size=2).map(lambda rs: ExportMetricsServiceRequest(resource_metrics=rs))

STRATEGIES = {"traces": trace_requests, "logs": logs_requests, "metrics": metrics_requests}

# Configs: every rule kind of each transform.
REDACTION: list[dict[str, Any]] = [
    {},
    {"mask": []},
    {"mask": ["email"]},
    {"mask": ["card"]},
    {"mask": ["bearer", "api_key"]},
    {"mask": ["card", "email"], "replacement": "<{kind}>"},
    {"mask": [], "patterns": ["ACME-[0-9]{6}", "(?i)tel\\s+[0-9-]+"]},
    {"patterns": ["[0-9]+"], "replacement": "#"},
    {"blocked_keys": ["*.password", "http.request.header.*"], "mask": []},
    {"blocked_keys": ["password", "[x]", "k*", "user.?d"]},
    {"allowed_keys": ["gen_ai.*", "service.name"], "mask": []},
    {"allowed_keys": [], "mask": []},
    {"allowed_keys": ["user.*", "note", "a"], "blocked_keys": ["user.password"]},
]
ACTIONS: list[list[dict[str, Any]]] = [
    [{"action": "insert", "key": "env", "value": "prod"}, {"action": "insert", "key": "a", "value": 7}],
    [{"action": "update", "key": "user.id", "value": "anonymous"}, {"action": "update", "key": "b", "value": 2.5}],
    [{"action": "upsert", "key": "team", "from_attribute": "service.namespace"},
     {"action": "upsert", "key": "flag", "value": True}],
    [{"action": "insert", "key": "copy", "from_attribute": "note"},
     {"action": "update", "key": "a", "from_attribute": "b"}],
    [{"action": "rename", "key": "llm.user", "to": "user.id"}, {"action": "rename", "key": "a", "to": "b"}],
    [{"action": "delete", "key": "db.password"}, {"action": "delete", "pattern": "^internal\\."}],
    [{"action": "delete", "pattern": "password"}],
    [{"action": "hash", "key": "user.id", "hash_key": "s3cret"}, {"action": "hash", "key": "note"}],
    [{"action": "hash", "key": "a"}, {"action": "hash", "key": "session.id", "hash_key": "k"}],
    [{"action": "insert", "key": "list", "value": [1, "x", {"y": None}]}, {"action": "upsert", "key": "b", "value": {"m": 1}}],
    [{"action": "rename", "key": "note", "to": "a"}, {"action": "hash", "key": "a", "hash_key": "s"},
     {"action": "delete", "key": "b"}, {"action": "insert", "key": "b", "from_attribute": "a"}],
]
SAMPLING: list[dict[str, Any]] = [
    {"rate": 0.0}, {"rate": 0.1}, {"rate": 0.5}, {"rate": 0.9}, {"rate": 1.0},
    {"rate": 0.3, "by": "session.id"}, {"rate": 0.7, "by": "session.id"},
]
