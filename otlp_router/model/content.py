"""Which span attributes and events carry content (prompts, completions, documents, tool I/O).

Privacy mode removes these and keeps everything else: usage, cost, timing, model,
ids, custom metadata. The catalogue covers the five conventions the router reads
(OTel GenAI current and older, as sent by OpenRouter; OpenInference; OpenLLMetry;
Langfuse) plus the generic trace/span input/output keys.

Fail closed where conventions leave room: an unknown key under a content prefix
is content. The few keys under those prefixes known to be names rather than text
are listed in NOT_CONTENT_KEYS, so use `is_content_key`, not the prefixes alone.
"""

from __future__ import annotations

CONTENT_KEYS: frozenset[str] = frozenset((
    # OTel GenAI semconv (current): messages, instructions, tool and retrieval payloads.
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.documents",
    "gen_ai.memory.query.text",
    "gen_ai.memory.records",
    # An evaluator's free-form explanation routinely quotes the text it judged.
    "gen_ai.evaluation.explanation",
    # Older semconv and OpenRouter Broadcast: whole prompt / completion in one attribute
    # (OpenRouter's completion may embed the raw request, so it goes whole).
    "gen_ai.prompt",
    "gen_ai.completion",
    # Streaming chunks as OpenLLMetry records them.
    "gen_ai.content.completion.chunk",
    "llm.content.completion.chunk",
    # OpenInference; the message and tool lists also as one JSON attribute, as some SDKs send them.
    "input.value",
    "output.value",
    "llm.input_messages",
    "llm.output_messages",
    "llm.tools",
    "reranker.query",
    # A tool's JSON schema is a tool definition (cf. gen_ai.tool.definitions).
    "tool.parameters",
    # OpenInference's legacy function-call payload.
    "llm.function_call",
    # OpenLLMetry.
    "traceloop.entity.input",
    "traceloop.entity.output",
    "traceloop.prompt.template",
    "traceloop.prompt.template_variables",
    # Langfuse.
    "langfuse.observation.input",
    "langfuse.observation.output",
    "langfuse.trace.input",
    "langfuse.trace.output",
    # Generic trace / span I/O used by several SDKs.
    "trace.input",
    "trace.output",
    "span.input",
    "span.output",
))

CONTENT_PREFIXES: tuple[str, ...] = (
    # OpenLLMetry indexed messages: gen_ai.prompt.0.content, gen_ai.completion.0.tool_calls.0.arguments.
    "gen_ai.prompt.",
    "gen_ai.completion.",
    # OpenInference messages, tools, templates, documents, embeddings (an embedding vector
    # can be inverted back to its text, so vectors go with the text).
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.tools.",
    "llm.prompt_template.",
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
    "embedding.embeddings.",
    # No dot: both the list forms (llm.prompts) and the indexed ones (llm.prompts.0.content).
    "llm.prompts",
    "llm.choices",
    "llm.completions",
    # OpenLLMetry tool definitions: llm.request.functions.0.name / .description / .parameters.
    "llm.request.functions.",
)

# Keys under a content prefix that name or identify content without carrying it.
NOT_CONTENT_KEYS: frozenset[str] = frozenset((
    "gen_ai.prompt.name",   # OTel GenAI semconv: the prompt's identifier
))

CONTENT_EVENTS: frozenset[str] = frozenset((
    "gen_ai.client.inference.operation.details",
    # Per-message events of semconv ≤ 1.36.
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    # Whole prompt / completion events of semconv ≤ 1.26.
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
))


def is_content_key(key: str) -> bool:
    """True when the attribute `key` carries prompt / completion / document / tool content."""
    if key in CONTENT_KEYS:
        return True
    return key.startswith(CONTENT_PREFIXES) and key not in NOT_CONTENT_KEYS
