"""Specification of the per-trace JSON document (otlp_router.destinations.formats.trace_json).

One document per trace in the Langfuse trace model, written for Athena and any
JSON engine: every key always present with one JSON type, times as ISO 8601 UTC
strings with microseconds, no NaN. The fixtures in tests/fixtures/genai (every
convention of the table, among them the cases of Langfuse's OTel mapping tests) and
their expected.json give the values: each observation what Langfuse makes of the span.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_router.destinations.formats.trace_json import LogRef, SpanRef, encode_document, rfc3339, trace_document
from otlp_router.model import otlp_json
from otlp_router.model.attributes import set_value, to_dict
from otlp_router.model.signals import TRACES
from otlp_router.routing.privacy import strip_content

FIXTURES = Path(__file__).parent / "fixtures" / "genai"
EXPECTED: dict[str, dict[str, dict[str, Any]]] = orjson.loads((FIXTURES / "expected.json").read_bytes())
CONVENTIONS = tuple(sorted(EXPECTED))

ISO_MICROS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
TRACE_KEYS = {"id", "name", "timestamp", "environment", "userId", "sessionId", "metadata", "tags", "input",
              "output", "observations"}
OBSERVATION_KEYS = {"id", "traceId", "parentObservationId", "type", "name", "startTime", "endTime",
                    "completionStartTime", "model", "modelParameters", "input", "output", "usageDetails",
                    "costDetails", "metadata", "environment", "level", "statusMessage"}
# Where a span came from, Langfuse's keys; and what priced it when the span carries no cost.
RESERVED_METADATA = ("attributes", "resourceAttributes", "scope", "costEstimate")
SALVAGED = frozenset(("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.total_tokens",
                      "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
                      "gen_ai.usage.reasoning.output_tokens", "llm.response.model", "llm.invocation_parameters"))
OBSERVATION_TYPES = {"SPAN", "GENERATION", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR",
                     "EMBEDDING", "GUARDRAIL"}


def load(name: str) -> ExportTraceServiceRequest:
    request: ExportTraceServiceRequest = otlp_json.decode(ExportTraceServiceRequest, (FIXTURES / name).read_bytes())
    return request


def traces_of(request: ExportTraceServiceRequest) -> dict[bytes, list[SpanRef]]:
    """The spans of a request grouped by trace, as the storage destination gathers them."""
    traces: dict[bytes, list[SpanRef]] = {}
    for resource_spans in request.resource_spans:
        resource = to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                ref = SpanRef(span, resource, scope_spans.scope.name, scope_spans.scope.version)
                traces.setdefault(span.trace_id, []).append(ref)
    return traces


def document_of(name: str) -> dict[str, Any]:
    traces = traces_of(load(name))
    assert len(traces) == 1, f"{name}: one trace per fixture"
    [(trace_id, refs_)] = traces.items()
    return trace_document(trace_id, refs_)


def observation_named(document: dict[str, Any], name: str) -> dict[str, Any]:
    observations: list[dict[str, Any]] = [o for o in document["observations"] if o["name"] == name]
    assert len(observations) == 1, name
    return observations[0]


def text_of(value: Any) -> str:
    return orjson.dumps(value).decode()


def custom(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata less the keys that say where a span came from."""
    return {k: v for k, v in metadata.items() if k not in RESERVED_METADATA}


TRACE_ID = (1).to_bytes(16, "big")


def span(name: str, span_id: int, start: int, parent: int | None = None,
         attributes: dict[str, Any] | None = None) -> Span:
    s = Span(name=name, trace_id=TRACE_ID, span_id=span_id.to_bytes(8, "big"),
             parent_span_id=parent.to_bytes(8, "big") if parent else b"",
             start_time_unix_nano=start, end_time_unix_nano=start + 1_000_000)
    for key, value in (attributes or {}).items():
        set_value(s.attributes.add(key=key).value, value)
    return s


def refs(*spans: Span, resource: dict[str, Any] | None = None) -> list[SpanRef]:
    return [SpanRef(s, resource or {}, "test", "1") for s in spans]


# --- shape: every key, one JSON type -----------------------------------------------------------

@pytest.mark.parametrize("file", CONVENTIONS)
def test_every_field_is_present_with_its_type(file: str) -> None:
    document = document_of(file)
    assert set(document) == TRACE_KEYS
    assert HEX32.match(document["id"])
    assert isinstance(document["name"], str)
    assert ISO_MICROS.match(document["timestamp"])
    for key in ("environment", "userId", "sessionId"):
        assert document[key] is None or isinstance(document[key], str), key
    assert isinstance(document["metadata"], dict)
    assert isinstance(document["tags"], list) and all(isinstance(t, str) for t in document["tags"])
    assert document["tags"] == sorted(set(document["tags"]))
    assert document["observations"], file

    for o in document["observations"]:
        assert set(o) == OBSERVATION_KEYS, o["name"]
        assert HEX16.match(o["id"])
        assert o["traceId"] == document["id"]
        assert o["parentObservationId"] is None or HEX16.match(o["parentObservationId"])
        assert o["type"] in OBSERVATION_TYPES
        assert isinstance(o["name"], str)
        assert ISO_MICROS.match(o["startTime"]) and ISO_MICROS.match(o["endTime"])
        assert o["completionStartTime"] is None or ISO_MICROS.match(o["completionStartTime"])
        assert o["model"] is None or isinstance(o["model"], str)
        assert isinstance(o["modelParameters"], dict)
        usage = o["usageDetails"]
        assert all(isinstance(k, str) and type(n) is int and n >= 0 for k, n in usage.items())
        if usage:   # Langfuse's buckets: every one counted once, the total their sum unless given
            assert "total" in usage
        assert isinstance(o["costDetails"], dict)
        assert all(type(x) is float and math.isfinite(x) for x in o["costDetails"].values())
        assert isinstance(o["metadata"], dict)
        assert all(isinstance(v, str) for v in o["metadata"].get("attributes", {}).values())
        assert all(isinstance(v, str) for v in o["metadata"]["resourceAttributes"].values())
        assert set(o["metadata"]["scope"]) == {"name", "version"}
        assert isinstance(o["environment"], str) and o["environment"]
        assert o["level"] in {"DEBUG", "DEFAULT", "WARNING", "ERROR"}
        assert o["statusMessage"] is None or isinstance(o["statusMessage"], str)


@pytest.mark.parametrize("file", CONVENTIONS)
def test_document_round_trips_through_any_json_reader(file: str) -> None:
    document = document_of(file)
    encoded = encode_document(document)
    assert isinstance(encoded, bytes) and not encoded.endswith(b"\n")
    encoded.decode("utf-8")

    def no_constants(name: str) -> Any:
        raise AssertionError(f"{name} written")

    parsed = json.loads(encoded, parse_constant=no_constants)
    assert parsed == orjson.loads(encoded) == json.loads(json.dumps(document))
    assert len({frozenset(o) for o in parsed["observations"]}) == 1, "every observation has the same keys"


def test_nan_and_infinity_are_written_as_null() -> None:
    document = trace_document(TRACE_ID, refs(span("root", 1, 10, attributes={
        "trace.metadata.score": math.nan, "trace.metadata.limit": math.inf})))
    parsed = json.loads(encode_document(document), parse_constant=lambda c: pytest.fail(f"{c} written"))
    assert custom(parsed["metadata"]) == {"score": None, "limit": None}


# Keys the document reads, directly or through the GenAI view, with values of any type.
READ_KEYS = ("gen_ai.request.model", "gen_ai.operation.name", "gen_ai.usage.input_tokens", "gen_ai.usage.cost",
             "gen_ai.prompt", "gen_ai.completion", "user.id", "session.id", "trace.name", "trace.metadata.k",
             "langfuse.trace.tags", "langfuse.observation.level", "langfuse.observation.status_message",
             "langfuse.observation.completion_start_time", "gen_ai.response.time_to_first_chunk",
             "ai.response.msToFirstChunk", "langfuse.environment", "langfuse.observation.type")
ANY_VALUE = st.one_of(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(),
                      st.binary(max_size=8), st.lists(st.text(max_size=5), max_size=3),
                      st.sampled_from(["2026-03-09T22:25:37Z", '"2026-03-09T22:25:37.5+02:00"', "[1, 2]", "{}",
                                       "chat", "GENERATION", "error", "1e400", "NaN"]))
SPANS = st.lists(st.tuples(st.integers(1, 6), st.integers(0, 6), st.integers(0, 2**64 - 1),
                           st.integers(0, 2**64 - 1),
                           st.sampled_from([Status.STATUS_CODE_UNSET, Status.STATUS_CODE_OK, Status.STATUS_CODE_ERROR]),
                           st.dictionaries(st.sampled_from(READ_KEYS), ANY_VALUE, max_size=6)), max_size=6)


@settings(max_examples=150, deadline=None)
@given(SPANS)
def test_any_spans_give_a_document_of_the_same_shape(
        spans: list[tuple[int, int, int, int, Status.StatusCode.ValueType, dict[str, Any]]]) -> None:
    made = []
    for span_id, parent, start, end, status, attributes in spans:
        s = Span(name="s", trace_id=TRACE_ID, span_id=span_id.to_bytes(8, "big"),
                 parent_span_id=parent.to_bytes(8, "big") if parent else b"",
                 start_time_unix_nano=start, end_time_unix_nano=end, status=Status(code=status))
        for key, value in attributes.items():
            set_value(s.attributes.add(key=key).value, value)
        made.append(s)
    document = trace_document(TRACE_ID, refs(*made))
    parsed = json.loads(encode_document(document), parse_constant=lambda c: pytest.fail(f"{c} written"))
    assert set(parsed) == TRACE_KEYS
    assert isinstance(parsed["metadata"], dict) and isinstance(parsed["tags"], list)
    for o in parsed["observations"]:
        assert set(o) == OBSERVATION_KEYS
        assert ISO_MICROS.match(o["startTime"])
        for key in ("endTime", "completionStartTime"):
            assert o[key] is None or ISO_MICROS.match(o[key])
        for key in ("modelParameters", "usageDetails", "costDetails", "metadata"):
            assert isinstance(o[key], dict)
        assert o["level"] in {"DEBUG", "DEFAULT", "WARNING", "ERROR"}


# --- observations: the values of expected.json -------------------------------------------------

EXPECTED_CASES = [pytest.param(file, name, expected, id=f"{file}:{name}")
                  for file, spans in EXPECTED.items() for name, expected in spans.items()]


@pytest.mark.parametrize("file, name, expected", EXPECTED_CASES)
def test_observation_carries_the_span_view(file: str, name: str, expected: dict[str, Any]) -> None:
    document = document_of(file)
    [o] = [o for o in document["observations"] if o["id"] == span_id_of(file, name)]
    assert o["type"] == expected["type"]
    if "model" in expected:
        assert o["model"] == expected["model"]
    if "usage_details" in expected:
        assert o["usageDetails"] == (expected["usage_details"] or {})
    carried = {} if "costEstimate" in o["metadata"] else o["costDetails"]   # an estimate is no carried cost
    if "cost" in expected:
        if expected["cost"] is None:
            assert "total" not in carried
        else:
            assert carried["total"] == pytest.approx(expected["cost"])
    if "cost_details" in expected:
        assert carried == pytest.approx(expected["cost_details"])
    if "model_parameters" in expected:
        assert o["modelParameters"] == expected["model_parameters"]
    if "metadata" in expected:
        assert custom(o["metadata"]) == expected["metadata"]
    for field in ("input", "output"):
        if f"{field}_contains" in expected:
            snippet = expected[f"{field}_contains"]
            if snippet is None:
                assert o[field] is None, field
            else:
                assert snippet in text_of(o[field]), field
    # Langfuse's fields as its own tests expect them.
    for key, want in expected.get("observation", {}).items():
        if key == "input_keys":
            assert isinstance(o["input"], dict) and sorted(o["input"]) == sorted(want)
        elif key == "input_first_role":
            assert o["input"][0]["role"] == want
        elif key == "input_first_message_role":
            assert o["input"][0]["message"]["role"] == want
        elif key == "output_is_object":
            assert isinstance(o["output"], dict) is want
        elif key == "no_attributes":
            assert ("attributes" not in o["metadata"]) is want
        elif key == "metadata":
            for k, v in want.items():
                if k == "attributes":
                    assert {a: o["metadata"]["attributes"].get(a) for a in v} == v
                else:
                    assert o["metadata"][k] == v, k
        elif key == "modelParameters":
            assert {k: o["modelParameters"].get(k) for k in want} == want
        else:
            assert o[key] == want, key


def span_id_of(file: str, name: str) -> str:
    [ref] = [r for refs_ in traces_of(load(file)).values() for r in refs_ if r.span.name == name]
    return ref.span.span_id.hex()


def test_metadata_attributes_are_the_span_attributes_no_field_reads() -> None:
    s = span("call", 1, 10, attributes={"gen_ai.request.model": "m", "gen_ai.prompt": "SECRET", "custom.n": 3,
                                        "custom.flag": True, "langfuse.trace.metadata.k": "v",
                                        "ai.telemetry.metadata.topic": "x"})
    [o] = trace_document(s.trace_id, refs(s, resource={"service.name": "shop", "service.instance.id": 7}))[
        "observations"]
    # Not content, not what the table maps (the model is in `model`, the metadata families in metadata).
    assert o["metadata"]["attributes"] == {"custom.n": "3", "custom.flag": "true"}
    assert o["metadata"]["resourceAttributes"] == {"service.name": "shop", "service.instance.id": "7"}
    assert o["metadata"]["scope"] == {"name": "test", "version": "1"}
    assert (o["metadata"]["k"], o["metadata"]["topic"]) == ("v", "x")
    # Langfuse's own SDK spans leave their attributes out (the SDK maps them all).
    sdk = [SpanRef(s, {}, "langfuse-sdk", "3.6.0")]
    assert "attributes" not in trace_document(s.trace_id, sdk)["observations"][0]["metadata"]


@pytest.mark.parametrize("file", CONVENTIONS)
def test_parent_links_and_times_are_the_spans(file: str) -> None:
    [refs_] = traces_of(load(file)).values()
    document = document_of(file)
    by_id = {o["id"]: o for o in document["observations"]}
    assert len(by_id) == len(refs_)
    for ref in refs_:
        o = by_id[ref.span.span_id.hex()]
        assert o["parentObservationId"] == (ref.span.parent_span_id.hex() or None)
        assert o["startTime"] == rfc3339(ref.span.start_time_unix_nano)
        assert o["endTime"] == rfc3339(ref.span.end_time_unix_nano)
    roots = [o for o in document["observations"] if o["parentObservationId"] is None]
    assert len(roots) == 1
    assert all(o["parentObservationId"] in by_id for o in document["observations"] if o not in roots)


@pytest.mark.parametrize("file", CONVENTIONS)
def test_observations_are_sorted_by_start_time_then_id(file: str) -> None:
    observations = document_of(file)["observations"]
    keys = [(o["startTime"], o["id"]) for o in observations]
    assert keys == sorted(keys)


def test_times_are_iso_8601_utc_with_microseconds() -> None:
    assert rfc3339(1773095137430509634) == "2026-03-09T22:25:37.430509Z"
    assert rfc3339(1773095137430509634, 9) == "2026-03-09T22:25:37.430509634Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"
    o = observation_named(document_of("openrouter.json"), "LLM Generation")
    assert (o["startTime"], o["endTime"]) == ("2026-03-09T22:25:37.000000Z", "2026-03-09T22:25:43.210000Z")


def test_completion_start_time_is_given_or_derived_from_time_to_first_token() -> None:
    langfuse = document_of("langfuse.json")
    assert observation_named(langfuse, "classify-intent")["completionStartTime"] == "2026-03-09T22:25:37.412000Z"
    assert observation_named(langfuse, "draft-reply")["completionStartTime"] is None
    # OpenRouter's time_to_first_token_ms: 812 ms after the start.
    openrouter = observation_named(document_of("openrouter.json"), "LLM Generation")
    assert openrouter["completionStartTime"] == "2026-03-09T22:25:37.812000Z"
    start = 1773095137_000000000
    seconds = span("chat", 1, start, attributes={"gen_ai.response.time_to_first_chunk": 0.25})
    [o] = trace_document(seconds.trace_id, refs(seconds))["observations"]
    assert o["completionStartTime"] == "2026-03-09T22:25:37.250000Z"
    unusable = span("chat", 1, start, attributes={"gen_ai.response.time_to_first_chunk": "soon",
                                                  "langfuse.observation.completion_start_time": "yesterday"})
    [o] = trace_document(unusable.trace_id, refs(unusable))["observations"]
    assert o["completionStartTime"] is None


def test_error_status_gives_level_error_and_its_message() -> None:
    document = document_of("openrouter.json")
    failed = observation_named(document, "Provider Attempt: Google Vertex")
    assert (failed["level"], failed["statusMessage"]) == ("ERROR", "429 Too Many Requests")
    fine = observation_named(document, "Provider Attempt: Anthropic")
    assert (fine["level"], fine["statusMessage"]) == ("DEFAULT", None)


def test_langfuse_level_and_status_message_outrank_the_span_status() -> None:
    warned = span("step", 1, 10, attributes={"langfuse.observation.level": "warning",
                                             "langfuse.observation.status_message": "slow"})
    [o] = trace_document(warned.trace_id, refs(warned))["observations"]
    assert (o["level"], o["statusMessage"]) == ("WARNING", "slow")
    # As in Langfuse: what the span states outranks its status; without it the status decides.
    warned.status.code = Status.STATUS_CODE_ERROR
    warned.status.message = "failed"
    [o] = trace_document(warned.trace_id, refs(warned))["observations"]
    assert (o["level"], o["statusMessage"]) == ("WARNING", "slow")
    failed = span("step", 1, 10)
    failed.status.code = Status.STATUS_CODE_ERROR
    failed.status.message = "failed"
    [o] = trace_document(failed.trace_id, refs(failed))["observations"]
    assert (o["level"], o["statusMessage"]) == ("ERROR", "failed")


# --- trace fields --------------------------------------------------------------------------------

TRACE_EXPECTED = {
    # file: name, userId, sessionId, environment, tags, metadata, input snippet, output snippet
    "openrouter.json": ("LLM Generation", "user-8841", "sess-contracts-2026-03-09-42", "default", [],
                        EXPECTED["openrouter.json"]["LLM Generation"]["metadata"],
                        "SECRET-PROMPT-openrouter-1", "SECRET-COMPLETION-openrouter-1"),
    "otel_genai.json": ("invoke_agent travel-planner", "user-otel-7", "conv_5j66UpCpwteGg4YSxUnt7lPY", "default", [],
                        {}, "SECRET-PROMPT-otel-agent-1", "SECRET-COMPLETION-otel-agent-1"),
    "openinference.json": ("RetrievalQA", "user-oi-5", "sess-oi-1234", "default", ["prod", "rag"],
                           {"experiment": "rag-v2", "tenant": "acme"},
                           "SECRET-PROMPT-openinference-1", "SECRET-COMPLETION-openinference-1"),
    "openllmetry.json": ("book_trip", "user-tl-19", "sess-tl-2026-03", "default", [], {"tenant": "acme-travel"},
                         "SECRET-PROMPT-openllmetry-0", "SECRET-COMPLETION-openllmetry-0"),
    "langfuse.json": ("support-ticket", "user-lf-3", "sess-lf-77", "production", ["priority-high", "support"],
                      {"ticket_id": "T-1042", "channel": "email", "classifier_version": "v2", "step": "draft"},
                      "SECRET-PROMPT-langfuse-0", "SECRET-COMPLETION-langfuse-0"),
    # From Langfuse's tests: the trace the Langfuse SDK's generation names, the AI SDK's root.
    "langfuse_sdk.json": ("test-trace", "user-123", "session-456", "production", ["openai", "tag1", "tag2"],
                          {"custom_key": "custom_value", "langfuse_user_id": "lf-user-9", "langfuse_tags": ["openai"],
                           "langfuse_session_id": "lf-sess-9"},
                          "SECRET-PROMPT-lfsdk-0", "SECRET-COMPLETION-lfsdk-0"),
    "vercel_ai_sdk.json": ("weather-chat:ai.generateText", "vercel-user-123", "vercel-session-456", "default",
                           ["agent", "weather"], {"topic": "programming"}, "SECRET-PROMPT-vercel-0",
                           "SECRET-COMPLETION-vercel-0"),
}


@pytest.mark.parametrize("file", sorted(TRACE_EXPECTED))
def test_trace_fields(file: str) -> None:
    name, user, session, environment, tags, metadata, input_, output = TRACE_EXPECTED[file]
    document = document_of(file)
    [(trace_id, _)] = traces_of(load(file)).items()
    assert document["id"] == trace_id.hex()
    assert (document["name"], document["userId"], document["sessionId"]) == (name, user, session)
    assert (document["environment"], document["tags"], custom(document["metadata"])) == (environment, tags, metadata)
    # And where its root came from, as Langfuse's trace metadata has it.
    root = next(o for o in document["observations"] if o["parentObservationId"] is None)
    assert document["metadata"]["resourceAttributes"] == root["metadata"]["resourceAttributes"]
    assert input_ in text_of(document["input"]) and output in text_of(document["output"])
    assert document["timestamp"] == min(o["startTime"] for o in document["observations"])


def test_trace_name_user_and_session_come_from_the_root_first_then_by_start_time() -> None:
    document = trace_document(TRACE_ID, refs(
        span("late", 3, 30, parent=1, attributes={"trace.name": "late-name", "user.id": "late-user"}),
        span("root", 1, 10, attributes={"session.id": "root-session"}),
        span("early", 2, 20, parent=1, attributes={"trace.name": "early-name", "user.id": "early-user",
                                                   "session.id": "early-session"})))
    assert (document["name"], document["userId"], document["sessionId"]) == ("early-name", "early-user",
                                                                               "root-session")
    unnamed = trace_document(TRACE_ID, refs(span("root-span", 1, 10), span("child", 2, 5, parent=1)))
    assert unnamed["name"] == "root-span"


def test_metadata_merges_every_span_and_the_root_wins() -> None:
    document = trace_document(TRACE_ID, refs(
        span("child", 2, 5, parent=1, attributes={"trace.metadata.tier": "child",
                                                  "trace.metadata.step": "draft"}),
        span("root", 1, 10, attributes={"trace.metadata.tier": "root"})))
    assert custom(document["metadata"]) == {"tier": "root", "step": "draft"}


def test_trace_io_falls_back_to_the_first_generation_input_and_the_last_generation_output() -> None:
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
    document = trace_document(TRACE_ID, refs(
        span("root", 1, 10),
        span("second", 3, 30, parent=1, attributes={**chat, "gen_ai.prompt": "in-2",
                                                    "gen_ai.completion": "out-2"}),
        span("first", 2, 20, parent=1, attributes={**chat, "gen_ai.prompt": "in-1",
                                                   "gen_ai.completion": "out-1"}),
        span("tool", 4, 40, parent=1, attributes={"gen_ai.operation.name": "execute_tool",
                                                  "gen_ai.tool.call.result": "tool-out"})))
    assert (document["input"], document["output"]) == ("in-1", "out-2")
    bare = trace_document(TRACE_ID, refs(span("root", 1, 10)))
    assert (bare["input"], bare["output"]) == (None, None)


def test_environment_comes_from_the_resource_when_spans_do_not_name_it() -> None:
    document = trace_document(TRACE_ID, refs(span("root", 1, 10),
                                             resource={"deployment.environment.name": "staging"}))
    assert document["environment"] == "staging"


def test_a_span_whose_parent_is_elsewhere_is_the_root_of_a_partial_trace() -> None:
    # A later object of the same trace: the root was written before.
    document = trace_document(TRACE_ID, refs(
        span("child", 3, 30, parent=2, attributes={"gen_ai.prompt": "child-input"}),
        span("orphan", 2, 20, parent=1, attributes={"gen_ai.prompt": "orphan-input"})))
    assert (document["name"], document["input"]) == ("orphan", "orphan-input")
    assert [o["parentObservationId"] for o in document["observations"]] == [(1).to_bytes(8, "big").hex(),
                                                                            (2).to_bytes(8, "big").hex()]


def test_a_span_delivered_twice_is_one_observation() -> None:
    root = span("root", 1, 10)
    document = trace_document(root.trace_id, refs(root, span("child", 2, 20, parent=1), root))
    assert [o["name"] for o in document["observations"]] == ["root", "child"]


def test_no_spans_give_an_empty_document_of_the_same_shape() -> None:
    document = trace_document(TRACE_ID, [])
    assert set(document) == TRACE_KEYS
    assert document["observations"] == [] and document["name"] is None and document["timestamp"] is None


# --- privacy -------------------------------------------------------------------------------------

@pytest.mark.parametrize("file", CONVENTIONS)
def test_stripped_content_stays_out_and_everything_else_stays_in(file: str) -> None:
    request = load(file)
    assert strip_content(request, TRACES) > 0
    [(trace_id, refs_)] = traces_of(request).items()
    stripped = trace_document(trace_id, refs_)
    assert b"SECRET-" not in encode_document(stripped)
    full = document_of(file)
    assert {k: full[k] for k in ("id", "name", "userId", "sessionId", "tags", "timestamp", "environment")} == \
           {k: stripped[k] for k in ("id", "name", "userId", "sessionId", "tags", "timestamp", "environment")}
    assert custom(stripped["metadata"]) == custom(full["metadata"])
    for before, after in zip(full["observations"], stripped["observations"], strict=True):
        for key in ("id", "type", "name", "model", "usageDetails", "costDetails", "modelParameters", "startTime",
                    "endTime", "level", "environment", "statusMessage", "completionStartTime"):
            assert after[key] == before[key], (before["name"], key)
        assert custom(after["metadata"]) == custom(before["metadata"]), before["name"]
        assert after["metadata"]["resourceAttributes"] == before["metadata"]["resourceAttributes"]
        # A model call keeps only what the table names as not content; other spans lose only content.
        # (Counts, model and settings the table reads from inside content stay as plain attributes.)
        had = before["metadata"].get("attributes", {})
        kept = {k: v for k, v in after["metadata"].get("attributes", {}).items() if not (k in SALVAGED and k not in had)}
        assert kept.items() <= had.items(), before["name"]
        if before["type"] not in ("GENERATION", "EMBEDDING"):
            assert kept == had, before["name"]
        assert set(after) == OBSERVATION_KEYS


# --- log records joined to their spans (GenAI events sent as logs) ----------------------------

def _chat_span(span_id: bytes = b"\x02" * 8) -> SpanRef:
    span = Span(name="chat gpt-4o-mini", trace_id=TRACE_ID, span_id=span_id,
                start_time_unix_nano=1_700_000_000 * 10**9, end_time_unix_nano=1_700_000_001 * 10**9)
    for key, value in {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                       "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3}.items():
        set_value(span.attributes.add(key=key).value, value)
    return SpanRef(span, {"service.name": "app"}, "opentelemetry.instrumentation.openai_v2", "2.1b0")


def _log(span_id: bytes, name: str = "gen_ai.client.inference.operation.details", body: Any = None,
         severity: int = 9, **attributes: Any) -> LogRef:
    record = LogRecord(time_unix_nano=1_700_000_000_500_000_000, trace_id=TRACE_ID, span_id=span_id,
                       event_name=name, severity_number=severity)
    for key, value in attributes.items():
        set_value(record.attributes.add(key=key).value, value)
    if body is not None:
        set_value(record.body, body)
    return LogRef(record, {"service.name": "app"}, "opentelemetry.instrumentation.openai_v2", "2.1b0")


INPUT = '[{"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}]'
OUTPUT = '[{"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}], "finish_reason": "stop"}]'


def test_an_inference_details_log_gives_its_span_input_and_output() -> None:
    log = _log(b"\x02" * 8, **{"gen_ai.input.messages": INPUT, "gen_ai.output.messages": OUTPUT})
    before = _chat_span()
    document = trace_document(TRACE_ID, [before], [log])
    [o] = document["observations"]
    assert o["type"] == "GENERATION"
    assert o["input"] == orjson.loads(INPUT) and o["output"] == orjson.loads(OUTPUT)
    assert document["input"] == o["input"] and document["output"] == o["output"]
    assert not before.span.events   # joined on a copy: the spooled span is left as it came


def test_the_older_per_message_log_events_read_as_span_events_do() -> None:
    logs = [_log(b"\x02" * 8, "gen_ai.user.message", body={"content": "Say hi"}),
            _log(b"\x02" * 8, "gen_ai.choice", body={"index": 0, "message": {"content": "Hi!"}})]
    [o] = trace_document(TRACE_ID, [_chat_span()], logs)["observations"]
    assert o["input"] == [{"role": "user", "content": "Say hi"}]
    assert o["output"] == {"index": 0, "message": {"content": "Hi!"}}


def test_a_log_replayed_twice_joins_once() -> None:
    log = _log(b"\x02" * 8, "gen_ai.user.message", body={"content": "Say hi"})
    [o] = trace_document(TRACE_ID, [_chat_span()], [log, log])["observations"]
    assert o["input"] == [{"role": "user", "content": "Say hi"}]


def test_a_log_whose_span_is_not_in_the_trace_is_an_event_observation_not_lost() -> None:
    stray = _log(b"\x09" * 8, "app.notice", body="cache warmed", severity=13, **{"app.region": "eu"})
    document = trace_document(TRACE_ID, [_chat_span()], [stray])
    assert [o["type"] for o in document["observations"]] == ["GENERATION", "EVENT"]   # by start time
    event = document["observations"][1]
    assert event["name"] == "app.notice" and event["input"] == "cache warmed" and event["level"] == "WARNING"
    assert event["parentObservationId"] == "09" * 8 and event["id"].startswith("09" * 8)
    assert event["metadata"]["attributes"] == {"app.region": "eu"}
    assert event["metadata"]["resourceAttributes"] == {"service.name": "app"}
    assert set(event) == OBSERVATION_KEYS
    # A trace of logs alone is still a document.
    alone = trace_document(TRACE_ID, [], [stray])
    assert [o["type"] for o in alone["observations"]] == ["EVENT"] and alone["timestamp"] == event["startTime"]
