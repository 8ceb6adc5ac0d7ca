"""Specification of the canonical GenAI view of a span (otlp_router.model.genai).

The fixtures in tests/fixtures/genai are traces of every convention of the table as OTLP JSON
export requests: realistic traces of the five first conventions, and the cases of Langfuse's own
OTel mapping tests converted to OTLP JSON (each span's "_source" names the test it comes from).
expected.json holds, per file and span name, the values the view must read from them; those from
Langfuse's tests are Langfuse's expectations. The rule tests below pin the source order of every
field (Langfuse's priorities, then the router's extensions), the type mapping, Langfuse's usage
buckets, and leniency.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otlp_router.model import otlp_json
from otlp_router.model.attributes import set_value, to_dict
from otlp_router.model.genai import GenAIView, view, view_from_attributes

FIXTURES = Path(__file__).parent / "fixtures" / "genai"
EXPECTED: dict[str, dict[str, dict[str, Any]]] = orjson.loads((FIXTURES / "expected.json").read_bytes())
CONVENTIONS = tuple(sorted(EXPECTED))   # every fixture file


def load_fixture(name: str) -> ExportTraceServiceRequest:
    return otlp_json.decode(ExportTraceServiceRequest, (FIXTURES / name).read_bytes())


def fixture_spans(request: ExportTraceServiceRequest) -> Iterator[tuple[dict[str, Any], Span]]:
    """(resource attributes, span) for every span of a request."""
    for resource, span, _ in scoped_spans(request):
        yield resource, span


def scoped_spans(request: ExportTraceServiceRequest) -> Iterator[tuple[dict[str, Any], Span, Any]]:
    """(resource attributes, span, instrumentation scope) for every span of a request."""
    for resource_spans in request.resource_spans:
        resource = to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield resource, span, scope_spans.scope


def span_named(name: str, span_name: str) -> tuple[dict[str, Any], Span]:
    resource, span, _ = scoped_span_named(name, span_name)
    return resource, span


def scoped_span_named(name: str, span_name: str) -> tuple[dict[str, Any], Span, Any]:
    matches = [(r, s, sc) for r, s, sc in scoped_spans(load_fixture(name)) if s.name == span_name]
    assert len(matches) == 1, f"{name}: {len(matches)} spans named {span_name!r}"
    return matches[0]


def fixture_view(file: str, span_name: str) -> GenAIView:
    resource, span, scope = scoped_span_named(file, span_name)
    return view(span, resource, scope.name, scope.version)


def carried_cost(v: GenAIView) -> tuple[float | None, dict[str, float]]:
    """The cost and cost details the span itself carries (the fixtures' `cost`, `cost_details`): a
    cost the router estimated from the price table is no such cost, and must be the table's."""
    if v.cost_estimate is None:
        return v.cost, v.cost_details
    assert v.is_genai and v.model and v.cost == v.cost_estimate.total
    assert v.cost_details == {"input": v.cost_estimate.input, "output": v.cost_estimate.output,
                              "total": v.cost_estimate.total}
    return None, {}


def text_of(value: Any) -> str:
    return orjson.dumps(value).decode()


def event(name: str, **attributes: Any) -> Span.Event:
    e = Span.Event(name=name)
    for key, value in attributes.items():
        set_value(e.attributes.add(key=key).value, value)
    return e


EXPECTED_CASES = [pytest.param(file, span_name, expected, id=f"{file}:{span_name}")
                  for file, spans in EXPECTED.items() for span_name, expected in spans.items()]


# --- the fixtures ------------------------------------------------------------------------------

def test_expected_values_cover_every_span_of_every_convention() -> None:
    assert sorted(EXPECTED) == sorted(CONVENTIONS)
    for name in CONVENTIONS:
        names = [span.name for _, span in fixture_spans(load_fixture(name))]
        assert len(names) == len(set(names)), f"{name}: span names must be unique"
        assert sorted(names) == sorted(EXPECTED[name]), name


VIEW_FIELDS = ("type", "operation", "model", "provider", "input_tokens", "output_tokens", "total_tokens",
               "cached_tokens", "reasoning_tokens", "user_id", "session_id", "trace_name", "tags", "metadata",
               "model_parameters", "is_genai", "usage_details", "input", "output")


@pytest.mark.parametrize("file, span_name, expected", EXPECTED_CASES)
def test_fixture_span_reads_as_expected(file: str, span_name: str, expected: dict[str, Any]) -> None:
    v = fixture_view(file, span_name)
    for field in VIEW_FIELDS:
        if field in expected:
            assert getattr(v, field) == expected[field], field
    cost, cost_details = carried_cost(v)
    if "cost" in expected:
        assert cost == pytest.approx(expected["cost"]), "cost"
    if "cost_details" in expected:
        assert cost_details == pytest.approx(expected["cost_details"]), "cost_details"
    for field in ("input", "output"):
        if f"{field}_contains" not in expected:
            continue
        snippet = expected[f"{field}_contains"]
        value = getattr(v, field)
        if snippet is None:
            assert value is None, field
        else:
            assert snippet in text_of(value), field


def test_every_fixture_from_langfuse_names_its_source_test() -> None:
    for file in CONVENTIONS:
        for span_name, expected in EXPECTED[file].items():
            if "source" in expected:
                assert expected["source"].startswith(("langfuse/langfuse ", "otlp-router issue 15")), span_name
                raw = orjson.loads((FIXTURES / file).read_bytes())
                spans = [s for rs in raw["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
                assert any(s["name"] == span_name and s["_source"] == expected["source"] for s in spans), span_name


@pytest.mark.parametrize("file", CONVENTIONS)
def test_views_of_fixture_spans_serialise_as_json(file: str) -> None:
    for resource, span, scope in scoped_spans(load_fixture(file)):
        orjson.dumps(dataclasses.asdict(view(span, resource, scope.name, scope.version)))


def test_view_reads_the_span_attributes_events_and_name() -> None:
    _, span = span_named("otel_genai.json", "chat gpt-5")
    assert view(span) == view_from_attributes(to_dict(span.attributes), span.events, span.name)


def test_resource_attributes_fill_what_the_span_lacks_and_the_span_wins() -> None:
    span = Span(name="call")
    set_value(span.attributes.add(key="gen_ai.request.model").value, "span-model")
    v = view(span, {"gen_ai.request.model": "resource-model", "user.id": "resource-user"})
    assert (v.model, v.user_id) == ("span-model", "resource-user")


# --- source order: Langfuse's, then the router's extensions ------------------------------------

SOURCE_ORDER = [
    ("model", ["langfuse.observation.model.name", "gen_ai.response.model", "ai.model.id", "gen_ai.request.model",
               "llm.response.model", "llm.model_name", "model", "embedding.model_name"]),
    ("provider", ["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider"]),
    ("input_tokens", ["gen_ai.usage.prompt_tokens", "gen_ai.usage.input_tokens", "llm.token_count.prompt",
                      "llm.usage.prompt_tokens"]),
    ("output_tokens", ["gen_ai.usage.completion_tokens", "gen_ai.usage.output_tokens", "llm.token_count.completion",
                       "llm.usage.completion_tokens"]),
    ("cached_tokens", ["gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                       "gen_ai.usage.cache_read_tokens", "gen_ai.usage.details.cache_read_tokens",
                       "gen_ai.usage.details.cache_read_input_tokens", "llm.token_count.prompt_details.cache_read",
                       "gen_ai.usage.input_cached_tokens", "gen_ai.usage.input_tokens.cached"]),
    ("reasoning_tokens", ["gen_ai.usage.reasoning.output_tokens", "llm.token_count.completion_details.reasoning",
                          "gen_ai.usage.output_tokens.reasoning", "gen_ai.usage.reasoning_tokens"]),
    ("cost", ["gen_ai.usage.cost", "llm.cost.total", "gen_ai.usage.total_cost"]),
    ("user_id", ["langfuse.user.id", "user.id", "langfuse.observation.metadata.langfuse_user_id",
                 "langfuse.trace.metadata.langfuse_user_id", "ai.telemetry.metadata.userId",
                 "traceloop.association.properties.user_id", "enduser.id"]),
    ("session_id", ["langfuse.session.id", "session.id", "gen_ai.conversation.id",
                    "langfuse.observation.metadata.langfuse_session_id", "langfuse.trace.metadata.langfuse_session_id",
                    "ai.telemetry.metadata.sessionId", "traceloop.association.properties.session_id"]),
    ("trace_name", ["langfuse.trace.name", "trace.name", "trace_name", "traceloop.workflow.name"]),
    ("input", ["langfuse.observation.input", "gcp.vertex.agent.tool_call_args", "prompt", "lk.input_text",
               "mlflow.spanInputs", "traceloop.entity.input", "input.value", "input", "tool_arguments", "gen_ai.prompt",
               "gen_ai.prompt.0.content", "llm.input_messages.0.message.content", "gen_ai.input.messages",
               "gen_ai.tool.call.arguments", "gen_ai.retrieval.query.text", "request_data"]),
    ("output", ["langfuse.observation.output", "gcp.vertex.agent.tool_response", "all_messages_events",
                "lk.function_tool.output", "mlflow.spanOutputs", "traceloop.entity.output", "output.value", "output",
                "tool_response", "gen_ai.completion", "gen_ai.completion.0.content",
                "llm.output_messages.0.message.content", "gen_ai.output.messages", "gen_ai.tool.call.result",
                "gen_ai.retrieval.documents", "response_data"]),
]


def _sample(field: str, rank: int) -> Any:
    if field.endswith("_tokens"):
        return 100 + rank
    if field == "cost":
        return 0.5 + rank
    return f"value-{rank}"


@pytest.mark.parametrize("field, keys", [pytest.param(f, k, id=f) for f, k in SOURCE_ORDER])
def test_each_field_takes_the_first_source_in_langfuse_order(field: str, keys: list[str]) -> None:
    for first in range(len(keys)):
        attributes = {key: _sample(field, rank) for rank, key in enumerate(keys) if rank >= first}
        got = getattr(view_from_attributes(attributes), field)
        if field in ("input", "output"):
            # Indexed families become message lists; the winning text is what counts.
            assert f'"value-{first}"' in text_of(got), (keys[first], got)
        else:
            assert got == _sample(field, first), keys[first]


def test_an_unusable_value_gives_way_to_the_next_source() -> None:
    v = view_from_attributes({"gen_ai.usage.input_tokens": "n/a", "gen_ai.usage.prompt_tokens": 5,
                              "gen_ai.response.model": "", "gen_ai.request.model": "gpt-4o"})
    assert (v.input_tokens, v.model) == (5, "gpt-4o")


# --- lenient values -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, count", [
    (12, 12), ("12", 12), (" 12 ", 12), (12.0, 12), ("12.0", 12), (0, 0), ("0", 0),
    (12.5, None), ("twelve", None), ("", None), (True, None), (-3, None), ("-3", None),
    (float("nan"), None), (float("inf"), None), ("1e400", None), (2**63, None), ("9" * 5000, None),
    ([12], None), ({"n": 12}, None), (b"12", None), (None, None),
])
def test_token_counts_are_read_leniently(raw: Any, count: int | None) -> None:
    assert view_from_attributes({"gen_ai.usage.input_tokens": raw}).input_tokens == count


@pytest.mark.parametrize("raw, usd", [
    (0.25, 0.25), ("0.25", 0.25), (1, 1.0), ("1e-4", 1e-4), (0, 0.0),
    ("nan", None), (float("inf"), None), ("free", None), (True, None), ([0.25], None), (10**400, None),
])
def test_costs_are_read_leniently(raw: Any, usd: float | None) -> None:
    assert view_from_attributes({"gen_ai.usage.cost": raw}).cost == usd


def test_integer_ids_are_read_as_text_and_other_odd_ids_are_unusable() -> None:
    assert view_from_attributes({"user.id": 42, "session.id": ["s"]}).user_id == "42"
    assert view_from_attributes({"user.id": True, "session.id": {"id": "s"}}).session_id is None


# --- derived values -----------------------------------------------------------------------------

def test_total_tokens_are_the_given_total_else_input_plus_output() -> None:
    assert view_from_attributes({"gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4,
                                 "llm.usage.total_tokens": 10}).total_tokens == 10
    assert view_from_attributes({"gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4}).total_tokens == 7
    assert view_from_attributes({"gen_ai.usage.input_tokens": 3}).total_tokens is None


def test_cost_is_the_given_total_else_the_sum_of_its_parts() -> None:
    v = view_from_attributes({"gen_ai.usage.input_cost": 0.25, "gen_ai.usage.output_cost": 0.5})
    assert v.cost == 0.75
    assert v.cost_details == {"input": 0.25, "output": 0.5, "total": 0.75}
    # As Langfuse totals what a span states (a price table estimate is another matter).
    v = view_from_attributes({"llm.cost.prompt": 0.25})
    assert (v.cost, v.cost_details) == (0.25, {"input": 0.25, "total": 0.25})


def test_langfuse_usage_and_cost_details_win_over_every_attribute() -> None:
    v = view_from_attributes({
        "gen_ai.usage.input_tokens": 7,
        "langfuse.observation.usage_details": '{"input": 9, "output": 2, "input_cached_tokens": 1}',
        "llm.cost.total": 0.5,
        "langfuse.observation.cost_details": {"total": 0.9, "input": 0.1, "cache_read_input_tokens": 0.01},
    })
    assert v.usage_details == {"input": 9, "output": 2, "input_cached_tokens": 1, "total": 12}
    # Reported counts (Aperture's meaning) include the buckets Langfuse keeps apart.
    assert (v.input_tokens, v.output_tokens, v.cached_tokens, v.cost) == (10, 2, 1, 0.9)
    assert v.cost_details == {"input": 0.1, "total": 0.9, "cache_read_input_tokens": 0.01}
    # A blob that does not parse as an object gives way to the attributes.
    v = view_from_attributes({"langfuse.observation.usage_details": "{{bad}}", "gen_ai.usage.input_tokens": 50})
    assert v.usage_details == {"input": 50, "total": 50}


# --- usage: Langfuse's buckets -----------------------------------------------------------------

def test_input_excludes_cache_reads_and_creation_and_output_excludes_reasoning_and_audio() -> None:
    v = view_from_attributes({
        "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 60,
        "gen_ai.usage.cache_read.input_tokens": 20, "gen_ai.usage.cache_creation.input_tokens": 10,
        "gen_ai.usage.reasoning.output_tokens": 25, "llm.token_count.completion_details.audio": 5})
    assert v.usage_details == {"input": 70, "input_cached_tokens": 20, "input_cache_creation": 10, "output": 30,
                               "output_reasoning_tokens": 25, "output_audio_tokens": 5, "total": 160}
    # The counts as reported stay as they were (Aperture records them so).
    assert (v.input_tokens, v.output_tokens, v.cached_tokens, v.reasoning_tokens, v.cache_creation_tokens) == \
           (100, 60, 20, 25, 10)


def test_every_bucket_sums_to_the_total_when_none_is_given() -> None:
    v = view_from_attributes({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 40,
                              "gen_ai.usage.cache_read_input_tokens": 30})
    assert v.usage_details == {"input": 70, "input_cached_tokens": 30, "output": 40, "total": 140}
    assert sum(n for k, n in v.usage_details.items() if k != "total") == v.usage_details["total"]


def test_a_given_total_is_kept() -> None:
    v = view_from_attributes({"gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4,
                              "gen_ai.usage.total_tokens": 10})
    assert v.usage_details == {"input": 3, "output": 4, "total": 10}


def test_one_spelling_of_a_bucket_counts_once_and_a_zero_still_counts() -> None:
    v = view_from_attributes({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.cache_read.input_tokens": 0,
                              "gen_ai.usage.cache_read_input_tokens": 20})
    assert v.usage_details == {"input": 100, "input_cached_tokens": 0, "total": 100}


def test_buckets_clamp_at_zero_and_a_lone_detail_makes_no_output() -> None:
    v = view_from_attributes({"llm.token_count.completion": 50, "llm.token_count.completion_details.reasoning": 60})
    assert v.usage_details == {"output": 0, "output_reasoning_tokens": 60, "total": 60}
    v = view_from_attributes({"gen_ai.usage.reasoning.output_tokens": 25})
    assert v.usage_details == {"output_reasoning_tokens": 25, "total": 25}


def test_other_usage_keys_are_buckets_of_their_own_and_cost_is_not_usage() -> None:
    v = view_from_attributes({"gen_ai.usage.custom_tokens": 100, "gen_ai.usage.details.input_audio_tokens": 5,
                              "gen_ai.usage.cost": 0.000151, "llm.token_count.image": 2})
    assert v.usage_details == {"custom_tokens": 100, "input_audio_tokens": 5, "image": 2, "total": 107}
    assert v.cost == 0.000151


@pytest.mark.parametrize("blob, details", [
    # The langfuse SDK's OpenAI integration: the raw Chat Completions usage object.
    ({"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30,
      "prompt_tokens_details": {"cached_tokens": 5, "audio_tokens": 0},
      "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": None}},
     {"input": 15, "input_cached_tokens": 5, "input_audio_tokens": 0, "output": 7, "output_reasoning_tokens": 3,
      "total": 30}),
    # The Responses API's.
    ({"input_tokens": 40, "output_tokens": 12, "total_tokens": 52, "input_tokens_details": {"cached_tokens": 32},
      "output_tokens_details": {"reasoning_tokens": 8}},
     {"input": 8, "input_cached_tokens": 32, "output": 4, "output_reasoning_tokens": 8, "total": 52}),
    # Langfuse's own keys, as they are.
    ({"input": 100, "output": 200, "total": 300, "cached_input": 50},
     {"input": 100, "output": 200, "total": 300, "cached_input": 50}),
], ids=["chat-completions", "responses", "langfuse-keys"])
def test_usage_details_in_every_shape_langfuse_reads(blob: dict[str, Any], details: dict[str, int]) -> None:
    v = view_from_attributes({"langfuse.observation.usage_details": orjson.dumps(blob).decode()})
    assert v.usage_details == details


def test_agent_spans_carry_no_usage_or_cost_their_model_calls_repeat() -> None:
    v = view_from_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "m",
                              "gen_ai.usage.input_tokens": 900, "gen_ai.usage.cost": 0.1})
    assert (v.model, v.usage_details, v.input_tokens, v.cost) == ("m", None, None, None)


def test_scoped_conventions_apply_to_their_instrumentation_scope_only() -> None:
    attributes = {"ai.usage.tokens": 9, "ai.prompt.messages": '[{"role": "user"}]'}
    assert view_from_attributes(attributes, scope_name="ai").usage_details == {"total": 9}
    assert view_from_attributes(attributes, scope_name="ai").input == [{"role": "user"}]
    other = view_from_attributes(attributes, scope_name="my-app")
    assert (other.usage_details, other.input) == (None, None)


# --- type and operation -------------------------------------------------------------------------

@pytest.mark.parametrize("attributes, type_", [
    ({"gen_ai.operation.name": "chat"}, "GENERATION"),
    ({"gen_ai.operation.name": "completion"}, "GENERATION"),
    ({"gen_ai.operation.name": "text_completion"}, "GENERATION"),
    ({"gen_ai.operation.name": "generate_content"}, "GENERATION"),
    ({"gen_ai.operation.name": "generate"}, "GENERATION"),
    ({"gen_ai.operation.name": "embeddings"}, "EMBEDDING"),
    ({"gen_ai.operation.name": "execute_tool"}, "TOOL"),
    ({"gen_ai.operation.name": "invoke_agent"}, "AGENT"),
    ({"gen_ai.operation.name": "create_agent"}, "AGENT"),
    ({"gen_ai.operation.name": "chat.completions"}, "GENERATION"),   # Semantic Kernel
    ({"openinference.span.kind": "LLM"}, "GENERATION"),
    ({"openinference.span.kind": "EMBEDDING"}, "EMBEDDING"),
    ({"openinference.span.kind": "TOOL"}, "TOOL"),
    ({"openinference.span.kind": "AGENT"}, "AGENT"),
    ({"openinference.span.kind": "CHAIN"}, "CHAIN"),
    ({"openinference.span.kind": "RETRIEVER"}, "RETRIEVER"),
    ({"openinference.span.kind": "RERANKER"}, "SPAN"),
    ({"openinference.span.kind": "GUARDRAIL"}, "GUARDRAIL"),
    ({"openinference.span.kind": "EVALUATOR"}, "EVALUATOR"),
    ({"openinference.span.kind": ""}, "SPAN"),
    ({"openinference.span.kind": "UnknownKind"}, "SPAN"),
    *(({"langfuse.observation.type": t.lower()}, t) for t in (
        "GENERATION", "EMBEDDING", "TOOL", "AGENT", "CHAIN", "RETRIEVER", "EVALUATOR", "GUARDRAIL", "EVENT", "SPAN")),
    ({"traceloop.span.kind": "workflow"}, "CHAIN"),
    ({"traceloop.span.kind": "task"}, "SPAN"),
    ({"traceloop.span.kind": "agent"}, "AGENT"),
    ({"traceloop.span.kind": "tool"}, "TOOL"),
    ({"genkit:metadata:subtype": "model"}, "GENERATION"),
    ({"genkit:metadata:subtype": "embedder"}, "EMBEDDING"),
    ({"genkit:metadata:subtype": "tool.v2"}, "TOOL"),
    ({"operation.name": "ai.generateText.doGenerate", "gen_ai.response.model": "gpt-4o"}, "GENERATION"),
    ({"operation.name": "ai.streamObject.doStream", "ai.model.id": "gpt-4o"}, "GENERATION"),
    ({"operation.name": "ai.embed.doEmbed generate-document-embedding", "ai.model.id": "e"}, "EMBEDDING"),
    ({"ai.operationId": "ai.embedMany.doEmbed", "ai.model.id": "e"}, "EMBEDDING"),
    ({"operation.name": "ai.generateText.doGenerate"}, "SPAN"),   # no model: not a generation
    ({"operation.name": "ai.toolCall MyAgent.myFunction"}, "TOOL"),
    ({"ai.operationId": "ai.toolCall"}, "TOOL"),
    ({"gen_ai.tool.name": "roulette_wheel"}, "TOOL"),
    ({"gen_ai.tool.call.id": "call_1"}, "TOOL"),
    ({"flue.tool.name": "lookup"}, "TOOL"),
    ({"flue.task.agent": "summarizer"}, "AGENT"),
    ({"mlflow.spanType": '"CHAT_MODEL"'}, "GENERATION"),
    ({"gen_ai.request.model": "gpt-4o"}, "GENERATION"),
    ({"llm.model_name": "gpt-4o"}, "GENERATION"),
    ({"model": "gpt-4o-mini"}, "GENERATION"),
    ({"model": ""}, "SPAN"),
    ({"llm.token_count.prompt": 12}, "SPAN"),   # tokens without a model: not a generation (Langfuse)
    ({"http.request.method": "GET"}, "SPAN"),
    ({}, "SPAN"),
], ids=repr)
def test_type_maps_operation_kind_and_observation_type(attributes: dict[str, Any], type_: str) -> None:
    assert view_from_attributes(attributes).type == type_


def test_type_rules_in_langfuse_order_and_unknown_values_fall_through() -> None:
    every = {"langfuse.observation.type": "retriever", "openinference.span.kind": "AGENT",
             "gen_ai.operation.name": "execute_tool", "genkit:metadata:subtype": "evaluator",
             "traceloop.span.kind": "workflow", "gen_ai.request.model": "gpt-4o"}
    order = ["RETRIEVER", "AGENT", "TOOL", "EVALUATOR", "CHAIN", "GENERATION"]
    keys = list(every)
    for first in range(len(keys)):
        attributes = {k: ("unheard-of" if i < first else every[k]) for i, k in enumerate(keys)}
        if first == len(keys) - 1:
            attributes["gen_ai.request.model"] = "gpt-4o"
        assert view_from_attributes(attributes).type == order[first], keys[first]


def test_livekit_span_names_make_agents_and_tools_in_its_scope_only() -> None:
    assert view_from_attributes({}, name="agent_turn", scope_name="livekit-agents").type == "AGENT"
    assert view_from_attributes({}, name="function_tool", scope_name="livekit-agents").type == "TOOL"
    assert view_from_attributes({}, name="agent_turn").type == "SPAN"


def test_langfuse_python_sdk_up_to_3_3_sends_generations_as_spans() -> None:
    attributes = {"langfuse.observation.type": "span", "langfuse.observation.model.name": "gpt-4o"}
    python = {"telemetry.sdk.language": "python"}
    for version, type_ in (("3.3.0", "GENERATION"), ("3.2.1", "GENERATION"), ("3.4.0", "SPAN"), ("4.0.0", "SPAN")):
        got = view_from_attributes(attributes, scope_name="langfuse-sdk", scope_version=version, resource=python)
        assert got.type == type_, version
    assert view_from_attributes(attributes, scope_name="langfuse-sdk", scope_version="3.3.0",
                                resource={"telemetry.sdk.language": "js"}).type == "SPAN"
    assert view_from_attributes({"langfuse.observation.type": "span"}, scope_name="langfuse-sdk",
                                scope_version="3.3.0", resource=python).type == "SPAN"


def test_operation_comes_from_gen_ai_operation_name_or_traceloop_request_type() -> None:
    assert view_from_attributes({"gen_ai.operation.name": "Chat"}).operation == "chat"
    assert view_from_attributes({"gen_ai.operation.name": "chat.completions"}).operation == "chat"
    assert view_from_attributes({"llm.request.type": "completion"}).operation == "text_completion"
    assert view_from_attributes({"llm.request.type": "embedding", "gen_ai.request.model": "e"}).type == "EMBEDDING"


def test_operation_comes_from_the_semconv_span_name_only_on_genai_spans() -> None:
    assert view_from_attributes({"gen_ai.system": "openai"}, name="chat gpt-4o").operation == "chat"
    assert view_from_attributes({}, name="chat room").operation is None


def test_only_model_calls_are_genai_not_the_agents_tools_or_chains_around_them() -> None:
    assert view_from_attributes({"gen_ai.operation.name": "chat"}).is_genai
    assert view_from_attributes({"openinference.span.kind": "EMBEDDING"}).is_genai
    assert not view_from_attributes({"gen_ai.usage.input_tokens": 3}).is_genai
    assert not view_from_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "m",
                                     "gen_ai.usage.input_tokens": 900}).is_genai
    assert not view_from_attributes({"traceloop.span.kind": "workflow"}).is_genai
    assert not view_from_attributes({"http.request.method": "GET"}).is_genai


# --- name, level, status, environment -----------------------------------------------------------

def test_observation_name_in_langfuse_order() -> None:
    assert view_from_attributes({"gen_ai.tool.name": "roulette_wheel", "logfire.msg": "running tool"}).name == \
        "roulette_wheel"
    assert view_from_attributes({"genkit:name": "openai/gpt-5-mini", "logfire.msg": "m"}).name == "openai/gpt-5-mini"
    assert view_from_attributes({"logfire.msg": "right name"}, name="wrong name").name == "right name"
    assert view_from_attributes({"ai.toolCall.name": "myTool", "ai.operationId": "ai.toolCall"}).name == "myTool"
    assert view_from_attributes({"ai.operationId": "ai.generateText", "ai.telemetry.functionId": "chat"}).name == \
        "chat:ai.generateText"
    assert view_from_attributes({"ai.operationId": "ai.generateText"}).name == "ai.generateText"
    assert view_from_attributes({"gen_ai.request.model": "m"}, name="span").name is None   # the span's own


@pytest.mark.parametrize("given, level", [("warning", "WARNING"), ("INFO", "DEFAULT"), ("FATAL", "ERROR"),
                                          ("critical", "ERROR"), ("trace", "DEBUG"), ("[REDACTED]", "DEFAULT")])
def test_levels_of_other_vocabularies_map_onto_langfuse_levels(given: str, level: str) -> None:
    assert view_from_attributes({"langfuse.observation.level": given}).level == level


def test_a_stated_level_and_status_message_outrank_the_span_status() -> None:
    v = view_from_attributes({"langfuse.observation.level": "WARNING", "langfuse.observation.status_message": "slow"},
                             status_code=2, status_message="failed")
    assert (v.level, v.status_message) == ("WARNING", "slow")
    v = view_from_attributes({"langfuse.observation.level": "[REDACTED]"}, status_code=2, status_message="failed")
    assert (v.level, v.status_message) == ("ERROR", "failed")
    v = view_from_attributes({}, name="tts_node", scope_name="livekit-agents", status_code=2)
    assert v.level == "ERROR"
    assert view_from_attributes({}, name="tts_node", scope_name="livekit-agents").level == "DEBUG"


@pytest.mark.parametrize("attributes, environment", [
    ({}, "default"),
    ({"langfuse.environment": "production"}, "production"),
    ({"deployment.environment.name": "Staging"}, "staging"),
    ({"deployment.environment": "qa", "deployment.environment.name": "prod"}, "prod"),
    ({"langfuse.environment": "langfuse-internal"}, "internal"),
    ({"langfuse.environment": "has space"}, "default"),
    ({"langfuse.environment": "x" * 50}, "x" * 40),
])
def test_environment_as_langfuse_names_them(attributes: dict[str, Any], environment: str) -> None:
    assert view_from_attributes(attributes).environment == environment


def test_completion_start_is_given_or_the_span_start_plus_the_time_to_first_chunk() -> None:
    start = 1_773_095_137_000_000_000
    v = view_from_attributes({"langfuse.observation.completion_start_time": '"2025-10-01T08:45:26.112648Z"'})
    assert v.completion_start_time == "2025-10-01T08:45:26.112648Z"
    v = view_from_attributes({"ai.response.msToFirstChunk": 412.0}, start_unix_nano=start)
    assert v.completion_start_time == "2026-03-09T22:25:37.412000Z"
    v = view_from_attributes({"gen_ai.response.time_to_first_chunk": 0.5}, start_unix_nano=start)
    assert v.completion_start_time == "2026-03-09T22:25:37.500000Z"


# --- content ------------------------------------------------------------------------------------

def test_json_strings_are_parsed_and_other_strings_kept() -> None:
    for raw, parsed in [('{"a": 1}', {"a": 1}), (" [1, 2]", [1, 2]), ('"quoted"', "quoted"),
                        ("plain text", "plain text"), ("{not json", "{not json"), ("42", "42")]:
        assert view_from_attributes({"input.value": raw}).input == parsed, raw


def test_json_nested_deeper_than_a_writer_accepts_stays_a_string() -> None:
    deep = "[" * 300 + "]" * 300
    assert view_from_attributes({"input.value": deep}).input == deep


def test_structured_content_with_bytes_carries_them_as_base64() -> None:
    blob = {"role": "user", "parts": [{"type": "blob", "content": b"\x00\xff"}]}
    v = view_from_attributes({"gen_ai.input.messages": [blob]})
    assert v.input == [{"role": "user", "parts": [{"type": "blob", "content": "AP8="}]}]


def test_indexed_messages_are_rebuilt_in_index_order_with_nested_lists() -> None:
    v = view_from_attributes({
        "gen_ai.prompt.10.content": "ten", "gen_ai.prompt.2.content": "two", "gen_ai.prompt.0.role": "user",
        "gen_ai.completion.0.tool_calls.1.name": "b", "gen_ai.completion.0.tool_calls.0.name": "a",
    })
    assert v.input == [{"role": "user"}, {"content": "two"}, {"content": "ten"}]
    assert v.output == [{"tool_calls": [{"name": "a"}, {"name": "b"}]}]


def test_flattened_keys_without_an_index_make_an_object() -> None:
    assert view_from_attributes({"gen_ai.completion.content": "Observing LLMs"}).output == {"content": "Observing LLMs"}


def test_openinference_messages_keep_their_message_wrapper() -> None:
    v = view_from_attributes({"llm.input_messages.0.message.role": "user",
                              "llm.input_messages.0.message.content": "hi"})
    assert v.input == [{"message": {"role": "user", "content": "hi"}}]


def test_keys_under_a_message_prefix_without_an_index_are_not_messages() -> None:
    assert view_from_attributes({"gen_ai.prompt.name": "analyze-code"}).input is None
    assert view_from_attributes({"gen_ai.prompt.0." + "a." * 50 + "b": "deep"}).input is None


def test_system_instructions_become_a_first_system_message() -> None:
    instructions = [{"type": "text", "content": "be brief"}, {"type": "text", "content": "be kind"}]
    v = view_from_attributes({"gen_ai.system_instructions": orjson.dumps(instructions).decode(),
                              "gen_ai.input.messages": '[{"role": "user", "parts": []}]'})
    assert v.input == [{"role": "system", "content": "be brief\nbe kind"}, {"role": "user", "parts": []}]
    # Not when the messages have one; without messages they are the input (Langfuse shows none).
    v = view_from_attributes({"gen_ai.system_instructions": "be brief",
                              "gen_ai.input.messages": '[{"role": "system", "content": "own"}]'})
    assert v.input == [{"role": "system", "content": "own"}]
    assert view_from_attributes({"gen_ai.system_instructions": "be brief"}).input == \
        [{"role": "system", "content": "be brief"}]


def test_tool_definitions_join_the_input() -> None:
    tool = {"type": "function", "name": "calculator", "parameters": {"type": "object"}}
    v = view_from_attributes({"gen_ai.tool.definitions": orjson.dumps([tool]).decode(),
                              "gen_ai.input.messages": '[{"role": "user", "content": "2 + 2?"}]'})
    assert v.input == {"messages": [{"role": "user", "content": "2 + 2?"}], "tools": [tool]}
    assert view_from_attributes({"gen_ai.tool.definitions": [tool]}).input == {"tools": [tool]}


def test_the_details_event_outranks_message_attributes() -> None:
    details = event("gen_ai.client.inference.operation.details",
                    **{"gen_ai.input.messages": [{"role": "user", "parts": []}],
                       "gen_ai.system_instructions": "be brief"})
    v = view_from_attributes({"gen_ai.output.messages": '[{"role": "attribute"}]',
                              "gen_ai.input.messages": '[{"role": "attribute"}]'}, [details])
    assert v.input == [{"role": "system", "content": "be brief"}, {"role": "user", "parts": []}]
    assert v.output == [{"role": "attribute"}]


def test_per_message_events_make_the_input_and_a_single_choice_the_output() -> None:
    events = [event("gen_ai.system.message", **{"gen_ai.system": "openai", "content": "sys"}),
              event("gen_ai.user.message", content="hello"),
              event("gen_ai.tool.message", content='{"temp": 21}', id="call_1"),
              event("exception", **{"exception.message": "not content"}),
              event("gen_ai.choice", index=0, finish_reason="stop", message={"role": "assistant", "content": "hi"})]
    v = view_from_attributes({}, events)
    assert v.input == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"},
                       {"role": "tool", "content": {"temp": 21}, "id": "call_1"}]
    assert v.output == {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}
    two = view_from_attributes({}, [event("gen_ai.choice", index=0), event("gen_ai.choice", index=1)])
    assert two.output == [{"index": 0}, {"index": 1}]


def test_whole_prompt_and_completion_events_of_old_semconv_are_read() -> None:
    v = view_from_attributes({}, [event("gen_ai.content.prompt", **{"gen_ai.prompt": '[{"role": "user"}]'}),
                                  event("gen_ai.content.completion", **{"gen_ai.something_else": "done"})])
    assert (v.input, v.output) == ([{"role": "user"}], {"gen_ai.something_else": "done"})


def test_tool_arguments_and_result_are_the_input_and_output_of_a_tool_span() -> None:
    v = view_from_attributes({"gen_ai.operation.name": "execute_tool",
                              "gen_ai.tool.call.arguments": '{"city": "Paris"}', "gen_ai.tool.call.result": "rain"})
    assert (v.input, v.output) == ({"city": "Paris"}, "rain")


def test_vercel_text_and_tool_calls_make_one_assistant_message() -> None:
    v = view_from_attributes({"ai.response.text": "calling", "ai.response.toolCalls": '[{"toolName": "t"}]'},
                             scope_name="ai")
    assert v.output == {"role": "assistant", "content": "calling", "tool_calls": [{"toolName": "t"}]}


def test_google_adk_empty_llm_blobs_give_way_to_the_tool_call() -> None:
    v = view_from_attributes({"gcp.vertex.agent.llm_request": "{}", "gcp.vertex.agent.llm_response": "{}",
                              "gcp.vertex.agent.tool_call_args": '{"q": 1}', "gcp.vertex.agent.tool_response": "ok"})
    assert (v.input, v.output) == ({"q": 1}, "ok")


def test_logfire_events_attribute_splits_into_messages_and_the_choice() -> None:
    events = [{"event.name": "gen_ai.user.message", "content": "hi"},
              {"event.name": "gen_ai.choice", "message": {"role": "assistant", "content": "hello"}}]
    v = view_from_attributes({"events": orjson.dumps(events).decode()})
    assert v.input == [events[0]] and v.output == events[1]


def test_trace_input_and_output_are_their_own() -> None:
    v = view_from_attributes({"langfuse.trace.input": '{"q": 1}', "langfuse.trace.output": "a",
                              "langfuse.observation.input": "own"})
    assert (v.trace_input, v.trace_output, v.input) == ({"q": 1}, "a", "own")


# --- metadata, tags, parameters ----------------------------------------------------------------

def test_trace_metadata_keys_lose_their_prefix_and_stay_flat() -> None:
    v = view_from_attributes({"trace.metadata.openrouter.api_key_name": "prod", "trace.metadata.n": 3})
    assert v.metadata == {"openrouter.api_key_name": "prod", "n": 3}


def test_metadata_of_every_convention_is_merged_and_trace_metadata_wins() -> None:
    v = view_from_attributes({
        "trace.metadata.shared": "trace",
        "langfuse.trace.metadata.shared": "langfuse-trace",
        "langfuse.trace.metadata.lf": "1",
        "langfuse.observation.metadata": '{"obs": {"nested": true}}',
        "langfuse.metadata": '{"blob": "x"}',
        "langfuse.metadata.server": "web-01",
        "ai.telemetry.metadata.topic": "programming",
        "ai.telemetry.metadata.userId": "vercel-user",
        "traceloop.association.properties.tenant": "acme",
        "traceloop.association.properties.user_id": "u1",
        "metadata": '{"experiment": "rag-v2", "shared": "openinference"}',
    })
    assert v.metadata == {"shared": "trace", "lf": "1", "obs": {"nested": True}, "blob": "x", "server": "web-01",
                          "topic": "programming", "tenant": "acme", "experiment": "rag-v2"}
    assert v.user_id == "vercel-user"   # a user id, not metadata (and it outranks Traceloop's)


def test_trace_metadata_may_carry_the_langfuse_tags() -> None:
    assert view_from_attributes({"langfuse.trace.metadata.langfuse_tags": '["z"]'}).tags == ["z"]


def test_metadata_blobs_that_are_not_objects_are_ignored() -> None:
    assert view_from_attributes({"metadata": "[1, 2]", "langfuse.trace.metadata": "text"}).metadata == {}


@pytest.mark.parametrize("raw, tags", [
    ('["b", "a"]', ["b", "a"]), ("solo", ["solo"]), ("2,3,4", ["2", "3", "4"]),
    ("llamaindex, rag, production", ["llamaindex", "rag", "production"]), (["a", 7], ["a", "7"]), ("", None),
])
def test_tags_in_every_form(raw: Any, tags: list[str] | None) -> None:
    assert view_from_attributes({"langfuse.tags": raw}).tags == (tags or [])


def test_tags_come_from_the_first_source_that_has_some() -> None:
    v = view_from_attributes({"langfuse.trace.tags": '["b", "a"]', "tag.tags": ["a", "c", 7],
                              "ai.telemetry.metadata.tags": "x"})
    assert v.tags == ["b", "a"]
    assert view_from_attributes({"langfuse.trace.tags": "", "tag.tags": "x,y"}).tags == ["x", "y"]


def test_explicit_langfuse_model_parameters_win_whole() -> None:
    v = view_from_attributes({
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.2,
        "llm.invocation_parameters": '{"temperature": 0.9, "top_p": 0.5}',
        "langfuse.observation.model.parameters": '{"top_p": 0.1, "max_tokens": 9}',
    })
    assert v.model_parameters == {"top_p": 0.1, "max_tokens": 9}


def test_model_parameters_are_every_request_setting_under_its_own_name() -> None:
    v = view_from_attributes({"gen_ai.request.model": "gpt-4o", "gen_ai.request.temperature": 0.2,
                              "gen_ai.request.stop_sequences": ["END"], "gen_ai.request.service_tier": "flex",
                              "gen_ai.request.stream": True, "llm.invocation_parameters.reasoning_effort": "high"})
    # As Langfuse keeps them: numbers and strings as they are, the rest as JSON.
    assert v.model_parameters == {"temperature": 0.2, "stop_sequences": '["END"]', "service_tier": "flex",
                                  "stream": "true", "reasoning_effort": "high"}
    assert view_from_attributes({"llm.invocation_parameters": '{"temperature": 0.9}',
                                 "gen_ai.request.temperature": 0.2}).model_parameters == {"temperature": 0.9}
    assert view_from_attributes({"model_config": '{"max_tokens": 4096}'}).model_parameters == {"max_tokens": 4096}


def test_vercel_model_parameters_are_langfuses_fixed_set() -> None:
    v = view_from_attributes({"gen_ai.request.temperature": 0.5, "ai.settings.maxRetries": 2,
                              "gen_ai.response.finish_reasons": ["stop"], "gen_ai.request.service_tier": "priority"},
                             scope_name="ai")
    assert v.model_parameters == {"maxSteps": None, "toolChoice": None, "maxTokens": None, "finishReason": "stop",
                                  "system": None, "maxRetries": "2", "mode": None, "temperature": "0.5",
                                  "service_tier": "priority"}


# --- hostile input ------------------------------------------------------------------------------

_SOURCE_KEYS = sorted({key for _, keys in SOURCE_ORDER for key in keys} | {
    "gen_ai.operation.name", "openinference.span.kind", "langfuse.observation.type", "traceloop.span.kind",
    "llm.request.type", "langfuse.observation.usage_details", "langfuse.observation.cost_details",
    "llm.invocation_parameters", "langfuse.trace.tags", "tag.tags", "metadata", "gen_ai.system_instructions",
    "gen_ai.usage.input_cost", "gen_ai.usage.total_tokens", "trace.metadata.x", "gen_ai.request.temperature",
    "gen_ai.prompt.0.tool_calls.0.name", "llm.output_messages.1.message.role", "gen_ai.prompt.name",
    "langfuse.trace.metadata", "traceloop.association.properties.tenant", "ai.response.providerMetadata",
    "ai.operationId", "operation.name", "genkit:output", "genkit:input", "gcp.vertex.agent.llm_response", "events",
    "gen_ai.tool.definitions", "langfuse.observation.level", "langfuse.environment", "ai.response.toolCalls",
    "ai.response.text", "langfuse.tags", "gen_ai.usage.details.x", "langfuse.observation.completion_start_time",
    "ai.response.msToFirstChunk", "model_request_parameters", "mlflow.spanType", "langfuse.observation.model.parameters",
})
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
    | st.sampled_from(["[", "{}", "[]", '"', "1e999", "NaN", "-0", '{"input": "x", "total": "1e999"}']),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_event_values = st.recursive(
    st.booleans() | _int64 | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)
_events = st.lists(st.builds(
    lambda name, attributes: event(name, **attributes),
    st.sampled_from(["gen_ai.client.inference.operation.details", "gen_ai.user.message", "gen_ai.choice",
                     "gen_ai.content.prompt", "exception"]),
    st.dictionaries(st.sampled_from(["gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.prompt",
                                     "gen_ai.system_instructions", "content", "role", "message"]),
                    _event_values, max_size=3)), max_size=3)


@settings(max_examples=300, deadline=None)
@given(attributes=st.dictionaries(st.sampled_from(_SOURCE_KEYS) | st.text(max_size=20), _values, max_size=12),
       events=_events, name=st.text(max_size=20),
       scope=st.sampled_from(["", "ai", "genkit-tracer", "gcp.vertex.agent", "pydantic-ai", "livekit-agents",
                              "langfuse-sdk", "@flue/opentelemetry"]))
def test_hostile_attributes_never_raise_and_the_view_serialises(attributes: dict[str, Any],
                                                                events: list[Span.Event], name: str,
                                                                scope: str) -> None:
    v = view_from_attributes(attributes, events, name, scope_name=scope, scope_version="3.3.0",
                             resource={"telemetry.sdk.language": "python"}, start_unix_nano=2**63)
    assert isinstance(v, GenAIView)
    assert v.type in {"GENERATION", "EMBEDDING", "TOOL", "AGENT", "CHAIN", "RETRIEVER", "EVALUATOR",
                      "GUARDRAIL", "EVENT", "SPAN"}
    for field in ("input_tokens", "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"):
        value = getattr(v, field)
        assert value is None or (type(value) is int and 0 <= value < 2**63), field
    assert v.cost is None or (type(v.cost) is float and math.isfinite(v.cost))
    assert all(type(x) is float and math.isfinite(x) for x in v.cost_details.values())
    assert all(type(t) is str for t in v.tags)
    for field in ("model", "provider", "operation", "user_id", "session_id", "trace_name", "name",
                  "status_message", "completion_start_time"):
        assert getattr(v, field) is None or type(getattr(v, field)) is str, field
    assert v.level in {"DEBUG", "DEFAULT", "WARNING", "ERROR"} and type(v.environment) is str
    assert all(type(n) is int and 0 <= n < 2**63 for n in (v.usage_details or {}).values())
    orjson.dumps(dataclasses.asdict(v))

