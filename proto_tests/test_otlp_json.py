"""Conformance of the OTLP JSON codec (otlp_router.model.otlp_json) to the OTLP JSON encoding.

Each test name states the rule it checks (opentelemetry-proto docs/specification.md,
"JSON Protobuf Encoding", plus the codec's own promises: errors name their path, malformed
ids never raise, nothing but JsonDecodeError escapes decode).
"""

from __future__ import annotations

import base64
import copy
import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (AnyValue, ArrayValue, InstrumentationScope, KeyValue,
                                                      KeyValueList)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otlp_router.model.otlp_json import MAX_NESTING, JsonDecodeError, decode, encode, to_dict

DATA = Path(__file__).parent / "data"
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wire(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


def span_doc(**span: Any) -> dict:
    """A trace request document holding one span with the given JSON fields."""
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


def first_span(request: ExportTraceServiceRequest) -> Span:
    return request.resource_spans[0].scope_spans[0].spans[0]


def span_json(**span: Any) -> Span:
    return first_span(decode(ExportTraceServiceRequest, orjson.dumps(span_doc(**span))))


def attribute_json(value: Any) -> AnyValue:
    """Decodes one span attribute whose JSON AnyValue is `value`."""
    return span_json(attributes=[{"key": "k", "value": value}]).attributes[0].value


SPAN_PATH = "resourceSpans[0].scopeSpans[0].spans[0]"


def decode_error(doc: Any, request_type: type[Message] = ExportTraceServiceRequest) -> str:
    body = doc if isinstance(doc, (bytes, str)) else orjson.dumps(doc)
    with pytest.raises(JsonDecodeError) as info:
        decode(request_type, body)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# Strategies: random OTLP requests covering every field
# ---------------------------------------------------------------------------------------------

int64s = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, -1, 2**63 - 1, -(2**63)])
uint64s = st.integers(0, 2**64 - 1) | st.sampled_from([0, 2**64 - 1])
uint32s = st.integers(0, 2**32 - 1)
# JSON has one NaN; other NaN payloads cannot survive a JSON round trip
doubles = st.floats().map(lambda x: math.nan if math.isnan(x) else x)
texts = st.text(max_size=20) | st.sampled_from(["", "é✓ 𝄞", "\x00\n\"\\"])
trace_ids = st.binary(min_size=16, max_size=16) | st.just(b"")
span_ids = st.binary(min_size=8, max_size=8) | st.just(b"")
enums = st.integers(0, 5) | st.integers(-(2**31), 2**31 - 1)  # open enums keep unknown numbers


def any_values() -> st.SearchStrategy[AnyValue]:
    leaves = st.one_of(
        st.just(AnyValue()),
        st.builds(AnyValue, string_value=texts),
        st.builds(AnyValue, bool_value=st.booleans()),
        st.builds(AnyValue, int_value=int64s),
        st.builds(AnyValue, double_value=doubles),
        st.builds(AnyValue, bytes_value=st.binary(max_size=10)),
    )
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
        st.builds(lambda kvs: AnyValue(kvlist_value=KeyValueList(values=kvs)),
                  st.lists(st.builds(KeyValue, key=texts, value=inner), max_size=3)),
    ), max_leaves=8)


attributes = st.lists(st.builds(KeyValue, key=texts, value=any_values()), max_size=4)


def optional(**fields: st.SearchStrategy) -> st.SearchStrategy[dict]:
    """Keyword arguments where every field may be left out (unset)."""
    return st.fixed_dictionaries({}, optional=fields)


def build(cls: type[Message], **fields: st.SearchStrategy) -> st.SearchStrategy[Message]:
    return optional(**fields).map(lambda kwargs: cls(**kwargs))


resources = build(Resource, attributes=attributes, dropped_attributes_count=uint32s)
scopes = build(InstrumentationScope, name=texts, version=texts, attributes=attributes,
               dropped_attributes_count=uint32s)
spans = build(
    Span, trace_id=trace_ids, span_id=span_ids, trace_state=texts, parent_span_id=span_ids,
    flags=uint32s, name=texts, kind=enums, start_time_unix_nano=uint64s, end_time_unix_nano=uint64s,
    attributes=attributes, dropped_attributes_count=uint32s,
    events=st.lists(build(Span.Event, time_unix_nano=uint64s, name=texts, attributes=attributes,
                          dropped_attributes_count=uint32s), max_size=2),
    dropped_events_count=uint32s,
    links=st.lists(build(Span.Link, trace_id=trace_ids, span_id=span_ids, trace_state=texts,
                         attributes=attributes, dropped_attributes_count=uint32s, flags=uint32s), max_size=2),
    dropped_links_count=uint32s,
    status=build(Status, message=texts, code=enums),
)
trace_requests = st.lists(build(ResourceSpans, resource=resources, schema_url=texts, scope_spans=st.lists(
    build(ScopeSpans, scope=scopes, schema_url=texts, spans=st.lists(spans, max_size=3)), max_size=2)),
    max_size=2).map(lambda rs: ExportTraceServiceRequest(resource_spans=rs))

log_records = build(
    LogRecord, time_unix_nano=uint64s, observed_time_unix_nano=uint64s, severity_number=enums,
    severity_text=texts, body=any_values(), attributes=attributes, dropped_attributes_count=uint32s,
    flags=uint32s, trace_id=trace_ids, span_id=span_ids, event_name=texts,
)
logs_requests = st.lists(build(ResourceLogs, resource=resources, schema_url=texts, scope_logs=st.lists(
    build(ScopeLogs, scope=scopes, schema_url=texts, log_records=st.lists(log_records, max_size=3)), max_size=2)),
    max_size=2).map(lambda rs: ExportLogsServiceRequest(resource_logs=rs))

exemplars = st.lists(st.one_of(
    build(m.Exemplar, filtered_attributes=attributes, time_unix_nano=uint64s, as_double=doubles,
          span_id=span_ids, trace_id=trace_ids),
    build(m.Exemplar, time_unix_nano=uint64s, as_int=int64s, span_id=span_ids, trace_id=trace_ids),
), max_size=2)
number_points = st.lists(st.one_of(
    build(m.NumberDataPoint, attributes=attributes, start_time_unix_nano=uint64s, time_unix_nano=uint64s,
          as_double=doubles, exemplars=exemplars, flags=uint32s),
    build(m.NumberDataPoint, time_unix_nano=uint64s, as_int=int64s, exemplars=exemplars),
), max_size=2)
histogram_points = st.lists(build(
    m.HistogramDataPoint, attributes=attributes, start_time_unix_nano=uint64s, time_unix_nano=uint64s,
    count=uint64s, sum=doubles, bucket_counts=st.lists(uint64s, max_size=4),
    explicit_bounds=st.lists(doubles, max_size=3), exemplars=exemplars, flags=uint32s, min=doubles, max=doubles,
), max_size=2)
buckets = build(m.ExponentialHistogramDataPoint.Buckets, offset=st.integers(-(2**31), 2**31 - 1),
                bucket_counts=st.lists(uint64s, max_size=4))
exponential_points = st.lists(build(
    m.ExponentialHistogramDataPoint, attributes=attributes, start_time_unix_nano=uint64s, time_unix_nano=uint64s,
    count=uint64s, sum=doubles, scale=st.integers(-(2**31), 2**31 - 1), zero_count=uint64s, positive=buckets,
    negative=buckets, flags=uint32s, exemplars=exemplars, min=doubles, max=doubles, zero_threshold=doubles,
), max_size=2)
summary_points = st.lists(build(
    m.SummaryDataPoint, attributes=attributes, start_time_unix_nano=uint64s, time_unix_nano=uint64s,
    count=uint64s, sum=doubles, flags=uint32s,
    quantile_values=st.lists(build(m.SummaryDataPoint.ValueAtQuantile, quantile=doubles, value=doubles),
                             max_size=3),
), max_size=2)
metric_data = st.one_of(
    st.just({}),
    build(m.Gauge, data_points=number_points).map(lambda x: {"gauge": x}),
    build(m.Sum, data_points=number_points, aggregation_temporality=enums, is_monotonic=st.booleans())
    .map(lambda x: {"sum": x}),
    build(m.Histogram, data_points=histogram_points, aggregation_temporality=enums)
    .map(lambda x: {"histogram": x}),
    build(m.ExponentialHistogram, data_points=exponential_points, aggregation_temporality=enums)
    .map(lambda x: {"exponential_histogram": x}),
    build(m.Summary, data_points=summary_points).map(lambda x: {"summary": x}),
)
metrics = st.builds(lambda fields, data: m.Metric(**fields, **data),
                    optional(name=texts, description=texts, unit=texts, metadata=attributes), metric_data)
metrics_requests = st.lists(build(m.ResourceMetrics, resource=resources, schema_url=texts, scope_metrics=st.lists(
    build(m.ScopeMetrics, scope=scopes, schema_url=texts, metrics=st.lists(metrics, max_size=3)), max_size=2)),
    max_size=2).map(lambda rs: ExportMetricsServiceRequest(resource_metrics=rs))

requests = st.one_of(trace_requests, logs_requests, metrics_requests)


# ---------------------------------------------------------------------------------------------
# Round trips and the json_format oracle
# ---------------------------------------------------------------------------------------------

@FAST
@given(requests)
def test_encode_then_decode_gives_back_the_same_message(request: Message) -> None:
    assert wire(decode(type(request), encode(request))) == wire(request)


@FAST
@given(requests)
def test_to_dict_matches_json_format_with_integer_enums_and_hex_ids(request: Message) -> None:
    expected = json_format.MessageToDict(request, use_integers_for_enums=True)

    def hex_ids(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else hex_ids(v)
                    for k, v in node.items()}
        if isinstance(node, list):
            return [hex_ids(v) for v in node]
        return node

    assert orjson.loads(encode(request)) == hex_ids(expected)


@FAST
@given(requests)
def test_decode_of_json_format_output_gives_back_the_message(request: Message) -> None:
    """Enum names, base64 non-id bytes, pretty printing: json_format's own output is valid OTLP
    JSON except for ids, which OTLP writes as hex."""
    data = json.loads(json_format.MessageToJson(request, indent=2))

    def hex_ids(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: base64.b64decode(v).hex().upper() if k in ("traceId", "spanId", "parentSpanId")
                    else hex_ids(v) for k, v in node.items()}
        if isinstance(node, list):
            return [hex_ids(v) for v in node]
        return node

    assert wire(decode(type(request), json.dumps(hex_ids(data), indent=1))) == wire(request)


def test_encode_writes_compact_utf8_json() -> None:
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(
        spans=[Span(name="caf\u00e9 \u2603")])])])
    body = encode(request)
    assert body == '{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"caf\u00e9 \u2603"}]}]}]}'.encode()
    assert to_dict(request) == orjson.loads(body)


# ---------------------------------------------------------------------------------------------
# The official example shapes
# ---------------------------------------------------------------------------------------------

def test_official_trace_example_shape_decodes() -> None:
    request = decode(ExportTraceServiceRequest, (DATA / "trace_example.json").read_bytes())
    resource_spans = request.resource_spans[0]
    assert [(a.key, a.value.WhichOneof("value")) for a in resource_spans.resource.attributes] == [
        ("service.name", "string_value"), ("service.instance.id", "int_value")]
    assert resource_spans.resource.attributes[1].value.int_value == 42
    scope_spans = resource_spans.scope_spans[0]
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("my.library", "1.0.0")
    assert scope_spans.scope.attributes[0].value.string_value == "some scope attribute"
    span = scope_spans.spans[0]
    assert span.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert span.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert span.parent_span_id == bytes.fromhex("eee19b7ec3c1b173")
    assert span.name == "I'm a server span"
    assert span.kind == Span.SPAN_KIND_SERVER
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (1544712660000000000, 1544712661000000000)
    assert span.attributes[0].value.string_value == "some value"
    assert span.attributes[1].value.int_value == 200
    assert [(e.name, e.time_unix_nano) for e in span.events] == [
        ("cache miss", 1544712660500000000), ("response sent", 1544712660900000000)]
    assert span.events[0].attributes[0].value.string_value == "user:17"
    assert span.HasField("status") and span.status.code == Status.STATUS_CODE_OK
    assert to_dict(span)["traceId"] == "5b8efff798038103d269b633813fc60c"


def test_official_logs_example_shape_decodes() -> None:
    request = decode(ExportLogsServiceRequest, (DATA / "logs_example.json").read_bytes())
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    assert record.time_unix_nano == record.observed_time_unix_nano == 1544712660300000000
    assert record.severity_number == 10 and record.severity_text == "Information"
    assert record.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert record.body.string_value == "Example log record"
    values = {a.key: a.value for a in record.attributes}
    assert values["boolean.attribute"].bool_value is True
    assert values["int.attribute"].int_value == 10
    assert values["double.attribute"].double_value == 637.704
    assert [v.string_value for v in values["array.attribute"].array_value.values] == ["many", "values"]
    assert values["map.attribute"].kvlist_value.values[0].value.string_value == "some value"


def test_official_metrics_example_shape_decodes_every_metric_kind() -> None:
    request = decode(ExportMetricsServiceRequest, (DATA / "metrics_example.json").read_bytes())
    counter, gauge, histogram, exponential, summary = request.resource_metrics[0].scope_metrics[0].metrics
    assert counter.sum.is_monotonic and counter.sum.aggregation_temporality == 1
    assert counter.sum.data_points[0].as_double == 5.0
    assert gauge.gauge.data_points[0].as_int == -10
    assert gauge.gauge.data_points[0].exemplars[0].as_double == 9.5
    assert gauge.gauge.data_points[0].exemplars[0].span_id.hex() == "eee19b7ec3c1b174"
    point = histogram.histogram.data_points[0]
    assert (point.count, point.sum, point.min, point.max) == (3, 3.0, 1.0, 1.0)
    assert list(point.bucket_counts) == [1, 1, 1] and list(point.explicit_bounds) == [1.0, 2.5]
    point = exponential.exponential_histogram.data_points[0]
    assert (point.scale, point.zero_count, point.zero_threshold) == (-3, 1, 0.001)
    assert point.positive.offset == -2 and list(point.positive.bucket_counts) == [2, 1]
    assert point.HasField("negative") and not point.HasField("sum")
    point = summary.summary.data_points[0]
    assert [(q.quantile, q.value) for q in point.quantile_values] == [(0.5, 3.0), (1.0, 4.5)]


# ---------------------------------------------------------------------------------------------
# One test per rule
# ---------------------------------------------------------------------------------------------

def test_empty_object_decodes_to_an_empty_request() -> None:
    for request_type in (ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest):
        assert decode(request_type, b"{}") == request_type()
        assert encode(request_type()) == b"{}"


def test_decode_accepts_bytes_and_str_and_any_otlp_message_type() -> None:
    assert decode(ExportTraceServiceRequest, "{}") == ExportTraceServiceRequest()
    span = decode(Span, '{"name": "x", "spanId": "0102030405060708"}')
    assert span == Span(name="x", span_id=bytes(range(1, 9)))
    assert decode(AnyValue, b'{"intValue": "-3"}') == AnyValue(int_value=-3)


def test_keys_are_lower_camel_case_on_encode_and_snake_case_is_accepted_on_decode() -> None:
    snake = {"resource_spans": [{"scope_spans": [{"spans": [{
        "trace_id": "0af7651916cd43dd8448eb211c80319c", "start_time_unix_nano": "5",
        "dropped_attributes_count": 2, "attributes": [{"key": "a", "value": {"string_value": "s"}}],
        "events": [{"time_unix_nano": 7, "dropped_attributes_count": 1}]}]}]}]}
    span = first_span(decode(ExportTraceServiceRequest, orjson.dumps(snake)))
    assert span.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert (span.start_time_unix_nano, span.dropped_attributes_count) == (5, 2)
    assert span.attributes[0].value.string_value == "s"
    assert (span.events[0].time_unix_nano, span.events[0].dropped_attributes_count) == (7, 1)
    assert set(to_dict(span)) == {"traceId", "startTimeUnixNano", "droppedAttributesCount", "attributes", "events"}


def test_a_field_given_under_both_its_names_is_an_error() -> None:
    message = decode_error(span_doc(startTimeUnixNano="1", start_time_unix_nano="2"))
    assert message.startswith(f"{SPAN_PATH}.start_time_unix_nano: field given twice")


def test_ids_are_hex_decoded_case_insensitively_and_encoded_lowercase() -> None:
    span = span_json(traceId="5B8EFFF798038103d269b633813fc60c", spanId="EEE19B7EC3C1B174",
                     parentSpanId="eee19b7ec3c1b173", links=[{"traceId": "0A" * 16, "spanId": "0b" * 8}])
    assert span.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert span.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert span.links[0].trace_id == b"\x0a" * 16 and span.links[0].span_id == b"\x0b" * 8
    out = to_dict(span)
    assert (out["traceId"], out["spanId"], out["parentSpanId"]) == (
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173")
    assert out["links"][0] == {"traceId": "0a" * 16, "spanId": "0b" * 8}
    record = decode(LogRecord, '{"traceId": "FF" , "spanId": ""}')
    assert record.trace_id == b"\xff" and record.span_id == b""
    exemplar = decode(m.Exemplar, '{"traceId": "' + "AB" * 16 + '"}')
    assert exemplar.trace_id == b"\xab" * 16 and to_dict(exemplar) == {"traceId": "ab" * 16}


@pytest.mark.parametrize(("text", "expected"), [
    ("0102", b"\x01\x02"),                    # valid hex, wrong length: kept, rejected later by length
    ("0102030405060708090a0b0c0d0e0f1011", b"\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11"),
    ("", b""),
])
def test_wrong_length_hex_ids_are_kept_for_the_receiver_to_reject(text: str, expected: bytes) -> None:
    span = span_json(traceId=text, spanId=text, parentSpanId=text, name="kept")
    assert (span.trace_id, span.span_id, span.parent_span_id, span.name) == (expected, expected, expected, "kept")


_NOT_HEX = ["--", "5B8EFFF798038103D269B633813FC60",  # odd length
            "zz8efff798038103d269b633813fc60c", "5b8efff7 98038103d269b633813fc60",  # not hex, whitespace
            "5b8efff798038103d269b633813fc6é0", "0x" + "ab" * 7]  # not ASCII, a prefix


@pytest.mark.parametrize("text", _NOT_HEX)
@pytest.mark.parametrize(("where", "doc", "field", "digits"), [
    (SPAN_PATH, lambda v: span_doc(traceId=v), "traceId", 32),
    (SPAN_PATH, lambda v: span_doc(spanId=v), "spanId", 16),
    (SPAN_PATH, lambda v: span_doc(parentSpanId=v), "parentSpanId", 16),
    (f"{SPAN_PATH}.links[0]", lambda v: span_doc(links=[{"traceId": "ab" * 16, "spanId": v}]), "spanId", 16),
    (f"{SPAN_PATH}.links[0]", lambda v: span_doc(links=[{"traceId": v, "spanId": "ab" * 8}]), "traceId", 32),
])
def test_an_id_that_is_not_hex_is_an_error_naming_its_path(where: str, doc: Any, field: str, digits: int,
                                                            text: str) -> None:
    """As in the Collector's pdata: no bytes to keep, and reading it as absent would change
    the span silently (a parent id gone makes a root span, a link id gone a broken link)."""
    assert decode_error(doc(text)) == f"{where}.{field}: expected a {'trace' if digits == 32 else 'span'} id in " \
                                      f"hex ({digits} hex digits), got {text!r}"


def test_log_record_and_exemplar_ids_that_are_not_hex_are_errors_too() -> None:
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}, "spanId": "--"}]}]}]}
    assert decode_error(logs, ExportLogsServiceRequest) == \
        "resourceLogs[0].scopeLogs[0].logRecords[0].spanId: expected a span id in hex (16 hex digits), got '--'"
    point = {"asInt": "1", "exemplars": [{"asInt": "1", "traceId": "g" * 32}]}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [point]}}]}]}]}
    assert decode_error(metrics, ExportMetricsServiceRequest) == (
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].exemplars[0].traceId: "
        f"expected a trace id in hex (32 hex digits), got {'g' * 32!r}")


def test_an_id_that_is_not_a_string_is_an_error() -> None:
    assert decode_error(span_doc(traceId=12)) == f"{SPAN_PATH}.traceId: expected a hex string, got 12"


def test_enums_are_integers_and_names_are_accepted_and_unknown_numbers_kept() -> None:
    span = span_json(kind="SPAN_KIND_CLIENT", status={"code": "STATUS_CODE_ERROR"})
    assert (span.kind, span.status.code) == (Span.SPAN_KIND_CLIENT, Status.STATUS_CODE_ERROR)
    assert to_dict(span) == {"kind": 3, "status": {"code": 2}}
    span = span_json(kind=42, status={"code": -7})
    assert (span.kind, span.status.code) == (42, -7)
    assert to_dict(span) == {"kind": 42, "status": {"code": -7}}
    assert decode_error(span_doc(kind="SPAN_KIND_SPACESHIP")) == (
        f"{SPAN_PATH}.kind: unknown SpanKind value 'SPAN_KIND_SPACESHIP'")
    assert decode(m.Sum, '{"aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA"}').aggregation_temporality == 1


def test_64_bit_integers_decode_from_numbers_or_decimal_strings_and_encode_as_strings() -> None:
    span = span_json(startTimeUnixNano=1544712660000000000, endTimeUnixNano="18446744073709551615",
                     attributes=[{"key": "a", "value": {"intValue": -9223372036854775808}},
                                 {"key": "b", "value": {"intValue": "9223372036854775807"}},
                                 {"key": "c", "value": {"intValue": "-42"}},
                                 {"key": "d", "value": {"intValue": "007"}}])
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (1544712660000000000, 2**64 - 1)
    assert [a.value.int_value for a in span.attributes] == [-(2**63), 2**63 - 1, -42, 7]
    out = to_dict(span)
    assert (out["startTimeUnixNano"], out["endTimeUnixNano"]) == ("1544712660000000000", "18446744073709551615")
    assert [a["value"]["intValue"] for a in out["attributes"]] == [
        "-9223372036854775808", "9223372036854775807", "-42", "7"]
    point = decode(m.HistogramDataPoint, '{"count": 3, "bucketCounts": ["1", 2, "18446744073709551615"]}')
    assert list(point.bucket_counts) == [1, 2, 2**64 - 1]
    assert to_dict(point) == {"count": "3", "bucketCounts": ["1", "2", "18446744073709551615"]}
    assert to_dict(decode(m.NumberDataPoint, '{"asInt": "-5"}')) == {"asInt": "-5"}
    buckets = decode(m.ExponentialHistogramDataPoint.Buckets, '{"offset": -3, "bucketCounts": ["300", 1]}')
    assert to_dict(buckets) == {"offset": -3, "bucketCounts": ["300", "1"]}


def test_32_bit_integers_are_numbers_and_also_read_from_decimal_strings() -> None:
    span = span_json(droppedAttributesCount="3", flags=257, droppedEventsCount=4.0)
    assert (span.dropped_attributes_count, span.flags, span.dropped_events_count) == (3, 257, 4)
    assert to_dict(span) == {"droppedAttributesCount": 3, "droppedEventsCount": 4, "flags": 257}


def test_unknown_fields_are_ignored_at_every_level() -> None:
    extra = {"futureField": {"nested": [1, 2]}, "x": None}
    doc = {**extra, "resourceSpans": [{**extra, "resource": {**extra, "attributes": [
        {**extra, "key": "k", "value": {**extra, "stringValue": "v"}}]},
        "scopeSpans": [{**extra, "scope": {**extra, "name": "s"}, "spans": [
            {**extra, "name": "n", "events": [{**extra, "name": "e"}], "links": [{**extra, "flags": 1}],
             "status": {**extra, "code": 1}}]}]}]}
    request = decode(ExportTraceServiceRequest, orjson.dumps(doc))
    expected = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[KeyValue(key="k", value=AnyValue(string_value="v"))]),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name="s"), spans=[Span(
            name="n", events=[Span.Event(name="e")], links=[Span.Link(flags=1)], status=Status(code=1))])])])
    assert request == expected


def test_null_means_not_set() -> None:
    doc = {"resourceSpans": [{"resource": None, "schemaUrl": None, "scopeSpans": [{"scope": None, "spans": [{
        "name": None, "traceId": None, "kind": None, "startTimeUnixNano": None, "attributes": None,
        "events": [{"name": None, "attributes": [{"key": "k", "value": None}]}], "status": None}]}]}]}
    request = decode(ExportTraceServiceRequest, orjson.dumps(doc))
    resource_spans = request.resource_spans[0]
    assert not resource_spans.HasField("resource") and not resource_spans.scope_spans[0].HasField("scope")
    span = resource_spans.scope_spans[0].spans[0]
    assert not span.HasField("status")
    assert span == Span(events=[Span.Event(attributes=[KeyValue(key="k")])])
    assert decode(AnyValue, '{"stringValue": null, "intValue": "5"}') == AnyValue(int_value=5)


def test_defaults_are_omitted_but_set_oneof_members_and_present_messages_are_written() -> None:
    span = Span(name="", kind=0, start_time_unix_nano=0, attributes=[
        KeyValue(key="i", value=AnyValue(int_value=0)), KeyValue(key="s", value=AnyValue(string_value="")),
        KeyValue(key="b", value=AnyValue(bool_value=False)), KeyValue(key="d", value=AnyValue(double_value=0.0)),
        KeyValue(key="x", value=AnyValue(bytes_value=b"")), KeyValue(key="e", value=AnyValue()),
        KeyValue(key="")])
    span.status.SetInParent()
    out = to_dict(span)
    assert out == {"attributes": [
        {"key": "i", "value": {"intValue": "0"}}, {"key": "s", "value": {"stringValue": ""}},
        {"key": "b", "value": {"boolValue": False}}, {"key": "d", "value": {"doubleValue": 0.0}},
        {"key": "x", "value": {"bytesValue": ""}}, {"key": "e", "value": {}}, {}], "status": {}}
    assert wire(decode(Span, encode(span))) == wire(span)
    resource_spans = decode(ResourceSpans, '{"resource": {}, "scopeSpans": [{"scope": {}}]}')
    assert resource_spans.HasField("resource") and resource_spans.scope_spans[0].HasField("scope")
    assert to_dict(resource_spans) == {"resource": {}, "scopeSpans": [{"scope": {}}]}
    point = m.HistogramDataPoint(sum=0.0, min=0.0)  # proto3 optional: set to zero is still set
    assert to_dict(point) == {"sum": 0.0, "min": 0.0}
    assert decode(m.HistogramDataPoint, encode(point)).HasField("sum")


def test_every_any_value_kind_decodes_and_round_trips() -> None:
    cases = [
        ({"stringValue": "héllo"}, AnyValue(string_value="héllo")),
        ({"boolValue": True}, AnyValue(bool_value=True)),
        ({"intValue": "-12"}, AnyValue(int_value=-12)),
        ({"doubleValue": 2.5}, AnyValue(double_value=2.5)),
        ({"doubleValue": 3}, AnyValue(double_value=3.0)),
        ({"bytesValue": "AAEC/w=="}, AnyValue(bytes_value=b"\x00\x01\x02\xff")),
        ({"arrayValue": {"values": [{"intValue": "1"}, {"arrayValue": {}}, {}]}},
         AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(array_value=ArrayValue()),
                                                 AnyValue()]))),
        ({"kvlistValue": {"values": [{"key": "k", "value": {"kvlistValue": {"values": []}}}]}},
         AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue(
             kvlist_value=KeyValueList()))]))),
        ({}, AnyValue()),
    ]
    for value, expected in cases:
        got = attribute_json(value)
        assert got == expected, value
        assert got.WhichOneof("value") == expected.WhichOneof("value")
        assert wire(decode(AnyValue, encode(got))) == wire(expected)


def test_bytes_value_is_base64_standard_or_url_safe_with_or_without_padding() -> None:
    data = b"\xfb\xff\xfe\x00"
    for text in ("+//+AA==", "+//+AA", "-__-AA==", "-__-AA"):
        assert attribute_json({"bytesValue": text}).bytes_value == data, text
    assert to_dict(AnyValue(bytes_value=data)) == {"bytesValue": "+//+AA=="}
    for text in ("+//+AA=", "+//+A", "+/_-AA==", "!!!!", "AA==AA=="):
        message = decode_error(span_doc(attributes=[{"key": "k", "value": {"bytesValue": text}}]))
        assert message == f"{SPAN_PATH}.attributes[0].value.bytesValue: expected a base64 string, got {text!r}"


def test_non_finite_doubles_are_the_strings_nan_infinity_and_minus_infinity() -> None:
    values = [attribute_json({"doubleValue": text}).double_value for text in ("NaN", "Infinity", "-Infinity")]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]
    assert attribute_json({"doubleValue": "1.5e3"}).double_value == 1500.0  # numeric strings are accepted
    assert [to_dict(AnyValue(double_value=x)) for x in (math.nan, math.inf, -math.inf, -0.0)] == [
        {"doubleValue": "NaN"}, {"doubleValue": "Infinity"}, {"doubleValue": "-Infinity"}, {"doubleValue": -0.0}]
    point = m.HistogramDataPoint(explicit_bounds=[math.inf, 1.0], max=-math.inf)
    assert to_dict(point) == {"explicitBounds": ["Infinity", 1.0], "max": "-Infinity"}
    for text in ("nan", "inf", "1.5.2", "0x10"):
        message = decode_error(span_doc(attributes=[{"key": "k", "value": {"doubleValue": text}}]))
        assert message.endswith(f'expected a number, "NaN", "Infinity" or "-Infinity", got {text!r}')


def test_nesting_is_limited_to_what_protobuf_accepts_and_the_error_names_the_limit() -> None:
    def nested_array(levels: int) -> dict:
        value: dict = {"stringValue": "leaf"}
        for _ in range(levels - 1):
            value = {"arrayValue": {"values": [value]}}
        return value

    # AnyValue at the root: n array levels are 2n - 1 messages, 2n - 2 of them below the root
    deepest = (MAX_NESTING + 2) // 2
    assert decode(AnyValue, orjson.dumps(nested_array(deepest))).ByteSize() > 0
    message = decode_error(nested_array(deepest + 1), AnyValue)
    assert f"at most {MAX_NESTING} levels" in message
    assert message.startswith("arrayValue.values[0]" + ".arrayValue.values[0]" * (deepest - 2) + ".arrayValue: ")
    # a span attribute's AnyValue sits 5 levels down: 48 array levels fit, 49 do not
    assert span_json(attributes=[{"key": "k", "value": nested_array(48)}]).ByteSize() > 0
    with pytest.raises(JsonDecodeError, match=f"at most {MAX_NESTING} levels"):
        span_json(attributes=[{"key": "k", "value": nested_array(49)}])
    # kvlists take three messages per level
    value: dict = {"stringValue": "leaf"}
    for _ in range(34):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    with pytest.raises(JsonDecodeError, match=f"at most {MAX_NESTING} levels"):
        decode(AnyValue, orjson.dumps(value))
    # hostile depth is refused before it can exhaust any stack
    hostile = b'{"arrayValue":{"values":[' * 5000 + b"{}" + b"]}}" * 5000
    with pytest.raises(JsonDecodeError, match="invalid JSON"):
        decode(AnyValue, hostile)


def test_top_level_must_be_a_json_object() -> None:
    for body, shown in ((b"[]", "a list"), (b'"x"', "'x'"), (b"3", "3"), (b"null", "null")):
        assert decode_error(body) == f"expected a JSON object at the top level, got {shown}"


@pytest.mark.parametrize(("doc", "expected"), [
    ({"resourceSpans": {}}, "resourceSpans: expected a list, got an object"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]}, f"{SPAN_PATH}: expected an object, got 'x'"),
    ({"resourceSpans": [None]}, "resourceSpans[0]: expected an object, got null"),
    (span_doc(startTimeUnixNano="abc"),
     f"{SPAN_PATH}.startTimeUnixNano: expected an integer (number or decimal string), got 'abc'"),
    (span_doc(startTimeUnixNano=" 12"),
     f"{SPAN_PATH}.startTimeUnixNano: expected an integer (number or decimal string), got ' 12'"),
    (span_doc(startTimeUnixNano="1_000"),
     f"{SPAN_PATH}.startTimeUnixNano: expected an integer (number or decimal string), got '1_000'"),
    (span_doc(startTimeUnixNano="1.5"),
     f"{SPAN_PATH}.startTimeUnixNano: expected an integer (number or decimal string), got '1.5'"),
    (span_doc(startTimeUnixNano=1.5), f"{SPAN_PATH}.startTimeUnixNano: expected an integer, got 1.5"),
    (span_doc(startTimeUnixNano=1e20),
     f"{SPAN_PATH}.startTimeUnixNano: 1e+20 is too large to be exact as a JSON number; write it as a decimal string"),
    (span_doc(startTimeUnixNano="-1"), f"{SPAN_PATH}.startTimeUnixNano: -1 is out of range for fixed64"),
    (span_doc(endTimeUnixNano="18446744073709551616"),
     f"{SPAN_PATH}.endTimeUnixNano: 18446744073709551616 is out of range for fixed64"),
    (span_doc(endTimeUnixNano="1" * 400), f"{SPAN_PATH}.endTimeUnixNano: '{'1' * 76}... is out of range for fixed64"),
    (span_doc(droppedAttributesCount=2**32),
     f"{SPAN_PATH}.droppedAttributesCount: 4294967296 is out of range for uint32"),
    (span_doc(droppedAttributesCount=-1), f"{SPAN_PATH}.droppedAttributesCount: -1 is out of range for uint32"),
    (span_doc(droppedAttributesCount=True),
     f"{SPAN_PATH}.droppedAttributesCount: expected an integer (number or decimal string), got true"),
    (span_doc(droppedAttributesCount="x"),
     f"{SPAN_PATH}.droppedAttributesCount: expected an integer (number or decimal string), got 'x'"),
    (span_doc(kind=2**31), f"{SPAN_PATH}.kind: 2147483648 is out of range for int32"),
    (span_doc(kind=False), f"{SPAN_PATH}.kind: expected an integer (number or decimal string), got false"),
    (span_doc(attributes=[{"key": "k", "value": {"intValue": "9223372036854775808"}}]),
     f"{SPAN_PATH}.attributes[0].value.intValue: 9223372036854775808 is out of range for int64"),
    (span_doc(attributes=[{"key": "k", "value": {"doubleValue": True}}]),
     f'{SPAN_PATH}.attributes[0].value.doubleValue: expected a number, "NaN", "Infinity" or "-Infinity", got true'),
    (span_doc(attributes=[{"key": "k", "value": {"stringValue": "a", "intValue": "1"}}]),
     f"{SPAN_PATH}.attributes[0].value.intValue: only one of oneof 'value' may be set, 'stringValue' is set too"),
    (span_doc(attributes=[{"key": 1, "value": {}}]), f"{SPAN_PATH}.attributes[0].key: expected a string, got 1"),
    (span_doc(attributes={"key": "k"}), f"{SPAN_PATH}.attributes: expected a list, got an object"),
    (span_doc(attributes=[{"key": "k", "value": {"arrayValue": {"values": [None]}}}]),
     f"{SPAN_PATH}.attributes[0].value.arrayValue.values[0]: expected an object, got null"),
    (span_doc(name=["n"]), f"{SPAN_PATH}.name: expected a string, got a list"),
    (span_doc(events=[{"timeUnixNano": {}}]),
     f"{SPAN_PATH}.events[0].timeUnixNano: expected an integer (number or decimal string), got an object"),
    (span_doc(status="ok"), f"{SPAN_PATH}.status: expected an object, got 'ok'"),
])
def test_errors_name_the_path_and_the_problem(doc: dict, expected: str) -> None:
    assert decode_error(doc) == expected


@pytest.mark.parametrize(("doc", "expected"), [
    ({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"sum": {"isMonotonic": "true"}}]}]}]},
     "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.isMonotonic: expected true or false, got 'true'"),
    ({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"gauge": {}, "sum": {}}]}]}]},
     "resourceMetrics[0].scopeMetrics[0].metrics[0].sum: only one of oneof 'data' may be set, 'gauge' is set too"),
    ({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"histogram": {"dataPoints": [
        {"explicitBounds": 1.5}]}}]}]}]},
     "resourceMetrics[0].scopeMetrics[0].metrics[0].histogram.dataPoints[0].explicitBounds: expected a list, got 1.5"),
    ({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"histogram": {"dataPoints": [
        {"bucketCounts": [1, "two"]}]}}]}]}]},
     ("resourceMetrics[0].scopeMetrics[0].metrics[0].histogram.dataPoints[0].bucketCounts[1]: "
      "expected an integer (number or decimal string), got 'two'")),
])
def test_metric_errors_name_the_path_and_the_problem(doc: dict, expected: str) -> None:
    assert decode_error(doc, ExportMetricsServiceRequest) == expected


def test_invalid_json_and_invalid_utf8_are_errors() -> None:
    assert decode_error(b'{"resourceSpans": [}').startswith("invalid JSON: ")
    assert decode_error(b"").startswith("invalid JSON: ")
    assert "UTF-8" in decode_error(b'{"resourceSpans": [{"schemaUrl": "\xff"}]}')
    assert decode_error(b'{"a": NaN}').startswith("invalid JSON: ")


# ---------------------------------------------------------------------------------------------
# Hostile input: nothing but JsonDecodeError escapes
# ---------------------------------------------------------------------------------------------

OTLP_KEYS = ["resourceSpans", "scopeSpans", "spans", "resource", "scope", "attributes", "key", "value",
             "stringValue", "intValue", "doubleValue", "boolValue", "bytesValue", "arrayValue", "kvlistValue",
             "values", "traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "events", "links",
             "status", "code", "flags", "droppedAttributesCount", "trace_id", "time_unix_nano", "resourceLogs",
             "scopeLogs", "logRecords", "body", "severityNumber", "resourceMetrics", "scopeMetrics", "metrics",
             "gauge", "sum", "histogram", "exponentialHistogram", "summary", "dataPoints", "asInt", "asDouble",
             "bucketCounts", "explicitBounds", "positive", "scale", "quantileValues", "exemplars", "isMonotonic",
             "aggregationTemporality"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from(["NaN", "-1", "18446744073709551616", "SPAN_KIND_SERVER", "AA==", "0a"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(OTLP_KEYS) | st.text(max_size=4),
                                                                inner, max_size=4),
    max_leaves=12)
SAMPLES = [(t, (DATA / f).read_bytes()) for t, f in ((ExportTraceServiceRequest, "trace_example.json"),
                                                     (ExportLogsServiceRequest, "logs_example.json"),
                                                     (ExportMetricsServiceRequest, "metrics_example.json"))]


def mutate(data: st.DataObject, node: Any) -> Any:
    """A copy of node with one randomly chosen value (possibly node itself) replaced by random JSON."""
    node = copy.deepcopy(node)
    parent, key = None, None
    current = node
    while isinstance(current, (dict, list)) and current and data.draw(st.booleans()):
        keys = list(current) if isinstance(current, dict) else list(range(len(current)))
        parent, key = current, data.draw(st.sampled_from(keys))
        current = parent[key]
    replacement = data.draw(json_values)
    if parent is None:
        return replacement
    parent[key] = replacement
    return node


def dumps(doc: Any) -> bytes:
    """JSON text of doc; unlike orjson, json writes integers beyond 64 bits."""
    return json.dumps(doc).encode()


def decodes_or_reports(request_type: type[Message], body: bytes) -> Message | None:
    try:
        return decode(request_type, body)
    except JsonDecodeError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_otlp_json_decodes_or_raises_json_decode_error(data: st.DataObject) -> None:
    request_type, body = data.draw(st.sampled_from(SAMPLES))
    decodes_or_reports(request_type, dumps(mutate(data, orjson.loads(body))))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([t for t, _ in SAMPLES]), json_values | st.dictionaries(st.sampled_from(OTLP_KEYS),
                                                                               json_values, max_size=4))
def test_random_json_decodes_or_raises_json_decode_error(request_type: type[Message], doc: Any) -> None:
    decodes_or_reports(request_type, dumps(doc))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64) | st.sampled_from(SAMPLES).map(lambda s: s[1]).flatmap(
    lambda b: st.integers(0, len(b)).map(lambda n: b[:n])))
def test_garbage_and_truncated_bytes_raise_only_json_decode_error(body: bytes) -> None:
    decodes_or_reports(ExportTraceServiceRequest, body)
