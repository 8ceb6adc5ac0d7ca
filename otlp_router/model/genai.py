"""The canonical GenAI view of one span, whatever convention produced it.

Five conventions describe LLM calls in span attributes: the current OTel GenAI
semantic conventions, their older releases (as sent by OpenRouter Broadcast),
OpenInference, OpenLLMetry (Traceloop) and Langfuse. `view` reads any mix of
them into one `GenAIView`, taking for every field the first source of the
design's table ("Conventions the router understands") that holds a usable
value; sources the table does not list come after the ones it does.

Called per span on the storage path: one pass over the attribute dict with
dict lookups (and one `str.startswith(tuple)` for keys that miss), then
per-field picks among the few candidates found. Pure: no I/O, never raises on
odd values (unusable → None), and what it returns serialises as JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otlp_router.model.attributes import to_dict


@dataclass(slots=True)
class GenAIView:
    """One span as a Langfuse-style observation. `type` is a Langfuse observation type
    (GENERATION, EMBEDDING, TOOL, AGENT, CHAIN, RETRIEVER, EVALUATOR, GUARDRAIL, EVENT, SPAN);
    `is_genai` marks model calls (GENERATION, EMBEDDING), not the agents, tools and chains
    around them, so per-call records (Aperture) are not counted twice."""

    type: str
    operation: str | None            # gen_ai.operation.name style: chat, embeddings, execute_tool, ...
    model: str | None
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None         # given, else input + output when both are known
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost: float | None               # USD total: given, else input + output cost when both are known
    cost_details: dict[str, float]   # USD "input" / "output" / "total" as far as known, plus Langfuse's keys
    model_parameters: dict[str, Any] # temperature, max_tokens, top_p, ...
    input: Any                       # messages list / string / dict, JSON strings parsed; None if absent
    output: Any
    user_id: str | None
    session_id: str | None
    trace_name: str | None
    tags: list[str]
    metadata: dict[str, Any]         # custom metadata: trace.metadata.* and equivalents, without prefix
    is_genai: bool


def view(span: Span, resource_attributes: dict[str, Any] | None = None) -> GenAIView:
    """The GenAI view of a span; resource attributes fill what the span's own lack."""
    attributes = to_dict(span.attributes)
    if resource_attributes:
        attributes = {**resource_attributes, **attributes}
    return view_from_attributes(attributes, span.events, span.name)


# --- value readers: lenient, None when unusable -------------------------------------------

_INT64_MAX = 2**63 - 1   # what every destination (JSON engines, CBOR readers) holds as an integer


def _count(value: Any) -> int | None:
    """A token count: int, or float / string holding one; negative or absurd → None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _INT64_MAX else None
    if isinstance(value, float):
        return _count(int(value)) if value.is_integer() else None   # is_integer() is False for nan / inf
    if isinstance(value, str):
        try:
            return _count(int(value))
        except ValueError:      # also raised past int's digit limit
            try:
                return _count(float(value))
            except ValueError:
                return None
    return None


def _usd(value: Any) -> float | None:
    """An amount: finite float from a number or a string holding one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, str)):
        try:
            amount = float(value)
        except (ValueError, OverflowError):
            return None
        return amount if amount - amount == 0 else None   # rejects nan and ±inf
    return None


def _text(value: Any) -> str | None:
    """An identifier or name: non-empty string (integers accepted, as ids often are)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


_MAX_DEPTH = 200   # below orjson's serialisation limit (254), so a view always serialises
_ORJSON_MAX_DEPTH = 254   # the deepest nesting orjson.dumps writes


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-serialisable copy of an attribute value (structured AnyValues may hold bytes)."""
    if isinstance(value, str) or value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else str(value)
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        # Base64, as the GenAI semconv's JSON form carries blob parts.
        return base64.b64encode(value).decode("ascii")
    return None


def _content(value: Any) -> Any:
    """Prompt / completion content: JSON strings (object, array, string literal) parsed."""
    if isinstance(value, str):
        if not value:
            return None
        if value.lstrip()[:1] in ('{', '[', '"'):
            try:
                parsed = orjson.loads(value)
                # JSON nested deeper than _MAX_DEPTH stays a string, as deep structured values end at
                # _MAX_DEPTH in _plain: then a document or record holding the view (a few levels
                # more) still serialises.  Wrapped in the levels above _MAX_DEPTH, deeper nesting
                # passes orjson's limit and fails here.
                probe = parsed
                for _ in range(_ORJSON_MAX_DEPTH - _MAX_DEPTH):
                    probe = [probe]
                orjson.dumps(probe)
                return parsed
            except (orjson.JSONDecodeError, orjson.JSONEncodeError):
                return value
        return value
    return _plain(value)


def _mapping(value: Any) -> dict[str, Any] | None:
    """A dict given structured or as a JSON string (Langfuse and OpenInference serialise them)."""
    parsed = _content(value)
    return parsed if isinstance(parsed, dict) else None


# --- the sources -----------------------------------------------------------------------------

# Per field, the attribute keys that feed it, best first: the design's table, then
# conventions it does not list. Message families (gen_ai.prompt.N.*, llm.input_messages.N.*)
# and events join the input / output candidates with the ranks given further down.
_SOURCES_BY_FIELD: dict[str, tuple[str, ...]] = {
    "model": ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name",
              "langfuse.observation.model.name", "embedding.model_name"),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
    "operation": ("gen_ai.operation.name",),
    "llm_request_type": ("llm.request.type",),            # Traceloop's operation
    "openinference_kind": ("openinference.span.kind",),
    "langfuse_type": ("langfuse.observation.type",),
    "traceloop_kind": ("traceloop.span.kind",),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                     "llm.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.token_count.completion", "llm.usage.completion_tokens"),
    "total_tokens": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total"),
    "cached_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.input_tokens.cached",
                      "llm.token_count.prompt_details.cache_read",
                      "gen_ai.usage.cache_read_input_tokens", "llm.usage.cache_read_input_tokens"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.output_tokens.reasoning",
                         "llm.token_count.completion_details.reasoning",
                         "gen_ai.usage.reasoning_tokens", "llm.usage.reasoning_tokens"),
    "cost": ("gen_ai.usage.cost", "gen_ai.usage.total_cost", "llm.cost.total"),
    "input_cost": ("gen_ai.usage.input_cost", "llm.cost.prompt"),
    "output_cost": ("gen_ai.usage.output_cost", "llm.cost.completion"),
    "user_id": ("user.id", "langfuse.user.id", "traceloop.association.properties.user_id", "enduser.id"),
    "session_id": ("session.id", "gen_ai.conversation.id", "langfuse.session.id",
                   "traceloop.association.properties.session_id"),
    "trace_name": ("trace.name", "langfuse.trace.name", "trace_name",
                   "traceloop.workflow.name", "gen_ai.workflow.name"),
    # Ranks 2 and 4 are the gen_ai.prompt.N.* / llm.input_messages.* families (_FAMILIES).
    "input": ("gen_ai.input.messages", "gen_ai.prompt", "", "input.value", "",
              "traceloop.entity.input", "langfuse.observation.input",
              "gen_ai.tool.call.arguments", "gen_ai.retrieval.query.text"),
    "output": ("gen_ai.output.messages", "gen_ai.completion", "", "output.value", "",
               "traceloop.entity.output", "langfuse.observation.output",
               "gen_ai.tool.call.result", "gen_ai.retrieval.documents"),
    "system_instructions": ("gen_ai.system_instructions",),
    # Structured blobs, merged rather than picked.
    "usage_details": ("langfuse.observation.usage_details",),
    "cost_details": ("langfuse.observation.cost_details",),
    "parameter_blobs": ("llm.invocation_parameters", "langfuse.observation.model.parameters"),
    # Ranks 0 and 3 are the trace.metadata.* / traceloop.association.properties.* families.
    "metadata": ("", "langfuse.trace.metadata", "langfuse.observation.metadata", "", "metadata"),
    "tags": ("langfuse.trace.tags", "tag.tags"),
}

_SOURCES: dict[str, tuple[str, int]] = {
    key: (name, rank)
    for name, keys in _SOURCES_BY_FIELD.items()
    for rank, key in enumerate(keys) if key
}

# gen_ai.request.* settings that are model parameters, under the names Langfuse shows.
_PARAMETERS: dict[str, str] = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.choice.count": "n",
    "gen_ai.request.stream": "stream",
    "gen_ai.request.reasoning_effort": "reasoning_effort",
    "gen_ai.request.encoding_formats": "encoding_formats",
}

# Key families read by prefix: (prefix, field, rank), ranked among the field's sources above.
_FAMILIES: tuple[tuple[str, str, int], ...] = (
    ("trace.metadata.", "metadata", 0),
    ("langfuse.trace.metadata.", "metadata", 1),
    ("langfuse.observation.metadata.", "metadata", 2),
    ("traceloop.association.properties.", "metadata", 3),
    ("gen_ai.prompt.", "input", 2),
    ("gen_ai.completion.", "output", 2),
    ("llm.input_messages.", "input", 4),
    ("llm.output_messages.", "output", 4),
)
_FAMILY_PREFIXES = tuple(prefix for prefix, _, _ in _FAMILIES)
_FAMILY_OF = {prefix: (field, rank) for prefix, field, rank in _FAMILIES}

# Content carried by span events ranks after every attribute source.
_EVENT_RANK = 100
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_MESSAGE_EVENT_ROLES = {           # deprecated per-message events (semconv ≤ 1.36): inputs
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE_EVENT = "gen_ai.choice"
_LEGACY_CONTENT_EVENTS = {         # semconv ≤ 1.26: whole prompt / completion in one event
    "gen_ai.content.prompt": ("input", "gen_ai.prompt"),
    "gen_ai.content.completion": ("output", "gen_ai.completion"),
}
_EVENT_NAMES = frozenset((_DETAILS_EVENT, _CHOICE_EVENT, *_MESSAGE_EVENT_ROLES, *_LEGACY_CONTENT_EVENTS))

# Langfuse usage_details / cost_details keys, as its SDKs and integrations write them.
_USAGE_DETAIL_KEYS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("input", "prompt_tokens", "input_tokens", "promptTokens"),
    "output_tokens": ("output", "completion_tokens", "output_tokens", "completionTokens"),
    "total_tokens": ("total", "total_tokens", "totalTokens"),
    "cached_tokens": ("input_cached_tokens", "cache_read_input_tokens", "input_cache_read",
                      "cached_tokens", "cached"),
    "reasoning_tokens": ("output_reasoning_tokens", "reasoning_tokens", "output_reasoning", "reasoning"),
}
_COST_DETAIL_KEYS: dict[str, str] = {"input": "input_cost", "output": "output_cost", "total": "cost"}
_DETAIL_RANK = 50   # after every attribute of the table

# --- type ------------------------------------------------------------------------------------

_OPERATION_TYPES = {
    "chat": "GENERATION", "text_completion": "GENERATION", "generate_content": "GENERATION",
    "embeddings": "EMBEDDING", "execute_tool": "TOOL",
    "invoke_agent": "AGENT", "create_agent": "AGENT",
    "retrieval": "RETRIEVER", "invoke_workflow": "CHAIN",
}
_OPENINFERENCE_TYPES = {
    "LLM": "GENERATION", "EMBEDDING": "EMBEDDING", "TOOL": "TOOL", "AGENT": "AGENT",
    "CHAIN": "CHAIN", "RETRIEVER": "RETRIEVER", "GUARDRAIL": "GUARDRAIL", "EVALUATOR": "EVALUATOR",
    # Langfuse has no reranker or prompt-rendering type; they are plain steps.
    "RERANKER": "SPAN", "PROMPT": "SPAN",
}
_LANGFUSE_TYPES = frozenset(("SPAN", "GENERATION", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER",
                             "EVALUATOR", "EMBEDDING", "GUARDRAIL"))
_TRACELOOP_TYPES = {"workflow": "CHAIN", "task": "SPAN", "agent": "AGENT", "tool": "TOOL"}
_TRACELOOP_OPERATIONS = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
_MODEL_CALL_TYPES = frozenset(("GENERATION", "EMBEDDING"))


def _lower(value: Any) -> str | None:
    return value.lower() or None if isinstance(value, str) else None


def _upper(value: Any) -> str | None:
    return value.upper() or None if isinstance(value, str) else None


_READERS: dict[str, Callable[[Any], Any]] = {
    "model": _text, "provider": _text, "user_id": _text, "session_id": _text, "trace_name": _text,
    "operation": _lower,
    "llm_request_type": lambda v: _TRACELOOP_OPERATIONS.get(_lower(v)),
    "openinference_kind": lambda v: _OPENINFERENCE_TYPES.get(_upper(v)),
    "langfuse_type": lambda v: u if (u := _upper(v)) in _LANGFUSE_TYPES else None,
    "traceloop_kind": lambda v: _TRACELOOP_TYPES.get(_lower(v)),
    "input_tokens": _count, "output_tokens": _count, "total_tokens": _count,
    "cached_tokens": _count, "reasoning_tokens": _count,
    "cost": _usd, "input_cost": _usd, "output_cost": _usd,
    "input": _content, "output": _content, "system_instructions": _content,
}


# --- the view --------------------------------------------------------------------------------

Candidates = dict[str, list[tuple[int, Any]]]   # field → (rank, raw value) found for it


def view_from_attributes(attributes: dict[str, Any], events: Sequence[Span.Event] = (),
                         name: str = "") -> GenAIView:
    """The GenAI view of a span given as attributes (plus its events and name)."""
    candidates: Candidates = {}
    families: dict[str, dict[str, Any]] = {}
    parameters: dict[str, Any] = {}

    for key, value in attributes.items():
        source = _SOURCES.get(key)
        if source is not None:
            field, rank = source
            bucket = candidates.get(field)
            if bucket is None:
                candidates[field] = [(rank, value)]
            else:
                bucket.append((rank, value))
            continue
        parameter = _PARAMETERS.get(key)
        if parameter is not None:
            parameters[parameter] = _plain(value)
            continue
        if key.startswith(_FAMILY_PREFIXES):
            for prefix, _, _ in _FAMILIES:
                if key.startswith(prefix):
                    families.setdefault(prefix, {})[key[len(prefix):]] = value
                    break

    if events and ("input" not in candidates or "output" not in candidates):
        _add_event_content(events, candidates)
    if not (candidates or families or parameters):
        return _plain_span()

    metadata_layers: list[tuple[int, dict[str, Any]]] = []
    for prefix, flat in families.items():
        field, rank = _FAMILY_OF[prefix]
        if field == "metadata":
            metadata_layers.append((rank, {k: _content(v) for k, v in flat.items()}))
        elif messages := _messages(flat):
            candidates.setdefault(field, []).append((rank, messages))
    cost_details = _add_langfuse_details(candidates)

    # Only fields something was found for are read; the others stay None.
    picked = {field: _best(bucket, _READERS[field]) for field, bucket in candidates.items() if field in _READERS}
    get = picked.get

    model = get("model")
    provider = get("provider")
    operation = get("operation") or get("llm_request_type")
    if operation is None and (model or provider) and name:
        # The semconv names spans "{gen_ai.operation.name} {target}".
        first = name.split(" ", 1)[0]
        if first in _OPERATION_TYPES:
            operation = first

    input_tokens = get("input_tokens")
    output_tokens = get("output_tokens")
    total_tokens = get("total_tokens")
    if total_tokens is None and input_tokens is not None and output_tokens is not None:
        total_tokens = _count(input_tokens + output_tokens)   # None past int64, like a given total

    type_ = (_OPERATION_TYPES.get(operation or "")
             or get("openinference_kind") or get("langfuse_type") or get("traceloop_kind"))
    if type_ is None:
        # Nothing names the kind of span: a model or token usage makes it a model call.
        used = model or input_tokens is not None or output_tokens is not None or total_tokens is not None
        type_ = "GENERATION" if used else "SPAN"

    input_cost = get("input_cost")
    output_cost = get("output_cost")
    cost = get("cost")
    if cost is None and input_cost is not None and output_cost is not None:
        cost = _usd(input_cost + output_cost)   # None when the sum overflows to infinity
    for key, amount in (("input", input_cost), ("output", output_cost), ("total", cost)):
        if amount is not None:
            cost_details[key] = amount

    return GenAIView(
        type=type_,
        operation=operation,
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        cached_tokens=get("cached_tokens"),
        reasoning_tokens=get("reasoning_tokens"),
        cost=cost,
        cost_details=cost_details,
        model_parameters=_model_parameters(candidates, parameters),
        input=_with_system_instructions(get("input"), get("system_instructions")),
        output=get("output"),
        user_id=get("user_id"),
        session_id=get("session_id"),
        trace_name=get("trace_name"),
        tags=_tags(candidates),
        metadata=_metadata(candidates, metadata_layers),
        is_genai=type_ in _MODEL_CALL_TYPES,
    )


def _plain_span() -> GenAIView:
    """The view of a span no convention describes (most spans of an application)."""
    return GenAIView("SPAN", None, None, None, None, None, None, None, None, None, {}, {}, None, None,
                     None, None, None, [], {}, False)


def _best(bucket: list[tuple[int, Any]], read: Callable[[Any], Any]) -> Any:
    """The best-ranked candidate that reads as a usable value."""
    if len(bucket) == 1:
        return read(bucket[0][1])
    for _, raw in sorted(bucket, key=itemgetter(0)):
        value = read(raw)
        if value is not None:
            return value
    return None


# --- helpers of the view ---------------------------------------------------------------------

_MAX_PATH = 12   # segments below a message family key; real ones use at most 7


def _is_index(segment: str) -> bool:
    return segment.isascii() and segment.isdigit()


def _messages(flat: dict[str, Any]) -> list[Any]:
    """Indexed flat keys ("0.role", "1.tool_calls.0.name", ...) → list of messages, in index order."""
    root: dict[str, Any] = {}
    for path, value in flat.items():
        parts = path.split(".", _MAX_PATH)
        if len(parts) > _MAX_PATH or not _is_index(parts[0]):
            continue   # not a message (gen_ai.prompt.name is a prompt's name), or absurdly deep
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(parts[-1]), dict):   # a deeper key already claimed this path
            node[parts[-1]] = _plain(value)
    messages = _listed(root)
    if not isinstance(messages, list):
        return []
    # OpenInference nests each message under "message" (llm.input_messages.0.message.role).
    return [m["message"] if isinstance(m, dict) and len(m) == 1 and "message" in m else m
            for m in messages]


def _index_order(segment: str) -> tuple[int, str]:
    """Numeric order of an index without int(), which refuses more than 4300 digits."""
    digits = segment.lstrip("0")
    return len(digits), digits


def _listed(node: Any) -> Any:
    """Dicts keyed by indexes become lists ordered by index."""
    if not isinstance(node, dict):
        return node
    if node and all(_is_index(k) for k in node):
        return [_listed(node[k]) for k in sorted(node, key=_index_order)]
    return {k: _listed(v) for k, v in node.items()}


def _add_event_content(events: Sequence[Span.Event], candidates: Candidates) -> None:
    """Input / output (and system instructions) carried by span events, ranked after attributes."""
    inputs: list[Any] = []
    choices: list[Any] = []
    for event in events:
        event_name = event.name
        if event_name not in _EVENT_NAMES:
            continue
        attributes = to_dict(event.attributes)
        if event_name == _DETAILS_EVENT:
            for field, key in (("input", "gen_ai.input.messages"), ("output", "gen_ai.output.messages"),
                               ("system_instructions", "gen_ai.system_instructions")):
                if key in attributes:
                    candidates.setdefault(field, []).append((_EVENT_RANK, attributes[key]))
        elif event_name in _LEGACY_CONTENT_EVENTS:
            field, key = _LEGACY_CONTENT_EVENTS[event_name]
            if key in attributes:
                candidates.setdefault(field, []).append((_EVENT_RANK + 1, attributes[key]))
        else:
            message = {k: _content(v) for k, v in attributes.items() if k != "gen_ai.system"}
            if event_name == _CHOICE_EVENT:
                choices.append(message)
            else:
                message.setdefault("role", _MESSAGE_EVENT_ROLES[event_name])
                inputs.append(message)
    if inputs:
        candidates.setdefault("input", []).append((_EVENT_RANK + 2, inputs))
    if choices:
        candidates.setdefault("output", []).append((_EVENT_RANK + 2, choices))


def _add_langfuse_details(candidates: Candidates) -> dict[str, float]:
    """Langfuse's usage_details / cost_details JSON feed the usage and cost fields, after every
    attribute of the table; returns the cost_details keys beyond input / output / total."""
    for _, raw in candidates.get("usage_details", ()):
        usage = _mapping(raw) or {}
        for field, keys in _USAGE_DETAIL_KEYS.items():
            for rank, key in enumerate(keys):
                if key in usage:
                    candidates.setdefault(field, []).append((_DETAIL_RANK + rank, usage[key]))
    extra: dict[str, float] = {}
    for _, raw in candidates.get("cost_details", ()):
        for key, value in (_mapping(raw) or {}).items():
            field = _COST_DETAIL_KEYS.get(key)
            if field is not None:
                candidates.setdefault(field, []).append((_DETAIL_RANK, value))
            elif (amount := _usd(value)) is not None:
                extra[key] = amount
    return extra


def _with_system_instructions(input_: Any, instructions: Any) -> Any:
    """Separate system instructions become the first message of a message list."""
    if instructions is None or not (input_ is None or isinstance(input_, list)):
        return input_
    parts = instructions if isinstance(instructions, list) else [{"type": "text", "content": instructions}]
    return [{"role": "system", "parts": parts}, *(input_ or ())]


def _model_parameters(candidates: Candidates, explicit: dict[str, Any]) -> dict[str, Any]:
    """Invocation-parameter blobs, overridden by the explicit gen_ai.request.* settings."""
    merged: dict[str, Any] = {}
    for _, raw in sorted(candidates.get("parameter_blobs", ()), key=itemgetter(0), reverse=True):
        merged.update(_mapping(raw) or {})
    merged.update(explicit)
    return merged


def _tags(candidates: Candidates) -> list[str]:
    tags: dict[str, None] = {}   # an ordered set
    for _, raw in sorted(candidates.get("tags", ()), key=itemgetter(0)):
        value = _content(raw)
        for tag in value if isinstance(value, list) else (value,):
            if (text := _text(tag)) is not None:
                tags[text] = None
    return list(tags)


def _metadata(candidates: Candidates, layers: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Custom metadata of every convention, merged; the best-ranked source wins a key."""
    layers += [(rank, blob) for rank, raw in candidates.get("metadata", ()) if (blob := _mapping(raw))]
    merged: dict[str, Any] = {}
    for _, layer in sorted(layers, key=itemgetter(0), reverse=True):
        merged.update(layer)
    return merged
