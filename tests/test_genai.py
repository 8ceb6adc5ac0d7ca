"""Specification of the canonical GenAI view of a span (otlp_router.model.genai).

The fixtures in tests/fixtures/genai are realistic traces of the five conventions
as OTLP JSON export requests; expected.json holds, per file and span name, the
values the view must read from them. The rule tests below pin the source order
of every field (the design's table), the type mapping, and leniency.
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
CONVENTIONS = ("openrouter.json", "otel_genai.json", "openinference.json", "openllmetry.json", "langfuse.json")
EXPECTED: dict[str, dict[str, dict[str, Any]]] = orjson.loads((FIXTURES / "expected.json").read_bytes())


def load_fixture(name: str) -> ExportTraceServiceRequest:
    return otlp_json.decode(ExportTraceServiceRequest, (FIXTURES / name).read_bytes())


def fixture_spans(request: ExportTraceServiceRequest) -> Iterator[tuple[dict[str, Any], Span]]:
    """(resource attributes, span) for every span of a request."""
    for resource_spans in request.resource_spans:
        resource = to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield resource, span


def span_named(name: str, span_name: str) -> tuple[dict[str, Any], Span]:
    matches = [(r, s) for r, s in fixture_spans(load_fixture(name)) if s.name == span_name]
    assert len(matches) == 1, f"{name}: {len(matches)} spans named {span_name!r}"
    return matches[0]


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


@pytest.mark.parametrize("file, span_name, expected", EXPECTED_CASES)
def test_fixture_span_reads_as_expected(file: str, span_name: str, expected: dict[str, Any]) -> None:
    resource, span = span_named(file, span_name)
    v = view(span, resource)
    for field in ("type", "operation", "model", "provider", "input_tokens", "output_tokens", "total_tokens",
                  "cached_tokens", "reasoning_tokens", "user_id", "session_id", "trace_name", "tags",
                  "metadata", "model_parameters", "is_genai"):
        if field in expected:
            assert getattr(v, field) == expected[field], field
    assert v.cost == pytest.approx(expected["cost"]), "cost"
    if "cost_details" in expected:
        assert v.cost_details == pytest.approx(expected["cost_details"]), "cost_details"
    for field in ("input", "output"):
        snippet = expected[f"{field}_contains"]
        value = getattr(v, field)
        if snippet is None:
            assert value is None, field
        else:
            assert snippet in text_of(value), field


@pytest.mark.parametrize("file", CONVENTIONS)
def test_views_of_fixture_spans_serialise_as_json(file: str) -> None:
    for resource, span in fixture_spans(load_fixture(file)):
        orjson.dumps(dataclasses.asdict(view(span, resource)))


def test_view_reads_the_span_attributes_events_and_name() -> None:
    _, span = span_named("otel_genai.json", "chat gpt-5")
    assert view(span) == view_from_attributes(to_dict(span.attributes), span.events, span.name)


def test_resource_attributes_fill_what_the_span_lacks_and_the_span_wins() -> None:
    span = Span(name="call")
    set_value(span.attributes.add(key="gen_ai.request.model").value, "span-model")
    v = view(span, {"gen_ai.request.model": "resource-model", "user.id": "resource-user"})
    assert (v.model, v.user_id) == ("span-model", "resource-user")


# --- source order: the design's table, current OTel names first ---------------------------------

SOURCE_ORDER = [
    ("model", ["gen_ai.response.model", "gen_ai.request.model", "llm.model_name",
               "langfuse.observation.model.name"]),
    ("provider", ["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"]),
    ("input_tokens", ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"]),
    ("output_tokens", ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                       "llm.token_count.completion"]),
    ("cached_tokens", ["gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.input_tokens.cached",
                       "llm.token_count.prompt_details.cache_read"]),
    ("reasoning_tokens", ["gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.output_tokens.reasoning",
                          "llm.token_count.completion_details.reasoning"]),
    ("cost", ["gen_ai.usage.cost", "gen_ai.usage.total_cost", "llm.cost.total"]),
    ("user_id", ["user.id", "langfuse.user.id", "traceloop.association.properties.user_id"]),
    ("session_id", ["session.id", "gen_ai.conversation.id", "langfuse.session.id",
                    "traceloop.association.properties.session_id"]),
    ("trace_name", ["trace.name", "langfuse.trace.name", "trace_name"]),
    ("input", ["gen_ai.input.messages", "gen_ai.prompt", "gen_ai.prompt.0.content", "input.value",
               "llm.input_messages.0.message.content", "traceloop.entity.input", "langfuse.observation.input"]),
    ("output", ["gen_ai.output.messages", "gen_ai.completion", "gen_ai.completion.0.content", "output.value",
                "llm.output_messages.0.message.content", "traceloop.entity.output",
                "langfuse.observation.output"]),
]


def _sample(field: str, rank: int) -> Any:
    if field.endswith("_tokens"):
        return 100 + rank
    if field == "cost":
        return 0.5 + rank
    return f"value-{rank}"


@pytest.mark.parametrize("field, keys", [pytest.param(f, k, id=f) for f, k in SOURCE_ORDER])
def test_each_field_takes_the_first_source_of_the_design_table(field: str, keys: list[str]) -> None:
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


def test_cost_is_the_given_total_else_input_plus_output_cost() -> None:
    v = view_from_attributes({"gen_ai.usage.input_cost": 0.25, "gen_ai.usage.output_cost": 0.5})
    assert v.cost == 0.75
    assert v.cost_details == {"input": 0.25, "output": 0.5, "total": 0.75}
    v = view_from_attributes({"llm.cost.prompt": 0.25})
    assert (v.cost, v.cost_details) == (None, {"input": 0.25})


def test_langfuse_usage_and_cost_details_rank_after_every_attribute_of_the_table() -> None:
    v = view_from_attributes({
        "gen_ai.usage.input_tokens": 7,
        "langfuse.observation.usage_details": '{"input": 9, "output": 2, "input_cached_tokens": 1}',
        "llm.cost.total": 0.5,
        "langfuse.observation.cost_details": {"total": 0.9, "input": 0.1, "cache_read_input_tokens": 0.01},
    })
    assert (v.input_tokens, v.output_tokens, v.cached_tokens, v.cost) == (7, 2, 1, 0.5)
    assert v.cost_details == {"input": 0.1, "total": 0.5, "cache_read_input_tokens": 0.01}


# --- type and operation -------------------------------------------------------------------------

@pytest.mark.parametrize("attributes, type_", [
    ({"gen_ai.operation.name": "chat"}, "GENERATION"),
    ({"gen_ai.operation.name": "text_completion"}, "GENERATION"),
    ({"gen_ai.operation.name": "generate_content"}, "GENERATION"),
    ({"gen_ai.operation.name": "embeddings"}, "EMBEDDING"),
    ({"gen_ai.operation.name": "execute_tool"}, "TOOL"),
    ({"gen_ai.operation.name": "invoke_agent"}, "AGENT"),
    ({"gen_ai.operation.name": "create_agent"}, "AGENT"),
    ({"openinference.span.kind": "LLM"}, "GENERATION"),
    ({"openinference.span.kind": "EMBEDDING"}, "EMBEDDING"),
    ({"openinference.span.kind": "TOOL"}, "TOOL"),
    ({"openinference.span.kind": "AGENT"}, "AGENT"),
    ({"openinference.span.kind": "CHAIN"}, "CHAIN"),
    ({"openinference.span.kind": "RETRIEVER"}, "RETRIEVER"),
    ({"openinference.span.kind": "RERANKER"}, "SPAN"),
    ({"openinference.span.kind": "GUARDRAIL"}, "GUARDRAIL"),
    ({"openinference.span.kind": "EVALUATOR"}, "EVALUATOR"),
    *(({"langfuse.observation.type": t.lower()}, t) for t in (
        "GENERATION", "EMBEDDING", "TOOL", "AGENT", "CHAIN", "RETRIEVER", "EVALUATOR", "GUARDRAIL", "EVENT", "SPAN")),
    ({"traceloop.span.kind": "workflow"}, "CHAIN"),
    ({"traceloop.span.kind": "task"}, "SPAN"),
    ({"traceloop.span.kind": "agent"}, "AGENT"),
    ({"traceloop.span.kind": "tool"}, "TOOL"),
    ({"gen_ai.request.model": "gpt-4o"}, "GENERATION"),
    ({"llm.token_count.prompt": 12}, "GENERATION"),
    ({"http.request.method": "GET"}, "SPAN"),
    ({}, "SPAN"),
], ids=repr)
def test_type_maps_operation_kind_and_observation_type(attributes: dict[str, Any], type_: str) -> None:
    assert view_from_attributes(attributes).type == type_


def test_type_sources_in_order_operation_openinference_langfuse_traceloop_and_unknown_values_fall_through() -> None:
    every = {"gen_ai.operation.name": "execute_tool", "openinference.span.kind": "AGENT",
             "langfuse.observation.type": "retriever", "traceloop.span.kind": "workflow"}
    order = ["TOOL", "AGENT", "RETRIEVER", "CHAIN"]
    keys = list(every)
    for first in range(len(keys)):
        attributes = {k: ("unheard-of" if i < first else every[k]) for i, k in enumerate(keys)}
        assert view_from_attributes(attributes).type == order[first]


def test_operation_comes_from_gen_ai_operation_name_or_traceloop_request_type() -> None:
    assert view_from_attributes({"gen_ai.operation.name": "Chat"}).operation == "chat"
    assert view_from_attributes({"llm.request.type": "completion"}).operation == "text_completion"
    assert view_from_attributes({"llm.request.type": "embedding"}).type == "EMBEDDING"


def test_operation_comes_from_the_semconv_span_name_only_on_genai_spans() -> None:
    assert view_from_attributes({"gen_ai.system": "openai"}, name="chat gpt-4o").operation == "chat"
    assert view_from_attributes({}, name="chat room").operation is None


def test_only_model_calls_are_genai_not_the_agents_tools_or_chains_around_them() -> None:
    assert view_from_attributes({"gen_ai.operation.name": "chat"}).is_genai
    assert view_from_attributes({"openinference.span.kind": "EMBEDDING"}).is_genai
    assert view_from_attributes({"gen_ai.usage.input_tokens": 3}).is_genai
    assert not view_from_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "m",
                                     "gen_ai.usage.input_tokens": 900}).is_genai
    assert not view_from_attributes({"traceloop.span.kind": "workflow"}).is_genai
    assert not view_from_attributes({"http.request.method": "GET"}).is_genai


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


def test_openinference_messages_lose_their_message_wrapper() -> None:
    v = view_from_attributes({"llm.input_messages.0.message.role": "user",
                              "llm.input_messages.0.message.content": "hi"})
    assert v.input == [{"role": "user", "content": "hi"}]


def test_keys_under_a_message_prefix_without_an_index_are_not_messages() -> None:
    assert view_from_attributes({"gen_ai.prompt.name": "analyze-code"}).input is None
    assert view_from_attributes({"gen_ai.prompt.0." + "a." * 50 + "b": "deep"}).input is None


def test_system_instructions_become_the_first_message() -> None:
    instructions = [{"type": "text", "content": "be brief"}]
    v = view_from_attributes({"gen_ai.system_instructions": orjson.dumps(instructions).decode(),
                              "gen_ai.input.messages": '[{"role": "user", "parts": []}]'})
    assert v.input == [{"role": "system", "parts": instructions}, {"role": "user", "parts": []}]
    v = view_from_attributes({"gen_ai.system_instructions": "be brief"})
    assert v.input == [{"role": "system", "parts": instructions}]


def test_the_details_event_supplies_content_the_attributes_lack() -> None:
    details = event("gen_ai.client.inference.operation.details",
                    **{"gen_ai.input.messages": [{"role": "user", "parts": []}],
                       "gen_ai.output.messages": [{"role": "assistant", "parts": []}]})
    v = view_from_attributes({"gen_ai.output.messages": '[{"role": "attribute"}]'}, [details])
    assert v.input == [{"role": "user", "parts": []}]
    assert v.output == [{"role": "attribute"}]


def test_per_message_events_make_the_input_and_choices_the_output() -> None:
    events = [event("gen_ai.system.message", **{"gen_ai.system": "openai", "content": "sys"}),
              event("gen_ai.user.message", content="hello"),
              event("gen_ai.tool.message", content='{"temp": 21}', id="call_1"),
              event("exception", **{"exception.message": "not content"}),
              event("gen_ai.choice", index=0, finish_reason="stop", message={"role": "assistant", "content": "hi"})]
    v = view_from_attributes({}, events)
    assert v.input == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"},
                       {"role": "tool", "content": {"temp": 21}, "id": "call_1"}]
    assert v.output == [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}]


def test_whole_prompt_and_completion_events_of_old_semconv_are_read() -> None:
    v = view_from_attributes({}, [event("gen_ai.content.prompt", **{"gen_ai.prompt": '[{"role": "user"}]'}),
                                  event("gen_ai.content.completion", **{"gen_ai.completion": "done"})])
    assert (v.input, v.output) == ([{"role": "user"}], "done")


def test_tool_arguments_and_result_are_the_input_and_output_of_a_tool_span() -> None:
    v = view_from_attributes({"gen_ai.operation.name": "execute_tool",
                              "gen_ai.tool.call.arguments": '{"city": "Paris"}', "gen_ai.tool.call.result": "rain"})
    assert (v.input, v.output) == ({"city": "Paris"}, "rain")


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
        "traceloop.association.properties.tenant": "acme",
        "traceloop.association.properties.user_id": "u1",
        "metadata": '{"experiment": "rag-v2", "shared": "openinference"}',
    })
    assert v.metadata == {"shared": "trace", "lf": "1", "obs": {"nested": True}, "tenant": "acme",
                          "experiment": "rag-v2"}
    assert v.user_id == "u1"


def test_metadata_blobs_that_are_not_objects_are_ignored() -> None:
    assert view_from_attributes({"metadata": "[1, 2]", "langfuse.trace.metadata": "text"}).metadata == {}


def test_tags_come_from_langfuse_and_openinference_in_order_without_repeats() -> None:
    v = view_from_attributes({"langfuse.trace.tags": '["b", "a"]', "tag.tags": ["a", "c", 7]})
    assert v.tags == ["b", "a", "c", "7"]
    assert view_from_attributes({"langfuse.trace.tags": "solo"}).tags == ["solo"]


def test_model_parameters_come_from_request_settings_over_invocation_parameters() -> None:
    v = view_from_attributes({
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.stop_sequences": ["END"],
        "llm.invocation_parameters": '{"temperature": 0.9, "top_p": 0.5}',
        "langfuse.observation.model.parameters": '{"top_p": 0.1, "max_tokens": 9}',
    })
    assert v.model_parameters == {"temperature": 0.2, "stop": ["END"], "top_p": 0.5, "max_tokens": 9}


# --- hostile input ------------------------------------------------------------------------------

_SOURCE_KEYS = sorted({key for _, keys in SOURCE_ORDER for key in keys} | {
    "gen_ai.operation.name", "openinference.span.kind", "langfuse.observation.type", "traceloop.span.kind",
    "llm.request.type", "langfuse.observation.usage_details", "langfuse.observation.cost_details",
    "llm.invocation_parameters", "langfuse.trace.tags", "tag.tags", "metadata", "gen_ai.system_instructions",
    "gen_ai.usage.input_cost", "gen_ai.usage.total_tokens", "trace.metadata.x", "gen_ai.request.temperature",
    "gen_ai.prompt.0.tool_calls.0.name", "llm.output_messages.1.message.role", "gen_ai.prompt.name",
    "langfuse.trace.metadata", "traceloop.association.properties.tenant",
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
       events=_events, name=st.text(max_size=20))
def test_hostile_attributes_never_raise_and_the_view_serialises(attributes: dict[str, Any],
                                                                events: list[Span.Event], name: str) -> None:
    v = view_from_attributes(attributes, events, name)
    assert isinstance(v, GenAIView)
    assert v.type in {"GENERATION", "EMBEDDING", "TOOL", "AGENT", "CHAIN", "RETRIEVER", "EVALUATOR",
                      "GUARDRAIL", "EVENT", "SPAN"}
    for field in ("input_tokens", "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"):
        value = getattr(v, field)
        assert value is None or (type(value) is int and 0 <= value < 2**63), field
    assert v.cost is None or (type(v.cost) is float and math.isfinite(v.cost))
    assert all(type(x) is float and math.isfinite(x) for x in v.cost_details.values())
    assert all(type(t) is str for t in v.tags)
    for field in ("model", "provider", "operation", "user_id", "session_id", "trace_name"):
        assert getattr(v, field) is None or type(getattr(v, field)) is str, field
    orjson.dumps(dataclasses.asdict(v))

