"""Specification of the content catalogue for privacy mode (otlp_router.model.content).

Content (prompts, completions, documents, tool payloads) goes; usage, cost, timing,
model, ids and custom metadata stay. The catalogue is the conventions table's: every
source it marks as content. Every prompt, completion and tool-definition text in the GenAI
fixtures carries the marker "SECRET-", so a leak is a substring search.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from otlp_router.model import otlp_json
from otlp_router.model.attributes import value_of
from otlp_router.model.content import (
    CONTENT_EVENTS,
    CONTENT_KEYS,
    CONTENT_PREFIXES,
    NOT_CONTENT_KEYS,
    is_content_key,
)
from otlp_router.model import conventions
from otlp_router.model.genai import view, view_from_attributes
from otlp_router.model.signals import TRACES
from otlp_router.routing.privacy import strip_content as privacy_strip
from tests.test_genai import CONVENTIONS, EXPECTED, carried_cost, fixture_spans, load_fixture, scoped_spans

MARKER = "SECRET-"


def carries_marker(kv: KeyValue) -> bool:
    return MARKER in orjson.dumps(value_of(kv.value), default=repr).decode()


def strip_content(request: ExportTraceServiceRequest) -> None:
    """What privacy mode does to a request, in place, as far as this catalogue decides it."""
    for _, span in fixture_spans(request):
        kept = [kv for kv in span.attributes if not is_content_key(kv.key)]
        del span.attributes[:]
        span.attributes.extend(kept)
        events = [e for e in span.events if e.name not in CONTENT_EVENTS]
        for e in events:
            kept = [kv for kv in e.attributes if not is_content_key(kv.key)]
            del e.attributes[:]
            e.attributes.extend(kept)
        del span.events[:]
        span.events.extend(events)


# --- the catalogue against the design ------------------------------------------------------------

DESIGN_CONTENT_KEYS = [
    # The design's input / output row, all five conventions.
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.prompt", "gen_ai.completion",
    "gen_ai.prompt.0.content", "gen_ai.prompt.3.role", "gen_ai.completion.0.content",
    "gen_ai.completion.0.tool_calls.0.arguments",
    "input.value", "output.value",
    "llm.input_messages.0.message.content", "llm.output_messages.1.message.tool_calls.0.tool_call.function.arguments",
    "traceloop.entity.input", "traceloop.entity.output",
    "langfuse.observation.input", "langfuse.observation.output",
    # The design's privacy paragraph.
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.tool.definitions",
    "gen_ai.retrieval.query.text", "gen_ai.retrieval.documents",
    "llm.prompts", "llm.prompts.0.content", "llm.choices", "llm.choices.0.message.content",
    "llm.prompt_template.template", "llm.prompt_template.variables",
    "trace.input", "trace.output", "span.input", "span.output",
    "langfuse.trace.input", "langfuse.trace.output",
    # Documents, embeddings, tool definitions, templates and memory of the conventions.
    "retrieval.documents.0.document.content", "embedding.embeddings.0.embedding.text",
    "embedding.embeddings.0.embedding.vector", "reranker.query", "reranker.input_documents.0.document.content",
    "reranker.output_documents.0.document.content", "tool.parameters", "llm.tools.0.tool.json_schema",
    "llm.request.functions.0.description", "llm.completions.0.content", "traceloop.prompt.template",
    "gen_ai.memory.records", "gen_ai.memory.query.text", "llm.input_messages", "llm.output_messages",
    # Issue 15's conventions: Vercel AI SDK, Google ADK, LiveKit, MLflow, Pydantic AI / Logfire, Genkit, Flue.
    "ai.prompt.messages", "ai.prompt", "ai.prompt.tools", "ai.toolCall.args", "ai.toolCall.result", "ai.response.text",
    "ai.response.toolCalls", "ai.response.object", "ai.value", "ai.values", "gcp.vertex.agent.llm_request",
    "gcp.vertex.agent.llm_response", "gcp.vertex.agent.tool_call_args", "gcp.vertex.agent.tool_response",
    "lk.input_text", "lk.user_transcript", "lk.chat_ctx", "lk.response.text", "lk.function_tool.output",
    "mlflow.spanInputs", "mlflow.spanOutputs", "prompt", "all_messages_events", "events", "input", "output",
    "pydantic_ai.all_messages", "final_result", "tool_arguments", "tool_response", "model_request_parameters",
    "request_data", "response_data", "genkit:input", "genkit:output", "flue.turn.input", "flue.turn.output",
    "flue.tool.arguments", "flue.tool.result", "flue.task.prompt", "flue.task.result", "flue.workflow.payload",
    "flue.workflow.result", "flue.operation.result", "system_prompt",
]

DESIGN_CONTENT_EVENTS = [
    "gen_ai.client.inference.operation.details", "gen_ai.user.message", "gen_ai.system.message",
    "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice",
]

KEPT_KEYS = [
    # usage
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.total_tokens",
    "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens",
    "gen_ai.usage.input_tokens.cached", "gen_ai.usage.output_tokens.reasoning",
    "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.cache_read_input_tokens", "llm.usage.total_tokens",
    "llm.token_count.prompt", "llm.token_count.completion", "llm.token_count.total",
    "llm.token_count.prompt_details.cache_read", "llm.token_count.completion_details.reasoning",
    "langfuse.observation.usage_details",
    # cost
    "gen_ai.usage.cost", "gen_ai.usage.total_cost", "gen_ai.usage.input_cost", "gen_ai.usage.output_cost",
    "llm.cost.total", "llm.cost.prompt", "llm.cost.completion", "langfuse.observation.cost_details",
    # model, provider, kind, parameters
    "gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "embedding.model_name",
    "reranker.model_name", "langfuse.observation.model.name", "gen_ai.provider.name", "gen_ai.system",
    "llm.provider", "llm.system", "gen_ai.operation.name", "openinference.span.kind",
    "langfuse.observation.type", "traceloop.span.kind", "llm.request.type", "gen_ai.request.temperature",
    "gen_ai.request.max_tokens", "llm.invocation_parameters", "langfuse.observation.model.parameters",
    "gen_ai.response.finish_reasons", "input.mime_type", "output.mime_type",
    # ids and names
    "gen_ai.response.id", "gen_ai.tool.call.id", "gen_ai.tool.name", "tool.name", "gen_ai.agent.name",
    "gen_ai.conversation.id", "gen_ai.prompt.name", "langfuse.observation.prompt.name",
    "traceloop.entity.name", "traceloop.workflow.name", "langfuse.trace.name",
    "user.id", "session.id", "langfuse.user.id", "langfuse.session.id",
    "traceloop.association.properties.user_id", "traceloop.association.properties.session_id",
    # custom metadata and tags
    "trace.metadata.document_type", "trace.metadata.openrouter.api_key_name",
    "langfuse.trace.metadata.ticket_id", "langfuse.observation.metadata.step", "langfuse.trace.tags",
    "traceloop.association.properties.tenant", "metadata", "tag.tags",
    # Issue 15's conventions.
    "ai.model.id", "ai.model.provider", "ai.operationId", "operation.name", "ai.telemetry.functionId",
    "ai.telemetry.metadata.userId", "ai.telemetry.metadata.topic", "ai.usage.tokens", "ai.response.providerMetadata",
    "ai.toolCall.name", "ai.toolCall.id", "genkit:name", "genkit:metadata:subtype", "flue.tool.name", "flue.task.id",
    "logfire.msg", "model", "model_config", "mlflow.spanType", "mlflow.chat.tokenUsage", "langfuse.metadata",
    "langfuse.environment", "langfuse.observation.level", "deployment.environment.name", "langfuse.tags",
    "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.details.input_audio_tokens",
    "llm.token_count.completion_details.audio", "gcp.vertex.agent.invocation_id",
]


@pytest.mark.parametrize("key", DESIGN_CONTENT_KEYS)
def test_design_content_keys_are_content(key: str) -> None:
    assert is_content_key(key)


@pytest.mark.parametrize("name", DESIGN_CONTENT_EVENTS)
def test_design_content_events_are_content_events(name: str) -> None:
    assert name in CONTENT_EVENTS


@pytest.mark.parametrize("key", KEPT_KEYS)
def test_usage_cost_model_ids_and_metadata_are_not_content(key: str) -> None:
    assert not is_content_key(key)


def test_unknown_keys_under_a_content_prefix_are_content() -> None:
    # Fail closed: a convention's new field next to messages is presumed to hold text.
    for key in ("gen_ai.completion.future_field", "llm.input_messages.0.message.new_part", "llm.tools.1.x"):
        assert is_content_key(key), key


def test_near_misses_of_content_keys_are_not_content() -> None:
    for key in ("gen_ai.prompt_tokens", "gen_ai.promptx", "gen_ai.completion_tokens", "input.values",
                "llm.input", "prompts", "outputs", "ai.response.model"):
        assert not is_content_key(key), key


def test_the_catalogue_holds_together() -> None:
    assert not CONTENT_KEYS & NOT_CONTENT_KEYS
    assert all(key.startswith(CONTENT_PREFIXES) for key in NOT_CONTENT_KEYS), "exceptions only under prefixes"
    assert not [key for key in CONTENT_KEYS if key.startswith(CONTENT_PREFIXES)], "exact keys a prefix covers"


@pytest.mark.parametrize("key", [
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.prompt",
    "gen_ai.completion", "gen_ai.prompt.0.content", "gen_ai.completion.0.content", "input.value", "output.value",
    "llm.input_messages.0.message.content", "llm.output_messages.0.message.content", "traceloop.entity.input",
    "traceloop.entity.output", "langfuse.observation.input", "langfuse.observation.output",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.documents",
])
def test_every_attribute_the_genai_view_reads_as_content_is_a_content_key(key: str) -> None:
    v = view_from_attributes({key: "text"})
    assert (v.input, v.output) != (None, None), "the view reads it"
    assert is_content_key(key)


def test_every_source_of_input_output_and_tools_in_the_table_is_content() -> None:
    # One list: a convention cannot feed content to the view and escape privacy.
    table = conventions.active()
    for source in table.sources:
        if source.field in conventions.CONTENT_FIELDS:
            assert source.content, (source.convention, source.field, source.key or source.prefix or source.events)
            for key in ([source.key] if source.key else []):
                assert is_content_key(key), key
            if source.prefix:
                assert is_content_key(source.prefix + "0.content"), source.prefix
            for name in source.events:
                assert name in CONTENT_EVENTS, name


# --- the catalogue against the fixtures ----------------------------------------------------------

@pytest.mark.parametrize("file", CONVENTIONS)
def test_every_fixture_attribute_holding_content_is_a_content_key(file: str) -> None:
    missed = []
    for _, span in fixture_spans(load_fixture(file)):
        missed += [f"{span.name}: {kv.key}" for kv in span.attributes
                   if carries_marker(kv) and not is_content_key(kv.key)]
        missed += [f"{span.name} / event {e.name}: {kv.key}" for e in span.events if e.name not in CONTENT_EVENTS
                   for kv in e.attributes if carries_marker(kv) and not is_content_key(kv.key)]
    assert not missed


@pytest.mark.parametrize("file", CONVENTIONS)
def test_stripping_content_leaves_no_content_in_protobuf_or_otlp_json(file: str) -> None:
    request = load_fixture(file)
    assert MARKER.encode() in request.SerializeToString(), "the fixture carries content"
    strip_content(request)
    assert MARKER.encode() not in request.SerializeToString()
    assert MARKER.encode() not in otlp_json.encode(request)


STRIPPED_CASES = [pytest.param(file, span_name, expected, id=f"{file}:{span_name}")
                  for file, spans in EXPECTED.items() for span_name, expected in spans.items()]


@pytest.mark.parametrize("file, span_name, expected", STRIPPED_CASES)
def test_stripping_content_keeps_model_usage_cost_ids_and_metadata(file: str, span_name: str,
                                                                   expected: dict[str, Any]) -> None:
    request = load_fixture(file)
    privacy_strip(request, TRACES)   # privacy as a destination does it: the model-call rule and the salvage too
    [(resource, span, scope)] = [(r, s, sc) for r, s, sc in scoped_spans(request) if s.name == span_name]
    v = view(span, resource, scope.name, scope.version)
    for field in ("type", "model", "provider", "input_tokens", "output_tokens", "total_tokens", "cached_tokens",
                  "reasoning_tokens", "user_id", "session_id", "trace_name", "tags", "metadata",
                  "model_parameters", "is_genai", "usage_details"):
        if field in expected:
            assert getattr(v, field) == expected[field], field
    if "cost" in expected:
        assert carried_cost(v)[0] == pytest.approx(expected["cost"])
    assert (v.input, v.output) == (None, None)
