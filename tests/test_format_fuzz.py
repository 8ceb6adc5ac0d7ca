"""The stored formats are total functions: any span a client can send is written, never raises.

Hypothesis builds real opentelemetry-proto spans and resources whose attributes are arbitrary
AnyValues (huge and non-finite doubles, int64 extremes, bytes, deep arrays and kvlists, empty
values) under the keys the format code reads, and JSON text of any shape -- lists where objects
are expected, numbers where strings are, nesting near orjson's limits, out-of-range numbers,
lone surrogate escapes -- under the GenAI message and content keys. Each entry point the storage
destination uses (see destinations/assembly.py and storage.py) must return, and its output must
decode with a plain reader:

* per-trace JSON: ``trace_document`` + ``encode_document`` → ``orjson.loads``;
* Aperture: ``view`` + ``record`` + ``encode_records`` → zstandard + cbor2;
* OTLP JSON lines: ``otlp_json.encode`` → ``orjson.loads`` (and ``otlp_json.decode``).
"""

from __future__ import annotations

import io
from typing import Any

import cbor2
import orjson
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otlp_router.destinations.formats import aperture, trace_json
from otlp_router.destinations.formats.aperture import decode_records, encode_records, record
from otlp_router.destinations.formats.trace_json import SpanRef, encode_document, trace_document
from otlp_router.model import genai, otlp_json
from otlp_router.model.attributes import set_value, to_dict
from otlp_router.model.genai import view

FUZZ = settings(max_examples=200, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])

# --- keys the format code reads ----------------------------------------------------------------

_FAMILY_KEYS = [prefix + rest for prefix, _, _ in genai._FAMILIES
                for rest in ("0.content", "0.role", "1.content", "0.tool_calls.0.name", "0.message.role",
                             "x", "0", "00.content", "1" * 30 + ".content", "1" * 5000 + ".content",
                             ".".join(["0"] * 14))]
READ_KEYS = sorted({
    *genai._SOURCES, *genai._PARAMETERS, *_FAMILY_KEYS,
    *trace_json._SPAN_KEYS, *trace_json._RESOURCE_ENVIRONMENT,
    *aperture._PATH_KEYS, *aperture._STATUS_KEYS, *aperture._TOOL_KEYS, *aperture._NODE_KEYS,
    *aperture._OPENROUTER_MARKERS,
    "http.request.header.x-custom", "http.request.header.authorization", "http.request.header.",
    "http.response.header.content-type", "llm.input_messages", "llm.output_messages",
    "service.name", "",
})
# Keys whose string values the code parses as JSON (content, blobs, metadata, tags).
JSON_KEYS = sorted({key for key, (field, _) in genai._SOURCES.items()
                    if field in ("input", "output", "system_instructions", "usage_details", "cost_details",
                                 "parameter_blobs", "metadata", "tags")} | set(_FAMILY_KEYS))

# --- JSON text of any shape ---------------------------------------------------------------------

_JSON_WORDS = ["type", "role", "content", "parts", "tool_calls", "tool_call", "function", "function_call",
               "name", "arguments", "input", "output", "id", "call_id", "message", "delta", "choices", "text",
               "total", "cost", "input_cost", "prompt_tokens", "cached", "", "\u00e9", "0"]
_JSON_LEAVES = ["null", "true", "false", "0", "-0", "-1", "1.5", "1e308", "-1e308", "5e-324", "1e400", "-1e400",
                "9223372036854775807", "-9223372036854775808", "18446744073709551615", "18446744073709551616",
                "-9223372036854775809", "1" * 400, '"tool_call"', '"tool_use"', '"function_call"', '"text"',
                '"x"', '""', '"\\ud800"', '"\\u0000"', '"2024-01-01T00:00:00Z"', '"1e300"', '"NaN"',
                "[]", "{}"]


def _json_array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _json_object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{orjson.dumps(k).decode()}:{v}" for k, v in pairs) + "}"


def _deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"content":' * (depth - 1) + "{}" + "}" * (depth - 1)


json_texts = st.one_of(
    st.recursive(
        st.sampled_from(_JSON_LEAVES) | st.text(max_size=8).map(lambda s: orjson.dumps(s).decode()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(_json_array),
            st.lists(st.tuples(st.sampled_from(_JSON_WORDS), inner), max_size=4).map(_json_object),
        ),
        max_leaves=10,
    ),
    # nesting around genai's limit (200), orjson's write limit (254) and beyond
    st.builds(_deep, st.sampled_from([199, 200, 201, 250, 252, 253, 254, 255, 300, 1100]),
              st.sampled_from(["list", "dict"])),
    st.sampled_from(["[", "{", '"', " [1,", "[1]x", '"\\ud800"', "²", "١٢٣", "1" * 5000, "1e300", "-1", "nan",
                     "inf", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", '"2024-01-01T00:00:00"']),
)

# --- AnyValues ----------------------------------------------------------------------------------

_FLOATS = st.floats() | st.sampled_from([1e300, -1e300, 1.7976931348623157e308, 5e-324, -0.0, 1e19, 2.0**64])
_INTS = st.integers(-2**63, 2**63 - 1) | st.sampled_from([-2**63, 2**63 - 1, 0, -1, 200, 599, 10**18])


def _any(kind: str, value: Any = None) -> AnyValue:
    v = AnyValue()
    if kind == "none":
        pass
    elif kind == "array":
        v.array_value.SetInParent()
        v.array_value.values.extend(value)
    elif kind == "kvlist":
        v.kvlist_value.SetInParent()
        for key, item in value:
            v.kvlist_value.values.add(key=key).value.CopyFrom(item)
    else:
        setattr(v, kind, value)
    return v


def _nested(depth: int, leaf: AnyValue, kvlist: bool) -> AnyValue:
    for _ in range(depth):
        leaf = _any("kvlist", [("k", leaf)]) if kvlist else _any("array", [leaf])
    return leaf


scalars = st.one_of(
    st.just(_any("none")),
    st.text(max_size=20).map(lambda s: _any("string_value", s)),
    json_texts.map(lambda s: _any("string_value", s)),
    st.booleans().map(lambda b: _any("bool_value", b)),
    _INTS.map(lambda n: _any("int_value", n)),
    _FLOATS.map(lambda x: _any("double_value", x)),
    st.binary(max_size=12).map(lambda b: _any("bytes_value", b)),
)
any_values = st.one_of(
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda items: _any("array", items)),
            st.lists(st.tuples(st.sampled_from(_JSON_WORDS + READ_KEYS[:5]), inner), max_size=4)
            .map(lambda pairs: _any("kvlist", pairs)),
        ),
        max_leaves=8,
    ),
    # deep, but within what a request can carry (upb parses 100 message levels: 48 arrays, 32 kvlists)
    st.builds(_nested, st.integers(1, 30), scalars, st.booleans()),
)

attributes = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(READ_KEYS), any_values),
        st.tuples(st.sampled_from(JSON_KEYS), json_texts.map(lambda s: _any("string_value", s))),
        st.tuples(st.text(max_size=10), any_values),
    ).map(lambda kv: KeyValue(key=kv[0], value=kv[1])),
    max_size=10,
)
# Many cases are model calls, so the GenAI paths run.
_GENAI_MARKERS = [KeyValue(key="gen_ai.request.model", value=_any("string_value", "gpt-4o")),
                  KeyValue(key="gen_ai.operation.name", value=_any("string_value", "chat")),
                  KeyValue(key="openinference.span.kind", value=_any("string_value", "LLM"))]

_TIMES = st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1, 1_700_000_000 * 10**9])
_IDS = st.binary(max_size=20) | st.sampled_from([b"", b"\0" * 16, b"\xff" * 16, b"\1" * 8])


@st.composite
def events(draw: st.DrawFn) -> Span.Event:
    name = draw(st.sampled_from(sorted(genai._EVENT_NAMES)) | st.text(max_size=6))
    return Span.Event(name=name, time_unix_nano=draw(_TIMES), attributes=draw(attributes))


@st.composite
def spans(draw: st.DrawFn, trace_id: bytes) -> Span:
    attrs = draw(attributes)
    if draw(st.booleans()):
        attrs.insert(draw(st.integers(0, len(attrs))), draw(st.sampled_from(_GENAI_MARKERS)))
    return Span(
        trace_id=trace_id,
        span_id=draw(_IDS),
        parent_span_id=draw(_IDS),
        name=draw(st.sampled_from(["chat gpt-4o", "embeddings x", "execute_tool t", ""]) | st.text(max_size=10)),
        kind=draw(st.integers(0, 5)),
        start_time_unix_nano=draw(_TIMES),
        end_time_unix_nano=draw(_TIMES),
        attributes=attrs,
        events=draw(st.lists(events(), max_size=2)),
        status=Status(code=draw(st.sampled_from([0, 1, 2, 3, 2**31 - 1, -1])),
                      message=draw(st.text(max_size=10))),
    )


@st.composite
def batches(draw: st.DrawFn) -> tuple[bytes, list[SpanRef], ExportTraceServiceRequest]:
    """Spans of one trace (some with their own odd trace id), their refs and the request holding them."""
    trace_id = draw(_IDS)
    request = ExportTraceServiceRequest()
    refs: list[SpanRef] = []
    for _ in range(draw(st.integers(1, 2))):  # resources
        resource = Resource(attributes=draw(attributes))
        scope_spans = ScopeSpans(spans=draw(st.lists(spans(trace_id), min_size=1, max_size=3)))
        scope_spans.scope.name = draw(st.text(max_size=6))
        request.resource_spans.append(ResourceSpans(resource=resource, scope_spans=[scope_spans]))
        resource_dict = to_dict(resource.attributes)
        refs.extend(SpanRef(span, resource_dict, scope_spans.scope.name, "") for span in scope_spans.spans)
    return trace_id, refs, request


def read_records(data: bytes) -> list[Any]:
    """An Aperture export read the way a third party would: zstandard, then a CBOR sequence."""
    raw = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
    stream = io.BytesIO(raw)
    out = []
    while stream.tell() < len(raw):
        out.append(cbor2.load(stream))
    return out


# --- properties ---------------------------------------------------------------------------------

def check_trace_json(trace_id: bytes, refs: list[SpanRef]) -> None:
    document = orjson.loads(encode_document(trace_document(trace_id, refs)))
    assert document["id"] == trace_id.hex()
    assert len(document["observations"]) == len({ref.span.span_id for ref in refs})


def check_aperture(refs: list[SpanRef], privacy: bool, api_key_name: str | None) -> None:
    records = []
    for index, ref in enumerate(refs):
        rec = record(ref, view(ref.span, ref.resource), record_id=index + 1, privacy=privacy,
                     api_key_name=api_key_name)
        if rec is not None:
            records.append(rec)
    data = encode_records(records)
    decoded = read_records(data)
    assert decoded == list(decode_records(data))
    assert [rec["id"] for rec in decoded] == [rec["id"] for rec in records]


def check_otlp_json(request: ExportTraceServiceRequest) -> None:
    line = otlp_json.encode(request)
    assert isinstance(orjson.loads(line), dict)
    again = otlp_json.decode(ExportTraceServiceRequest, line)
    assert len(again.resource_spans) == len(request.resource_spans)


# Generating the spans costs more than writing them, so each batch goes through every format.
@FUZZ
@given(batches(), st.booleans(), st.none() | st.text(max_size=6))
def test_storage_formats_are_total(batch: tuple[bytes, list[SpanRef], ExportTraceServiceRequest], privacy: bool,
                                   api_key_name: str | None) -> None:
    trace_id, refs, request = batch
    check_trace_json(trace_id, refs)
    check_aperture(refs, privacy, api_key_name)
    check_otlp_json(request)


# --- regressions: each once raised --------------------------------------------------------------

def _ref(attrs: dict[str, Any], start: int = 1_700_000_000 * 10**9) -> SpanRef:
    span = Span(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="chat gpt-4o", start_time_unix_nano=start,
                end_time_unix_nano=min(start + 10**9, 2**64 - 1))
    for key, value in {"gen_ai.request.model": "gpt-4o", **attrs}.items():
        set_value(span.attributes.add(key=key).value, value)
    return SpanRef(span, {}, "scope", "1")


def _both(ref: SpanRef) -> tuple[dict[str, Any], dict[str, Any]]:
    document = orjson.loads(encode_document(trace_document(ref.span.trace_id, [ref])))
    rec = record(ref, view(ref.span, ref.resource), record_id=1, privacy=False, api_key_name=None)
    assert rec is not None
    [decoded] = read_records(encode_records([rec]))
    return document["observations"][0], decoded


def test_time_to_first_chunk_overflowing_is_left_out() -> None:
    # 1e300 s is 1e309 ns: infinity, which round() refused (OverflowError)
    observation, _ = _both(_ref({"gen_ai.response.time_to_first_chunk": 1e300}))
    assert observation["completionStartTime"] is None
    observation, _ = _both(_ref({"gen_ai.response.time_to_first_chunk": 1e300, "ai.response.msToFirstChunk": 250}))
    assert observation["completionStartTime"] == "2023-11-14T22:13:20.250000Z"   # the next source counts


def test_tool_use_type_of_wrong_json_type() -> None:
    # a list or object as "type" reached a frozenset lookup (TypeError: unhashable)
    for output in ('[{"type": []}]', '[{"parts": [{"type": {}}]}]', '{"choices": [{"message": {"type": ["x"]}}]}'):
        _, rec = _both(_ref({"gen_ai.output.messages": output}))
        assert rec["capture"]["toolUseData"] == []
    _, rec = _both(_ref({"gen_ai.output.messages": '[{"type": "tool_call", "id": "c1", "name": "f"}, {"type": 1}]'}))
    assert rec["capture"]["toolUseData"] == [{"id": "c1", "name": "f", "arguments": None}]


@pytest.mark.parametrize("key", ["gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                                 "trace.metadata.blob", "gen_ai.prompt", "input.value"])
def test_content_nested_past_the_depth_limit_stays_text(key: str) -> None:
    # parsed, it serialised alone but not inside the document (orjson: recursion limit reached)
    text = "[" * 253 + "]" * 253
    observation, rec = _both(_ref({key: text}))
    assert text in orjson.dumps(observation).decode()
    assert genai._content("[" * 200 + "]" * 200) == orjson.loads("[" * 200 + "]" * 200)   # the limit itself parses
    assert genai._content("[" * 201 + "]" * 201) == "[" * 201 + "]" * 201


@pytest.mark.parametrize("code", ["\u00b2", "1" * 5000])
def test_status_code_of_digits_int_refuses(code: str) -> None:
    # str.isdigit() accepts them, int() raises ValueError
    _, rec = _both(_ref({"http.response.status_code": code}))
    assert rec["status_code"] == 200
    _, rec = _both(_ref({"http.response.status_code": "\u0664\u0660\u0664"}))   # Arabic-Indic 404 still reads
    assert rec["status_code"] == 404


def test_message_index_past_int_digit_limit() -> None:
    # sorting indexes with int() raised ValueError past 4300 digits
    huge = "1" * 5000
    observation, _ = _both(_ref({f"gen_ai.prompt.{huge}.content": "late", "gen_ai.prompt.0.content": "first",
                                 "gen_ai.prompt.10.content": "ten", "gen_ai.prompt.9.content": "nine"}))
    assert [m["content"] for m in observation["input"]] == ["first", "nine", "ten", "late"]


def test_sums_past_their_range_are_left_out() -> None:
    observation, rec = _both(_ref({"gen_ai.usage.input_tokens": 2**63 - 1, "gen_ai.usage.output_tokens": 2**63 - 1,
                                   "gen_ai.usage.input_cost": 1.7e308, "gen_ai.usage.output_cost": 1.7e308}))
    assert "total" not in observation["usageDetails"]
    assert "total" not in observation["costDetails"]
    assert "estimated_cost" not in rec


def test_extreme_times_and_ids() -> None:
    for start in (0, 2**64 - 1):
        ref = _ref({"gen_ai.response.time_to_first_chunk": 1.0}, start=start)
        ref.span.trace_id = b""
        ref.span.end_time_unix_nano = 2**64 - 1
        observation, rec = _both(ref)
        assert observation["traceId"] == ""
        assert rec["timestamp"].startswith("1970" if start == 0 else "2554")
