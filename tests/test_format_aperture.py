"""Specification of Aperture export records (otlp_router.destinations.formats.aperture).

One record per model call (GenAI span) in Tailscale Aperture's export layout,
schema version 2; a batch is one zstd frame holding a CBOR sequence. Records
must be readable with `zstandard` + `cbor2` alone: the reader below is the one
a third party would write, and the tests read every export with it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cbor2
import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_router.destinations.formats.aperture import (API_PATHS, RecordStream, compress_records, decode_records,
                                                       encode_records, record)
from otlp_router.destinations.formats.trace_json import SpanRef
from otlp_router.model import otlp_json
from otlp_router.model.attributes import set_value, to_dict
from otlp_router.model.genai import GenAIView, view
from otlp_router.model.signals import TRACES
from otlp_router.routing.privacy import strip_content

FIXTURES = Path(__file__).parent / "fixtures" / "genai"
EXPECTED: dict[str, dict[str, dict[str, Any]]] = orjson.loads((FIXTURES / "expected.json").read_bytes())
CONVENTIONS = tuple(sorted(EXPECTED))

RFC3339_NANOS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$")
RECORD_KEYS = {"id", "ver", "timestamp", "identity", "model", "api_type", "usage", "duration_ms", "capture_id",
               "session_id", "path", "status_code"}   # + estimated_cost when known, + capture unless privacy
CAPTURE_KEYS = {"id", "model", "startTime", "loginName", "stableNodeId", "tags", "statusCode", "path",
                "toolUseData", "requestHeaders", "responseHeaders", "requestBody", "responseBody",
                "rawRequestBody", "rawResponseBody", "sessionId"}
USAGE_KEYS = {"input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"}


def read_export(data: bytes) -> list[dict[str, Any]]:
    """An export object read with zstandard + cbor2 alone."""
    decoder = cbor2.CBORDecoder(zstandard.ZstdDecompressor().stream_reader(data))
    records = []
    while True:
        try:
            records.append(decoder.decode())
        except cbor2.CBORDecodeEOF:
            return records


def load(name: str) -> ExportTraceServiceRequest:
    request: ExportTraceServiceRequest = otlp_json.decode(ExportTraceServiceRequest, (FIXTURES / name).read_bytes())
    return request


def refs_of(request: ExportTraceServiceRequest) -> list[SpanRef]:
    out = []
    for resource_spans in request.resource_spans:
        resource = to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            out += [SpanRef(s, resource, scope_spans.scope.name, scope_spans.scope.version)
                    for s in scope_spans.spans]
    return out


def view_of(ref: SpanRef) -> GenAIView:
    return view(ref.span, ref.resource, ref.scope_name, ref.scope_version)


def records_of(request: ExportTraceServiceRequest, *, privacy: bool = False,
               api_key_name: str | None = None) -> dict[str, dict[str, Any]]:
    """Records of a request's GenAI spans by span name, ids increasing in span order."""
    out: dict[str, dict[str, Any]] = {}
    for ref in refs_of(request):
        rec = record(ref, view_of(ref), record_id=1000 + len(out), privacy=privacy, api_key_name=api_key_name)
        if rec is not None:
            out[ref.span.name] = rec
    return out


def single(attributes: dict[str, Any], *, status: Status.StatusCode.ValueType = Status.STATUS_CODE_UNSET,
           resource: dict[str, Any] | None = None, api_key_name: str | None = None) -> dict[str, Any]:
    """The record of one model-call span with these attributes."""
    span = Span(name="call", trace_id=b"\x01" * 16, span_id=b"\x02" * 8,
                start_time_unix_nano=1773095137430509634, end_time_unix_nano=1773095139000000000)
    span.status.code = status
    for key, value in attributes.items():
        set_value(span.attributes.add(key=key).value, value)
    ref = SpanRef(span, resource or {}, "test", "1")
    rec = record(ref, view(span, ref.resource), record_id=7, privacy=False, api_key_name=api_key_name)
    assert rec is not None
    return rec


CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-5"}

def _is_genai(file: str, name: str) -> bool:
    [ref] = [r for r in refs_of(load(file)) if r.span.name == name]
    return view_of(ref).is_genai


GENAI_CASES = [pytest.param(file, name, expected, id=f"{file}:{name}")
               for file, spans in EXPECTED.items() for name, expected in spans.items() if _is_genai(file, name)]
OTHER_CASES = [pytest.param(file, name, id=f"{file}:{name}")
               for file, spans in EXPECTED.items() for name, expected in spans.items() if not _is_genai(file, name)]


# --- the export object --------------------------------------------------------------------------

@pytest.mark.parametrize("file", CONVENTIONS)
def test_export_reads_back_with_zstandard_and_cbor2_alone(file: str) -> None:
    records = list(records_of(load(file)).values())
    if not any(case.values[0] == file for case in GENAI_CASES):
        assert not records, file   # no model call, no record (LiveKit's fixture: agents and tools only)
        return
    assert records, file
    data = encode_records(records)
    frame = zstandard.ZstdDecompressor().decompressobj()
    frame.decompress(data)
    assert frame.eof and frame.unused_data == b"", "exactly one zstd frame"
    read = read_export(data)
    assert read == records
    assert list(decode_records(data)) == read
    assert [r["id"] for r in read] == sorted(r["id"] for r in read)


def test_export_is_a_cbor_sequence_of_maps_not_one_array() -> None:
    records = [{"id": 1, "ver": 2}, {"id": 2, "ver": 2}]
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(encode_records(records))
    assert raw == cbor2.dumps(records[0]) + cbor2.dumps(records[1])


def _cbor_records(n: int) -> list[bytes]:
    return [cbor2.dumps({"id": i, "requestBody": f"prompt {i} " * (50 + i)}) for i in range(n)]


def test_an_object_compressed_as_its_records_come_is_the_object_compressed_at_once() -> None:
    records = _cbor_records(300)
    stream = RecordStream()
    for rec in records:
        stream.append(rec)
    assert len(stream) == 300
    assert stream.finish() == compress_records(records)
    assert stream.finish() == compress_records(records), "a retried export encodes the same bytes"
    assert stream.records() == records
    assert RecordStream().finish() == compress_records([]) and RecordStream().records() == []


def test_a_record_replaced_before_the_object_is_finished_is_the_one_written() -> None:
    records = _cbor_records(5)
    stream = RecordStream()
    for rec in records:
        stream.append(rec)
    joined = cbor2.dumps({"id": 3, "requestBody": "prompt 3 with the events of its span" * 40})
    stream.replace(3, joined)
    expected = records[:3] + [joined] + records[4:]
    assert stream.finish() == compress_records(expected)
    assert stream.records() == expected
    assert [r["id"] for r in decode_records(stream.finish())] == [0, 1, 2, 3, 4]
    with pytest.raises(AssertionError):
        stream.append(records[0])


def test_decode_reads_concatenated_exports_and_refuses_a_cut_one() -> None:
    first, second = [{"id": 1, "body": b"x" * 5000}], [{"id": 2, "body": b"y" * 5000}]
    assert list(decode_records(encode_records(first) + encode_records(second))) == first + second
    assert list(decode_records(encode_records([]))) == []
    cut = zstandard.ZstdCompressor().compress(cbor2.dumps(first[0])[:-10])
    with pytest.raises(cbor2.CBORDecodeError):
        list(decode_records(cut))


# --- record fields and types --------------------------------------------------------------------

@pytest.mark.parametrize("file", CONVENTIONS)
def test_every_record_has_every_field_with_its_type(file: str) -> None:
    for name, rec in records_of(load(file)).items():
        [rec] = read_export(encode_records([rec]))
        assert set(rec) - {"estimated_cost", "capture"} == RECORD_KEYS, name
        assert type(rec["id"]) is int and rec["ver"] == 2
        assert RFC3339_NANOS.match(rec["timestamp"])
        assert set(rec["identity"]) == {"login_name", "stable_node_id"}
        assert all(isinstance(v, str) for v in rec["identity"].values())
        assert isinstance(rec["model"], str)   # "" when a model call names none (MLflow's span type alone)
        assert isinstance(rec["api_type"], str) and rec["api_type"]
        assert set(rec["usage"]) <= USAGE_KEYS and all(type(n) is int for n in rec["usage"].values())
        assert type(rec["duration_ms"]) is int and rec["duration_ms"] >= 0
        assert re.fullmatch(r"[0-9a-f]{16}", rec["capture_id"])
        assert isinstance(rec["session_id"], str) and isinstance(rec["path"], str)
        assert type(rec["status_code"]) is int
        if "estimated_cost" in rec:
            cost = rec["estimated_cost"]
            assert set(cost) == {"dollars", "cost_basis", "usage"}
            assert type(cost["dollars"]) is float and isinstance(cost["cost_basis"], str) and cost["cost_basis"]
            assert cost["usage"] == rec["usage"]

        capture = rec["capture"]
        assert set(capture) == CAPTURE_KEYS
        assert capture["id"] == rec["capture_id"] and capture["model"] == rec["model"]
        assert capture["startTime"] == rec["timestamp"]
        assert capture["loginName"] == rec["identity"]["login_name"]
        assert capture["stableNodeId"] == rec["identity"]["stable_node_id"]
        assert capture["statusCode"] == rec["status_code"] and capture["path"] == rec["path"]
        assert capture["sessionId"] == rec["session_id"]
        assert isinstance(capture["tags"], list) and all(isinstance(t, str) for t in capture["tags"])
        assert isinstance(capture["toolUseData"], list) and all(isinstance(t, dict) for t in capture["toolUseData"])
        for headers in (capture["requestHeaders"], capture["responseHeaders"]):
            assert isinstance(headers, dict)
            assert all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in headers.values())
        for body, raw in (("requestBody", "rawRequestBody"), ("responseBody", "rawResponseBody")):
            assert type(capture[raw]) is bytes
            assert capture[body] is None or isinstance(capture[body], str)
            assert capture[raw] == (capture[body] or "").encode()


@pytest.mark.parametrize("file, name, expected", GENAI_CASES)
def test_record_carries_the_span_view(file: str, name: str, expected: dict[str, Any]) -> None:
    # The view's values (tests/test_genai.py holds them to expected.json), in Aperture's meanings:
    # usage as the provider reported it, cache reads inside input_tokens, reasoning inside output_tokens.
    [ref] = [r for r in refs_of(load(file)) if r.span.name == name]
    v = view_of(ref)
    rec = records_of(load(file))[name]
    assert rec["model"] == (v.model or "") and rec["model"] == expected.get("model", rec["model"])
    usage = {"input_tokens": v.input_tokens, "output_tokens": v.output_tokens, "cached_tokens": v.cached_tokens,
             "reasoning_tokens": v.reasoning_tokens}
    assert rec["usage"] == {k: n for k, n in usage.items() if n is not None}
    for key in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"):
        if key in expected:
            assert rec["usage"].get(key) == expected[key], key
    if v.cost is None:
        assert "estimated_cost" not in rec
    else:
        assert rec["estimated_cost"]["dollars"] == pytest.approx(v.cost)
    assert rec["identity"]["login_name"] == (v.user_id or "")
    assert rec["session_id"] == (v.session_id or "")
    assert rec["capture"]["tags"] == v.tags
    for body, raw, snippet in (("requestBody", "rawRequestBody", expected.get("input_contains")),
                               ("responseBody", "rawResponseBody", expected.get("output_contains"))):
        if snippet is None:
            continue
        assert snippet in rec["capture"][body]
        assert snippet.encode() in rec["capture"][raw]


@pytest.mark.parametrize("file, name", OTHER_CASES)
def test_spans_that_are_not_model_calls_give_no_record(file: str, name: str) -> None:
    [ref] = [r for r in refs_of(load(file)) if r.span.name == name]
    assert record(ref, view_of(ref), record_id=1, privacy=False, api_key_name="k") is None


def test_times_duration_and_ids() -> None:
    rec = single(CHAT)
    assert rec is not None
    assert rec["timestamp"] == rec["capture"]["startTime"] == "2026-03-09T22:25:37.430509634Z"
    assert rec["duration_ms"] == 1569   # 1569.490366 ms, rounded to an integer as Aperture writes it
    assert (rec["id"], rec["capture_id"]) == (7, "02" * 8)


def test_privacy_leaves_the_capture_out_and_nothing_else() -> None:
    request = load("otel_genai.json")
    full, private = records_of(request), records_of(request, privacy=True)
    assert full.keys() == private.keys()
    for name, rec in private.items():
        assert "capture" not in rec
        assert rec == {k: v for k, v in full[name].items() if k != "capture"}


# Keys a record reads, directly or through the GenAI view, with values of any type.
READ_KEYS = ("gen_ai.request.model", "gen_ai.provider.name", "gen_ai.operation.name", "gen_ai.usage.input_tokens",
             "gen_ai.usage.output_tokens", "gen_ai.usage.cost", "gen_ai.prompt", "gen_ai.completion", "user.id",
             "session.id", "http.route", "url.path", "http.target", "http.response.status_code",
             "http.status_code", "http.request.header.x-a", "http.response.header.authorization",
             "gen_ai.tool.name", "gen_ai.tool.call.id", "gen_ai.tool.call.arguments", "langfuse.trace.tags")
ANY_VALUE = st.one_of(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(),
                      st.binary(max_size=8), st.lists(st.one_of(st.text(max_size=5), st.integers(0, 9)), max_size=3),
                      st.sampled_from(['{"choices": [{"message": {"tool_calls": [1, {"function": 2}]}}]}',
                                       '[{"parts": [{"type": "tool_call"}]}, 3]', '{"output": [null]}',
                                       "/v1/messages?key=x", "anthropic", "gcp.gemini", "embeddings", "200"]))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(READ_KEYS), ANY_VALUE, max_size=8), st.integers(0, 2**64 - 1),
       st.integers(0, 2**64 - 1), st.booleans())
def test_any_model_call_gives_a_readable_record(attributes: dict[str, Any], start: int, end: int,
                                                privacy: bool) -> None:
    span = Span(name="call", trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=start,
                end_time_unix_nano=end)
    # A model call whatever else the span says (a tool name would make it a TOOL).
    for key, value in {**attributes, "gen_ai.request.model": "m", "langfuse.observation.type": "generation"}.items():
        set_value(span.attributes.add(key=key).value, value)
    ref = SpanRef(span, {}, "test", "1")
    rec = record(ref, view(span), record_id=1, privacy=privacy, api_key_name=None)
    assert rec is not None
    [read] = read_export(encode_records([rec]))
    assert set(read) - {"estimated_cost", "capture"} == RECORD_KEYS
    assert RFC3339_NANOS.match(read["timestamp"]) and type(read["duration_ms"]) is int
    assert type(read["status_code"]) is int and isinstance(read["path"], str)
    assert ("capture" in read) is not privacy
    if not privacy:
        assert set(read["capture"]) == CAPTURE_KEYS
        assert all(isinstance(t, dict) for t in read["capture"]["toolUseData"])
        assert "authorization" not in read["capture"]["responseHeaders"]


# --- identity, path, status, api_type -----------------------------------------------------------

def test_login_name_is_the_user_else_the_api_key_name() -> None:
    assert single({**CHAT, "user.id": "alice"}, api_key_name="prod-app")["identity"]["login_name"] == "alice"
    assert single(CHAT, api_key_name="prod-app")["identity"]["login_name"] == "prod-app"
    assert single(CHAT)["identity"]["login_name"] == ""
    # OpenRouter Broadcast names the key a call was made with.
    relayed = single({**CHAT, "trace.metadata.openrouter.api_key_name": "team-key"})
    assert relayed["identity"]["login_name"] == "team-key"


@pytest.mark.parametrize("resource, node", [
    ({"host.id": "h-1", "service.instance.id": "i-1", "host.name": "box"}, "h-1"),
    ({"service.instance.id": "i-1", "host.name": "box"}, "i-1"),
    ({"host.name": "box"}, "box"),
    ({"service.name": "svc"}, ""),
])
def test_stable_node_id_comes_from_the_resource(resource: dict[str, Any], node: str) -> None:
    rec = single(CHAT, resource=resource)
    assert rec["identity"]["stable_node_id"] == rec["capture"]["stableNodeId"] == node


@pytest.mark.parametrize("attributes, api_type, path", [
    (CHAT, "oai_completions", "/v1/chat/completions"),
    ({**CHAT, "gen_ai.provider.name": "azure.ai.openai"}, "oai_completions", "/v1/chat/completions"),
    ({**CHAT, "gen_ai.operation.name": "responses"}, "oai_responses", "/v1/responses"),
    ({**CHAT, "gen_ai.operation.name": "embeddings"}, "oai_embeddings", "/v1/embeddings"),
    ({**CHAT, "gen_ai.operation.name": "text_completion"}, "oai_text_completions", "/v1/completions"),
    ({**CHAT, "gen_ai.provider.name": "groq"}, "oai_completions", "/v1/chat/completions"),
    ({**CHAT, "gen_ai.provider.name": "anthropic"}, "ant_messages", "/v1/messages"),
    ({"gen_ai.system": "Anthropic", "gen_ai.request.model": "claude-x"}, "ant_messages", "/v1/messages"),
    ({**CHAT, "gen_ai.provider.name": "gcp.gemini", "gen_ai.request.model": "gemini-2.5-pro"},
     "gai_generate_content", "/v1beta/models/gemini-2.5-pro:generateContent"),
    ({**CHAT, "gen_ai.provider.name": "gcp.gemini", "gen_ai.operation.name": "embeddings",
      "gen_ai.request.model": "gemini-embedding-001"},
     "gai_embed_content", "/v1beta/models/gemini-embedding-001:embedContent"),
    ({**CHAT, "gen_ai.provider.name": "gcp.vertex_ai"}, "vertex_generate_content", ""),
    ({**CHAT, "gen_ai.provider.name": "aws.bedrock", "gen_ai.request.model": "amazon.nova-pro-v1:0"},
     "bedrock_model_invoke", "/model/amazon.nova-pro-v1:0/invoke"),
    ({"langfuse.observation.type": "generation", "langfuse.observation.model.name": "claude-haiku-4-5"},
     "ant_messages", "/v1/messages"),
    ({**CHAT, "gen_ai.provider.name": "someone-else"}, "unknown", ""),
    ({"gen_ai.request.model": "my-local-model"}, "unknown", ""),
    # A request path on the span wins, and decides the api_type.
    ({**CHAT, "http.route": "/openai/v1/responses"}, "oai_responses", "/openai/v1/responses"),
    ({**CHAT, "url.path": "/v1/messages", "http.target": "/ignored"}, "ant_messages", "/v1/messages"),
    ({**CHAT, "http.target": "/v1beta/models/g:generateContent?key=SECRET"}, "gai_generate_content",
     "/v1beta/models/g:generateContent"),
])
def test_api_type_and_path(attributes: dict[str, Any], api_type: str, path: str) -> None:
    rec = single(attributes)
    assert (rec["api_type"], rec["path"], rec["capture"]["path"]) == (api_type, path, path)


@pytest.mark.parametrize("file, name, api_type", [
    # OpenRouter's API is OpenAI's chat completions, whichever provider served the call.
    ("openrouter.json", "LLM Generation", "oai_completions"),
    ("otel_genai.json", "chat gpt-5-mini", "oai_completions"),
    ("otel_genai.json", "embeddings text-embedding-3-small", "oai_embeddings"),
    ("openinference.json", "ChatOpenAI", "oai_completions"),
    ("openllmetry.json", "anthropic.chat", "ant_messages"),
    ("openllmetry.json", "openai.embeddings", "oai_embeddings"),
    ("langfuse.json", "classify-intent", "ant_messages"),
    ("langfuse.json", "draft-reply", "oai_completions"),
])
def test_fixture_api_types(file: str, name: str, api_type: str) -> None:
    rec = records_of(load(file))[name]
    assert (rec["api_type"], rec["path"]) == (api_type, API_PATHS[api_type])


@pytest.mark.parametrize("attributes, status, code", [
    ({"http.response.status_code": 429}, Status.STATUS_CODE_ERROR, 429),
    ({"http.status_code": "201"}, Status.STATUS_CODE_UNSET, 201),
    ({"http.response.status_code": 1000}, Status.STATUS_CODE_ERROR, 500),
    ({}, Status.STATUS_CODE_ERROR, 500),
    ({}, Status.STATUS_CODE_OK, 200),
    ({}, Status.STATUS_CODE_UNSET, 200),
])
def test_status_code(attributes: dict[str, Any], status: Status.StatusCode.ValueType, code: int) -> None:
    rec = single({**CHAT, **attributes}, status=status)
    assert rec["status_code"] == rec["capture"]["statusCode"] == code


# --- capture ------------------------------------------------------------------------------------

def test_headers_are_string_lists_without_credentials() -> None:
    rec = single({
        **CHAT,
        "http.request.header.content-type": ["application/json"],
        "http.request.header.user-agent": "OpenAI/Python 1.99",
        "http.request.header.authorization": ["Bearer sk-SECRET"],
        "http.request.header.Proxy-Authorization": ["Basic SECRET"],
        "http.request.header.x-api-key": ["SECRET"],
        "http.request.header.cookie": ["session=SECRET"],
        "http.response.header.x-request-id": ["req_1", "req_2"],
        "http.response.header.set-cookie": ["session=SECRET"],
    })
    capture = rec["capture"]
    assert capture["requestHeaders"] == {"content-type": ["application/json"],
                                         "user-agent": ["OpenAI/Python 1.99"]}
    assert capture["responseHeaders"] == {"x-request-id": ["req_1", "req_2"]}
    assert b"SECRET" not in encode_records([rec]) and b"SECRET" not in cbor2.dumps(rec)


def test_tool_use_data_from_output_messages_and_tool_attributes() -> None:
    otel = records_of(load("otel_genai.json"))["chat gpt-5-mini"]["capture"]["toolUseData"]
    assert [(t["id"], t["name"]) for t in otel] == [("call_VSPygqKTWdrhaFErNvMV18Yl", "get_weather")]
    assert "SECRET-ARG-otel-1" in orjson.dumps(otel[0]["arguments"]).decode()
    openllmetry = records_of(load("openllmetry.json"))["openai.chat"]["capture"]["toolUseData"]
    assert [(t["id"], t["name"]) for t in openllmetry] == [("call_Qx81sTnJ2Lp", "search_flights")]
    assert records_of(load("otel_genai.json"))["chat gpt-5"]["capture"]["toolUseData"] == []

    shapes = {
        "OpenAI response": {"choices": [{"message": {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]},
        "Anthropic response": {"role": "assistant", "content": [
            {"type": "text", "text": "hi"}, {"type": "tool_use", "id": "c1", "name": "f", "input": {}}]},
        "OpenAI Responses": {"output": [{"type": "function_call", "call_id": "c1", "name": "f",
                                         "arguments": "{}"}]},
    }
    for shape, output in shapes.items():
        uses = single({**CHAT, "gen_ai.completion": orjson.dumps(output).decode()})["capture"]["toolUseData"]
        assert [(t["id"], t["name"]) for t in uses] == [("c1", "f")], shape

    attributes = single({**CHAT, "gen_ai.tool.name": "lookup", "gen_ai.tool.call.id": "c9"})
    assert attributes["capture"]["toolUseData"] == [{"id": "c9", "name": "lookup", "arguments": None}]


def test_plain_text_bodies_are_kept_as_text() -> None:
    capture = single({**CHAT, "gen_ai.prompt": "hello", "gen_ai.completion": "world"})["capture"]
    assert (capture["requestBody"], capture["rawRequestBody"]) == ("hello", b"hello")
    assert (capture["responseBody"], capture["rawResponseBody"]) == ("world", b"world")


# --- privacy ------------------------------------------------------------------------------------

@pytest.mark.parametrize("file", CONVENTIONS)
@pytest.mark.parametrize("privacy", [False, True])
def test_stripped_content_stays_out_and_usage_cost_model_stay_in(file: str, privacy: bool) -> None:
    full = records_of(load(file), privacy=privacy)
    request = load(file)
    assert strip_content(request, TRACES) > 0
    stripped = records_of(request, privacy=privacy)
    data = encode_records(list(stripped.values()))
    assert b"SECRET-" not in zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert full.keys() == stripped.keys()
    for name, rec in stripped.items():
        for key in ("model", "usage", "estimated_cost", "identity", "session_id", "api_type", "timestamp"):
            assert rec.get(key) == full[name].get(key), (name, key)
        assert ("capture" in rec) is not privacy
