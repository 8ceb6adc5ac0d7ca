"""The canonical GenAI view of one span, whatever convention produced it.

Which attributes (and span events) feed which field, with what priority and how each is read, is
the conventions table (otlp_router/model/conventions.yaml, plus router.yaml's `genai:
{conventions: [...]}`); this module carries out its `read`s. The priorities follow Langfuse's OTel
ingestion, so the view (and the per-trace JSON built from it) says what Langfuse would say of the
same spans, including its usage buckets: `usage_details["input"]` excludes cache reads and cache
creation, `["output"]` excludes reasoning and audio, each of those is its own key, and `total` is
the given total or the sum. The counts as the provider reported them (cached included in input,
reasoning in output: Aperture's meaning) are `input_tokens` / `output_tokens` and the others.

Called per span on the storage path: one pass over the attribute dict with dict lookups (and one
`str.startswith(tuple)` for keys that miss), then per-field picks among the few candidates found.
Pure: no I/O, never raises on odd values (unusable → None), and what it returns serialises as JSON.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_router.model import conventions, prices
from otlp_router.model.attributes import value_of
from otlp_router.model.conventions import MODEL_CALL_TYPES, USAGE_WITHIN, Source, Table, TypeRule


@dataclass(slots=True)
class GenAIView:
    """One span as a Langfuse-style observation. `type` is a Langfuse observation type
    (GENERATION, EMBEDDING, TOOL, AGENT, CHAIN, RETRIEVER, EVALUATOR, GUARDRAIL, EVENT, SPAN);
    `is_genai` marks model calls (GENERATION, EMBEDDING), not the agents, tools and chains
    around them, so per-call records (Aperture) are not counted twice."""

    type: str = "SPAN"
    operation: str | None = None     # gen_ai.operation.name style: chat, embeddings, execute_tool, ...
    model: str | None = None
    provider: str | None = None
    input_tokens: int | None = None         # as reported: cache reads and writes included
    output_tokens: int | None = None        # as reported: reasoning and audio included
    total_tokens: int | None = None         # given, else input + output when both are known
    cached_tokens: int | None = None        # cache reads
    reasoning_tokens: int | None = None
    cost: float | None = None               # USD total: given, else the sum of the known parts, else estimated
    cost_details: dict[str, float] = field(default_factory=dict)   # USD input / output / total, Langfuse's keys
    model_parameters: dict[str, Any] = field(default_factory=dict)   # temperature, max_tokens, ...: numbers, strings
    input: Any = None                       # messages list / string / dict, JSON strings parsed; None if absent
    output: Any = None
    user_id: str | None = None
    session_id: str | None = None
    trace_name: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)   # custom metadata (trace.metadata.* and the like)
    is_genai: bool = False
    usage_details: dict[str, int] | None = None   # Langfuse's buckets (see the module doc)
    cache_creation_tokens: int | None = None
    name: str | None = None          # the observation's name, when a convention names it otherwise than the span
    trace_input: Any = None          # the trace's own input / output (langfuse.trace.input / output)
    trace_output: Any = None
    environment: str = "default"
    level: str = "DEFAULT"
    status_message: str | None = None
    completion_start_time: str | None = None   # ISO 8601 UTC, microseconds
    cost_estimate: prices.Estimate | None = None   # set when cost came from the price table, not the span


def view(span: Span, resource_attributes: dict[str, Any] | None = None, scope_name: str = "",
         scope_version: str = "") -> GenAIView:
    """The GenAI view of a span; resource attributes fill what the span's own lack. Conventions
    that apply to one instrumentation scope only (Vercel's "ai", Genkit, Flue, LiveKit, ...) need
    `scope_name`."""
    attributes = attributes_of(span.attributes)
    if resource_attributes:
        attributes = {**resource_attributes, **attributes}
    status = span.status
    return _view(attributes, span.events, span.name, scope_name, scope_version, resource_attributes,
                 status.code, status.message, span.start_time_unix_nano, None)


_SCALARS = frozenset(("string_value", "int_value", "double_value", "bool_value", "bytes_value"))


def attributes_of(attributes: Any) -> dict[str, Any]:
    """`to_dict`, with scalar values (nearly all) read inline: it runs for every span stored."""
    out: dict[str, Any] = {}
    for kv in attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = getattr(value, kind) if kind in _SCALARS else value_of(value)
    return out


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
            except orjson.JSONDecodeError:
                return value
            # (a string shorter than twice the depth limit cannot nest that deep: no probe needed)
            if len(value) > 2 * _MAX_DEPTH and isinstance(parsed, (dict, list)) and _too_deep(parsed):
                # JSON nested deeper than _MAX_DEPTH stays a string, as deep structured values end at
                # _MAX_DEPTH in _plain: then a document or record holding the view (a few levels
                # more) still serialises.
                return value
            return parsed
        return value
    return _plain(value)


def _too_deep(parsed: Any) -> bool:
    """True when `parsed`, wrapped in the levels above _MAX_DEPTH, passes orjson's limit."""
    probe = parsed
    for _ in range(_ORJSON_MAX_DEPTH - _MAX_DEPTH):
        probe = [probe]
    try:
        orjson.dumps(probe)
    except orjson.JSONEncodeError:
        return True
    return False


def _mapping(value: Any) -> dict[str, Any] | None:
    """A dict given structured or as a JSON string (Langfuse and OpenInference serialise them)."""
    parsed = _content(value)
    return parsed if isinstance(parsed, dict) else None


def _meaningful(value: Any) -> bool:
    """Langfuse's hasMeaningfulValue: not null, not "", not an empty list or object."""
    if value is None or value == "":
        return False
    if isinstance(value, (list, dict, tuple)):
        return len(value) > 0
    return True


def _param(value: Any) -> Any:
    """A model parameter as Langfuse keeps them: numbers and strings as they are, the rest as JSON."""
    if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return _plain(value)
    try:
        return orjson.dumps(_plain(value)).decode()
    except orjson.JSONEncodeError:
        return None


def _params(value: Any) -> dict[str, Any] | None:
    blob = _mapping(value)
    if not blob:
        return None
    return {k: _param(v) for k, v in blob.items()}


def _js_string(value: Any) -> str | None:
    """A value as JavaScript's toString shows it (Langfuse's AI SDK parameters)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join("" if v is None else (_js_string(v) or "") for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
        return str(value)
    try:
        return orjson.dumps(_plain(value)).decode()
    except orjson.JSONEncodeError:
        return None


def _tags(value: Any) -> list[str] | None:
    """Tags from a list, a JSON list, a comma-separated string or a single string."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                value = parsed
        if isinstance(value, str):
            items = [t.strip() for t in value.split(",")] if "," in value else [value]
            return [t for t in items if t] or None
    if isinstance(value, (list, tuple)):
        tags = [t for tag in value if (t := _text(tag) if not isinstance(tag, float) else str(tag)) is not None]
        return tags or None
    return None


_LEVEL_ALIASES = {
    "DEBUG": "DEBUG", "TRACE": "DEBUG", "VERBOSE": "DEBUG",
    "DEFAULT": "DEFAULT", "INFO": "DEFAULT", "LOG": "DEFAULT", "NOTICE": "DEFAULT", "OK": "DEFAULT",
    "SUCCESS": "DEFAULT",
    "WARNING": "WARNING", "WARN": "WARNING",
    "ERROR": "ERROR", "FATAL": "ERROR", "CRITICAL": "ERROR",
}


def _level(value: Any) -> str | None:
    return _LEVEL_ALIASES.get(value.strip().upper()) if isinstance(value, str) else None


def _environment(value: Any) -> str | None:
    """Langfuse's environment names: lower case, no reserved "langfuse" prefix, at most 40 of
    [a-z0-9-_]; anything else is unusable (and the next source, else "default", is taken)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.lower()
    while text.startswith("langfuse"):
        text = text[8:].lstrip("-_") if text[8:9] in ("-", "_") else text[8:]
    text = text[:40]
    if not text or not all(c.isascii() and (c.isalnum() or c in "-_") for c in text):
        return None
    return text


def iso_time(value: Any) -> str | None:
    """An ISO 8601 time (bare or JSON-quoted, naive meaning UTC) as "…T…:….ffffffZ"."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith('"'):
        try:
            text = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(text, str):
            return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:   # a time near year 1 or 9999 shifted past the calendar by its offset
        return None
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{moment.second:02d}.{moment.microsecond:06d}Z")


def _offset(value: Any) -> float | None:
    """A non-negative finite duration from a number or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _cost_details(value: Any) -> dict[str, float] | None:
    blob = _mapping(value)
    if blob is None:
        return None
    out = {k: amount for k, v in blob.items() if (amount := _usd(v)) is not None and amount >= 0}
    return out or None


def _usage_details(value: Any) -> dict[str, int] | None:
    """Langfuse's usage_details: its own keys as they are, or an OpenAI usage object (Chat
    Completions: prompt_tokens / completion_tokens and their *_details; Responses: input_tokens /
    output_tokens and theirs), whose details become their own buckets, taken out of input / output."""
    blob = _mapping(value)
    if not blob:
        return None
    if "prompt_tokens" in blob or "completion_tokens" in blob:
        shape = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
    elif "input_tokens" in blob or "output_tokens" in blob:
        shape = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
    else:
        out = {k: n for k, v in blob.items() if (n := _count(v)) is not None}
        return out or None
    inclusive_in, inclusive_out, details_in, details_out = shape
    out: dict[str, int] = {}
    for key, v in blob.items():
        if key in shape or key == "total_tokens":
            continue
        if (n := _count(v)) is not None:
            out[key] = n
    for side, count_key, details_key in (("input", inclusive_in, details_in), ("output", inclusive_out, details_out)):
        count = _count(blob.get(count_key))
        details = blob.get(details_key)
        taken = 0
        if isinstance(details, dict):
            for name, v in details.items():
                if (n := _count(v)) is not None:
                    out[f"{side}_{name}"] = n
                    taken += n
        if count is not None:
            out[side] = max(count - taken, 0)
    if (total := _count(blob.get("total_tokens"))) is not None:
        out["total"] = total
    return out or None


# --- the readers the table names ---------------------------------------------------------------

class _Ctx:
    """What a reader may look at beyond its own value."""

    __slots__ = ("attributes", "events", "name", "parsed")

    def __init__(self, attributes: dict[str, Any], events: Sequence[Span.Event], name: str) -> None:
        self.attributes = attributes
        self.events = events
        self.name = name
        self.parsed: dict[str, Any] = {}

    def json(self, key: str) -> Any:
        """The attribute `key` with JSON strings parsed, once per span (path sources share it)."""
        parsed = self.parsed.get(key, _MISSING)
        if parsed is _MISSING:
            parsed = self.parsed[key] = _content(self.attributes.get(key))
        return parsed


_MISSING: Any = object()
Reader = Callable[[Any, Source, _Ctx], Any]


def _paths(flat: dict[str, Any], source: Source, ctx: _Ctx) -> Any:
    """Flattened keys ("0.role", "1.tool_calls.0.name", "content") → the value they spell:
    a list in index order when they start with indexes (messages), else an object."""
    root: dict[str, Any] = {}
    for path, value in flat.items():
        if path in source.exclude:
            continue
        parts = path.split(".", _MAX_PATH)
        if len(parts) > _MAX_PATH:
            continue   # absurdly deep
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(parts[-1]), dict):   # a deeper key already claimed this path
            node[parts[-1]] = _plain(value)
    if not root:
        return None
    if any(_is_index(k) for k in root):
        root = {k: v for k, v in root.items() if _is_index(k)}   # gen_ai.prompt.name beside 0.content
    result = _listed(root)
    return result or None


def _flat(flat: dict[str, Any], source: Source, ctx: _Ctx) -> dict[str, Any] | None:
    out = {k: _content(v) for k, v in flat.items() if k and k not in source.exclude}
    return out or None


def _flat_params(flat: dict[str, Any], source: Source, ctx: _Ctx) -> dict[str, Any] | None:
    out = {k: _param(v) for k, v in flat.items() if k and k not in source.exclude}
    return out or None


def _usage_other(flat: dict[str, Any], source: Source, ctx: _Ctx) -> dict[str, int] | None:
    out: dict[str, int] = {}
    for k, v in flat.items():
        if k in source.exclude or not k:
            continue
        if (n := _count(v)) is not None:
            out[k[8:] if k.startswith("details.") else k] = n
    return out or None


def _tool_list(value: Any, source: Source, ctx: _Ctx) -> list[Any] | None:
    parsed = _content(value)
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return None
    tools = [_content(t) if isinstance(t, str) else t for t in parsed]   # the AI SDK sends one JSON string each
    return [t for t in tools if isinstance(t, dict)] or None


def _openinference_tools(flat: dict[str, Any], source: Source, ctx: _Ctx) -> list[Any] | None:
    tools = _paths(flat, source, ctx)
    if not isinstance(tools, list):
        return None
    out = []
    for tool in tools:
        schema = tool.get("tool", {}).get("json_schema") if isinstance(tool, dict) else None
        if isinstance(schema, dict) or (schema := _content(schema)) is not None:
            out.append(schema)
    return out or None


def _event_attributes(event: Span.Event) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in event.attributes}


def _event_messages(events: list[Span.Event], source: Source, ctx: _Ctx) -> list[Any] | None:
    messages = []
    for event in events:
        role = event.name.removeprefix("gen_ai.").removesuffix(".message")
        message: dict[str, Any] = {"role": role}
        for key, value in _event_attributes(event).items():
            if key != "gen_ai.system":   # the provider, not the message
                message[key] = _content(value)
        messages.append(message)
    return messages or None


def _event_choices(events: list[Span.Event], source: Source, ctx: _Ctx) -> Any:
    choices = [{k: _content(v) for k, v in _event_attributes(e).items() if k != "gen_ai.system"} for e in events]
    if not choices:
        return None
    return choices[0] if len(choices) == 1 else choices   # one choice is the output itself, as in Langfuse


def _event_whole(events: list[Span.Event], source: Source, ctx: _Ctx) -> Any:
    """Semconv <= 1.26's one-event prompt / completion: its attribute, else all its attributes."""
    attributes = _event_attributes(events[0])
    if source.attribute is not None and source.attribute in attributes:
        return _content(attributes[source.attribute])
    return {k: _content(v) for k, v in attributes.items()} or None


def _event_attribute(events: list[Span.Event], source: Source, ctx: _Ctx) -> Any:
    for event in events:
        for kv in event.attributes:
            if kv.key == source.attribute:
                value = _content(value_of(kv.value))
                if value is not None:
                    if source.system_instructions:
                        value = _prepend_instructions(value, _instructions_of(event))
                    return value
    return None


def _instructions_of(event: Span.Event) -> Any:
    for kv in event.attributes:
        if kv.key == "gen_ai.system_instructions":
            return _content(value_of(kv.value))
    return None


def _logfire_events(value: Any, choice: bool) -> Any:
    events = _content(value)
    if not isinstance(events, list):
        return None
    if choice:
        return next((e for e in events if isinstance(e, dict) and e.get("event.name") == "gen_ai.choice"), None)
    inputs = [e for e in events if not (isinstance(e, dict) and e.get("event.name") == "gen_ai.choice")]
    return inputs or None


def _content_nonempty(value: Any) -> Any:
    parsed = _content(value)
    return parsed if _meaningful(parsed) else None


def _positive(value: Any) -> int | None:
    n = _count(value)
    return n if n else None


def _operation(value: Any, source: Source, ctx: _Ctx) -> str | None:
    text = value.lower() if isinstance(value, str) else None
    if not text:
        return None
    if source.values is not None:
        return source.values.get(text)
    return text


def _operation_reader(values: dict[str, Any] | None) -> Callable[[Any], str | None]:
    """`_operation` of one source, as a function of the value alone."""
    if values is None:
        return lambda value: (value.lower() or None) if value.__class__ is str else None
    return lambda value: values.get(value.lower()) if value.__class__ is str else None


def _plain_reader(function: Callable[[Any], Any]) -> Reader:
    return lambda value, source, ctx: function(value)


_PLAIN_READERS: dict[str, Callable[[Any], Any]] = {
    "text": _text, "string": _js_string, "count": _count, "positive_count": _positive, "usd": _usd,
    "content": _content, "content_nonempty": _content_nonempty, "mapping": _mapping, "params": _params,
    "tags": _tags, "level": _level, "time": iso_time, "offset": _offset, "environment": _environment,
    "usage_details": _usage_details, "cost_details": _cost_details,
}

READERS: dict[str, Reader] = {
    "text": _plain_reader(_text),
    "string": _plain_reader(_js_string),
    "operation": _operation,
    "count": _plain_reader(_count),
    "positive_count": _plain_reader(_positive),
    "usd": _plain_reader(_usd),
    "content": _plain_reader(_content),
    "content_nonempty": _plain_reader(_content_nonempty),
    "mapping": _plain_reader(_mapping),
    "params": _plain_reader(_params),
    "tags": _plain_reader(_tags),
    "level": _plain_reader(_level),
    "time": _plain_reader(iso_time),
    "offset": _plain_reader(_offset),
    "environment": _plain_reader(_environment),
    "usage_details": _plain_reader(_usage_details),
    "cost_details": _plain_reader(_cost_details),
    "tool_list": _tool_list,
    "logfire_events_input": lambda value, source, ctx: _logfire_events(value, False),
    "logfire_events_output": lambda value, source, ctx: _logfire_events(value, True),
    # Of a prefix family (a dict of suffix → value).
    "flat": _flat,
    "flat_params": _flat_params,
    "paths": _paths,
    "usage_other": _usage_other,
    "openinference_tools": _openinference_tools,
    # Of the span events a source names (a list).
    "event_messages": _event_messages,
    "event_choices": _event_choices,
    "event_attributes": _event_whole,
}
assert set(READERS) == conventions.READERS, "every reader the table may name is implemented"


# --- the table, compiled for the view ------------------------------------------------------------

class _Engine:
    """A table's sources as lookups: attribute key → sources, prefixes, event names."""

    def __init__(self, table: Table) -> None:
        self.table = table
        exact: dict[str, list[tuple[int, Source]]] = {}
        prefix_sources: list[tuple[int, Source]] = []
        self.events: dict[str, list[tuple[int, Source]]] = {}
        self.span_name_sources: list[tuple[int, Source]] = []
        for rank, source in enumerate(table.sources):
            if source.key is not None:
                exact.setdefault(source.key, []).append((rank, source))
            elif source.prefix is not None:
                prefix_sources.append((rank, source))
            elif source.compose:
                # Any member key brings the composed source in; it reads the attributes itself.
                for key in dict.fromkeys(k for _, members in source.compose for m in members for k in m.keys()):
                    exact.setdefault(key, []).append((rank, source))
            elif source.events:
                for name in source.events:
                    self.events.setdefault(name, []).append((rank, source))
            elif source.span_names:
                self.span_name_sources.append((rank, source))
        # Longest prefix first, so nested families (gen_ai.usage.details.) find their own.
        prefix_sources.sort(key=lambda rs: -len(rs[1].prefix or ""))
        self.prefix_sources = tuple(prefix_sources)
        self.prefixes = tuple(dict.fromkeys(s.prefix for _, s in prefix_sources if s.prefix))
        # For a key some source names exactly: the families that take it too (metadata prefixes do;
        # "known: false" families, the catch-all usage keys, do not).
        self.exact: dict[str, tuple[tuple[int, Source], ...]] = {k: tuple(v) for k, v in exact.items()}
        self.type_rules = table.type_rules
        self.type_keys = table.type_keys
        self.resource_keys = tuple(table.resource_keys)
        self.name_rule_scopes = frozenset(s for r in table.type_rules if r.span_names for s in (r.scopes or ()))
        self.suppress = table.suppress
        self.rank_of = {source: rank for rank, source in self.prefix_sources}
        # Sources read by one plain function of the value (most of them): no per-option checks.
        self.fast: dict[Source, Callable[[Any], Any]] = {}
        for source in table.sources:
            if source.key is None or (source.path or source.pick or source.prepend or source.when
                                      or source.scopes is not None or source.system_instructions
                                      or source.unit != 1.0):
                continue
            if source.read == "operation":
                self.fast[source] = _operation_reader(source.values)
            elif source.values is None and (plain := _PLAIN_READERS.get(source.read)) is not None:
                self.fast[source] = plain
        # Families read by their reader alone (no scope, no options).
        self.fast_family = frozenset(s for _, s in prefix_sources if s.scopes is None and not (
            s.path or s.pick or s.values is not None or s.prepend or s.when or s.system_instructions))
        self.keys: dict[str, _KeyEntry | None] = {}   # what each attribute key seen so far feeds
        self.role_of = {s.field: _role(s.field) for s in table.sources}

    def learn(self, key: str) -> "_KeyEntry | None":
        """What `key` feeds: the sources naming it, the families it belongs to, whether a type rule
        looks at it (remembered, for the few hundred distinct keys a deployment sends)."""
        hits = self.exact.get(key, ())
        families = tuple((source, len(source.prefix or "")) for _, source in self.prefix_sources
                         if key.startswith(source.prefix or "\0") and (source.known or not hits)
                         and key != source.prefix)
        typed = key in self.type_keys
        entry = (hits, families, typed) if hits or families or typed else None
        if len(self.keys) < _MAX_KEYS:
            self.keys[key] = entry
        return entry


_KeyEntry = tuple[tuple[tuple[int, Source], ...], tuple[tuple[Source, int], ...], bool]
_MAX_KEYS = 20_000   # distinct attribute keys remembered; past it, keys are looked up each time


_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    global _ENGINE
    table = conventions.active()
    if _ENGINE is None or _ENGINE.table is not table:
        _ENGINE = _Engine(table)
    return _ENGINE


def _scope_ok(scopes: tuple[str, ...] | None, scope_name: str) -> bool:
    if scopes is None:
        return True
    for scope in scopes:
        if scope == scope_name or (scope.endswith("*") and scope_name.startswith(scope[:-1])):
            return True
    return False


# --- the table, compiled for the native core ----------------------------------------------------

_NATIVE: tuple[Table, Any] | None = None


def native_table() -> Any:
    """The table in force compiled for the core (`_native.GenAI`), once per table."""
    global _NATIVE
    table = conventions.active()
    if _NATIVE is None or _NATIVE[0] is not table:
        from otlp_router import _native
        _NATIVE = (table, _native.GenAI(_native_spec(table), prices.estimate, prices.source(), prices.rates))
    return _NATIVE[1]


def _native_spec(table: Table) -> dict[str, Any]:
    """The table as plain data for `_native.GenAI`: sources and rules in table order, with the
    lookups _Engine decides (which sources are read by their reader alone). A reader the core
    does not know (one added here first) makes the spans that need it Python's."""
    engine = _Engine(table)

    def source(s: Source) -> dict[str, Any]:
        return {
            "field": s.field, "priority": s.priority, "read": s.read, "key": s.key, "prefix": s.prefix,
            "events": list(s.events), "attribute": s.attribute,
            "compose": [(name, [source(o) for o in options]) for name, options in s.compose],
            "require": list(s.require), "merge": list(s.merge),
            "compose_keys": list(dict.fromkeys(k for _, members in s.compose for m in members for k in m.keys())),
            "span_names": sorted(s.span_names), "constant": s.constant, "path": list(s.path), "pick": s.pick,
            "values": s.values, "unit": s.unit, "exclude": sorted(s.exclude), "known": s.known, "when": s.when,
            "prepend": s.prepend, "scopes": list(s.scopes) if s.scopes is not None else None,
            "system_instructions": s.system_instructions, "fast": s in engine.fast,
        }

    sources = [source(s) for s in table.sources]
    rules = [{
        "key": r.key, "values": r.values, "prefixes": list(r.prefixes), "name_prefixes": list(r.name_prefixes),
        "span_names": r.span_names, "any_of": list(r.any_of), "type": r.type, "requires_any": list(r.requires_any),
        "case": r.case, "scopes": list(r.scopes) if r.scopes is not None else None, "resource": r.resource,
        "scope_version_at_most": list(r.scope_version_at_most) if r.scope_version_at_most is not None else None,
    } for r in table.type_rules]
    mapped_keys = frozenset(k for s in table.sources for k in s.keys()) | table.type_keys
    return {
        "sources": sources, "type_rules": rules, "type_keys": sorted(table.type_keys),
        "suppress": [{"key": r.key, "values": sorted(r.values), "fields": sorted(r.fields)} for r in table.suppress],
        "estimate_cost": table.estimate_cost,
        "content_keys": sorted(table.content_keys), "content_prefixes": list(table.content_prefixes),
        "not_content": sorted(table.not_content),
        "mapped_keys": sorted(mapped_keys),
        "mapped_prefixes": list(dict.fromkeys(s.prefix for s in table.sources if s.prefix)),
    }


# --- type ------------------------------------------------------------------------------------------

def classify(attributes: dict[str, Any], name: str = "", scope_name: str = "", scope_version: str = "",
             resource: dict[str, Any] | None = None, table: Table | None = None) -> str:
    """The observation type of a span: the table's type rules, lowest priority first (Langfuse's
    order: its own type, OpenInference's kind, the GenAI operation, Genkit, the AI SDK, tools,
    Flue, LiveKit, then any model makes a GENERATION); SPAN when none yields one."""
    for rule, key, any_of in _compiled_rules(table or _engine().table):
        # Skip, without a call, the rules whose key the span lacks (most of them, for most spans).
        if key is not None:
            if key not in attributes:
                continue
        elif any_of and not any(k in attributes for k in any_of):
            continue
        got = _apply_rule(rule, attributes, name, scope_name, scope_version, resource)
        if got is not None:
            return got
    return "SPAN"


_RULES: tuple[Table, tuple[tuple[TypeRule, str | None, tuple[str, ...]], ...]] | None = None


def _compiled_rules(table: Table) -> tuple[tuple[TypeRule, str | None, tuple[str, ...]], ...]:
    """Each rule with the key it needs present (or the keys one of which it needs)."""
    global _RULES
    if _RULES is None or _RULES[0] is not table:
        _RULES = (table, tuple((r, r.key, r.any_of or r.requires_any) for r in table.type_rules))
    return _RULES[1]


_CLASSIFIED: dict[tuple[Any, ...], str] = {}
_MAX_CLASSIFIED = 4096
_CLASSIFIED_FOR: list[Table | None] = [None]   # the table the remembered types are of


def _classify_typed(attributes: dict[str, Any], typed: list[str], name: str, scope_name: str, scope_version: str,
                    resource: dict[str, Any] | None, engine: "_Engine") -> str:
    """The type of a span whose type keys are `typed`, remembered by their values (a batch repeats
    a few operations, models and span names)."""
    table = engine.table
    if _CLASSIFIED_FOR[0] is not table:
        _CLASSIFIED.clear()
        _CLASSIFIED_FOR[0] = table
    resource_keys = engine.resource_keys
    signature = (name, scope_name, scope_version, *typed, *map(attributes.__getitem__, typed),
                 *((resource.get(k) for k in resource_keys) if resource and resource_keys else ()))
    return _remembered(signature, attributes, name, scope_name, scope_version, resource, table)


def _remembered(signature: tuple[Any, ...], attributes: dict[str, Any], name: str, scope_name: str,
                scope_version: str, resource: dict[str, Any] | None, table: Table) -> str:
    try:
        got = _CLASSIFIED.get(signature)
    except TypeError:   # an unhashable value (a list): classify it as it is
        return classify(attributes, name, scope_name, scope_version, resource, table)
    if got is None:
        got = classify(attributes, name, scope_name, scope_version, resource, table)
        if len(_CLASSIFIED) >= _MAX_CLASSIFIED:
            _CLASSIFIED.clear()
        _CLASSIFIED[signature] = got
    return got


def classify_cached(attributes: dict[str, Any], name: str, scope_name: str, scope_version: str,
                    resource: dict[str, Any] | None, table: Table) -> str:
    """`classify` for attributes holding only the type keys (privacy's), remembered by their
    values: a batch's spans repeat a few operations and models."""
    signature = (id(table), name, scope_name, scope_version, *attributes.items(),
                 *(resource.items() if resource else ()))
    return _remembered(signature, attributes, name, scope_name, scope_version, resource, table)


def _apply_rule(rule: TypeRule, attributes: dict[str, Any], name: str, scope_name: str, scope_version: str,
                resource: dict[str, Any] | None) -> str | None:
    if rule.scopes is not None and not _scope_ok(rule.scopes, scope_name):
        return None
    if rule.key is not None:
        value = attributes.get(rule.key)
        if not _meaningful(value):
            return None
    else:
        value = None
    if rule.any_of:
        if not any(_meaningful(attributes.get(k)) for k in rule.any_of):
            return None
        got = rule.type
    elif rule.span_names is not None:
        got = rule.span_names.get(name)
    elif rule.name_prefixes:
        got = next((t for prefix, t in rule.name_prefixes if name.startswith(prefix)), None)
    else:
        text = _type_value(value, rule.case)
        if text is None:
            return None
        if rule.values is not None:
            got = rule.values.get(text)
        else:
            got = next((t for prefix, t in rule.prefixes if text.startswith(prefix)), None)
    if got is None:
        return None
    if rule.requires_any and not any(_meaningful(attributes.get(k)) for k in rule.requires_any):
        return None
    if rule.resource is not None:
        if not resource or any(str(resource.get(k)) != v for k, v in rule.resource.items()):
            return None
    if rule.scope_version_at_most is not None and scope_version:
        if _version(scope_version) > rule.scope_version_at_most:
            return None
    return got


def _type_value(value: Any, case: str) -> str | None:
    if not isinstance(value, str):
        return None
    if value.startswith('"') and value.endswith('"') and len(value) > 1:   # MLflow JSON-encodes its attributes
        value = value[1:-1]
    if case == "lower":
        return value.lower()
    if case == "upper":
        return value.upper()
    return value


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


# --- the view --------------------------------------------------------------------------------

Candidates = dict[str, list[tuple[int, Source, Any]]]   # field → (rank, source, raw value) found for it
_RANK = itemgetter(0)

_OPERATION_NAMES = frozenset(("chat", "text_completion", "generate_content", "embeddings", "execute_tool",
                              "invoke_agent", "create_agent", "retrieval", "invoke_workflow"))
_MAX_UNIX_NANO = 2**64   # span times are fixed64; an absurd offset must not reach past them
# Fields whose sources all count: dicts merged, the lowest priority winning a key.
_MERGED_FIELDS = frozenset(("metadata", "usage.other"))
# Fields whose equal-priority sources merge (gen_ai.request.* beside llm.invocation_parameters.*).
_DICT_FIELDS = frozenset(("model_parameters",))
# What a `suppress` rule's names stand for.
_SUPPRESSED = {"model": lambda f: f == "model",
               "usage": lambda f: f.startswith("usage.") or f == "usage_details",
               "cost": lambda f: f.startswith("cost.") or f == "cost_details"}


def view_from_attributes(attributes: dict[str, Any], events: Sequence[Span.Event] = (), name: str = "", *,
                         scope_name: str = "", scope_version: str = "", resource: dict[str, Any] | None = None,
                         status_code: int = 0, status_message: str = "", start_unix_nano: int = 0,
                         used: set[str] | None = None) -> GenAIView:
    """The GenAI view of a span given as attributes (plus its events, name and where it came from);
    `used` collects the names of the conventions whose sources fed it (for `explain`)."""
    return _view(attributes, events, name, scope_name, scope_version, resource, status_code, status_message,
                 start_unix_nano, used)


def _view(attributes: dict[str, Any], events: Sequence[Span.Event], name: str, scope_name: str,
          scope_version: str, resource: dict[str, Any] | None, status_code: int, status_message: str,
          start_unix_nano: int, used: set[str] | None) -> GenAIView:
    """view_from_attributes, its arguments by position (called per span: keywords cost)."""
    engine = _engine()
    known = engine.keys
    candidates: Candidates = {}
    families: dict[Source, dict[str, Any]] = {}
    typed: list[str] = []

    for key, value in attributes.items():
        entry = known.get(key, _MISSING)
        if entry is _MISSING:
            entry = engine.learn(key)
        if entry is None:
            continue
        hits, family_hits, is_typed = entry
        for rank, source in hits:
            bucket = candidates.get(source.field)
            if bucket is None:
                candidates[source.field] = [(rank, source, value)]
            else:
                bucket.append((rank, source, value))
        for source, cut in family_hits:
            flat = families.get(source)
            if flat is None:
                families[source] = {key[cut:]: value}
            else:
                flat[key[cut:]] = value
        if is_typed:
            typed.append(key)

    if events and engine.events:
        _add_event_candidates(engine, events, candidates)
    if families:
        rank_of = engine.rank_of
        for source, flat in families.items():
            candidates.setdefault(source.field, []).append((rank_of[source], source, flat))
    if engine.span_name_sources:
        for rank, source in engine.span_name_sources:
            if name in source.span_names and _scope_ok(source.scopes, scope_name):
                candidates.setdefault(source.field, []).append((rank, source, source.constant))

    if typed:
        type_ = _classify_typed(attributes, typed, name, scope_name, scope_version, resource, engine)
    elif scope_name in engine.name_rule_scopes:
        type_ = classify(attributes, name, scope_name, scope_version, resource, engine.table)
    else:
        type_ = "SPAN"
    if not candidates:
        return _plain_span(type_, status_code, status_message)

    ctx = _Ctx(attributes, events, name)
    found: dict[str, Any] = {}      # view attributes read one to one
    reported: dict[str, int] = {}   # usage buckets as reported, by Langfuse key
    special: dict[str, Any] = {}    # fields the view derives its attributes from
    level_source: Source | None = None
    fast = engine.fast
    fast_family = engine.fast_family
    role_of = engine.role_of
    for field_name, bucket in candidates.items():
        if len(bucket) == 1:
            source = bucket[0][1]
            read = fast.get(source)
            if read is not None:   # one plain candidate (the common case): no general machinery
                value = read(bucket[0][2])
            elif source.prefix is not None and source in fast_family:
                value = READERS[source.read](bucket[0][2], source, ctx)
            else:
                value, source = _best(bucket, ctx, scope_name, field_name)
        elif field_name not in _MERGED_FIELDS and all(c[1] in fast for c in bucket):
            bucket.sort(key=_RANK)
            value = source = None
            for _, candidate, raw in bucket:
                value = fast[candidate](raw)
                if value is not None:
                    source = candidate
                    break
        else:
            value, source = _best(bucket, ctx, scope_name, field_name)
        if value is None or source is None:
            continue
        role, target = role_of[field_name]
        if role is _DIRECT:
            found[target] = value
        elif role is _BUCKET:
            reported[target] = value
        else:
            special[field_name] = value
            if field_name == "level":
                level_source = source
        if used is not None:
            used.add(source.convention)

    if engine.suppress:
        for rule in engine.suppress:
            if (marker := attributes.get(rule.key)).__class__ is str and marker in rule.values:
                if "usage" in rule.fields:
                    reported.clear()
                for bag in (found, special):
                    for field_name in [f for f in bag if any(_SUPPRESSED[n](f) for n in rule.fields)]:
                        del bag[field_name]

    if "operation" not in found and name and ("model" in found or "provider" in found):
        # The semconv names spans "{gen_ai.operation.name} {target}".
        first = name.split(" ", 1)[0]
        if first in _OPERATION_NAMES:
            found["operation"] = first
    if special:
        get = special.get
        if "input" not in found and (instructions := get("system_instructions")) is not None:
            # Beyond Langfuse (which shows none): instructions without messages are the input still.
            found["input"] = _prepend_instructions([], instructions)
        tools = get("tools")
        if tools is not None:
            found["input"] = _with_tools(found.get("input"), tools)
        usage, counts = _usage(reported, get("usage.other"), get("usage_details"))
        cost, cost_details = (_cost(special) if ("cost_details" in special or "cost.total" in special
                                                 or "cost.input" in special or "cost.output" in special)
                              else (None, {}))
        level = get("level")
        explicit_message = get("status_message")
        completion_start = get("completion_start_time")
        if completion_start is None and (offset := get("time_to_first_chunk")) is not None:
            completion_start = _first_chunk(offset, start_unix_nano)
    else:
        usage, counts = _usage(reported, None, None) if reported else (None, _NO_COUNTS)
        cost, cost_details = None, {}
        level = explicit_message = completion_start = None
    if status_code == Status.STATUS_CODE_ERROR and (level is None or (level_source and level_source.span_names)):
        level = "ERROR"   # an error outranks a span-name default, not a level the span states
    estimate = None
    if (not cost_details and type_ in MODEL_CALL_TYPES and engine.table.estimate_cost
            and (counts[0] is not None or counts[1] is not None)):
        estimate = prices.estimate(found.get("model"), found.get("provider"), start_unix_nano, counts[0],
                                   counts[1], counts[3], counts[5], counts[4])
        if estimate is not None:
            cost = estimate.total
            cost_details = {"input": estimate.input, "output": estimate.output, "total": estimate.total}

    return GenAIView(
        type=type_,
        input_tokens=counts[0],
        output_tokens=counts[1],
        total_tokens=counts[2],
        cached_tokens=counts[3],
        reasoning_tokens=counts[4],
        cost=cost,
        cost_details=cost_details,
        is_genai=type_ in MODEL_CALL_TYPES,
        usage_details=usage,
        cache_creation_tokens=counts[5],
        level=level or "DEFAULT",
        status_message=explicit_message if explicit_message is not None else (status_message or None),
        completion_start_time=completion_start,
        cost_estimate=estimate,
        **found,
    )


_NO_COUNTS: tuple[None, ...] = (None,) * 6
# How the view takes a field: one to one as one of its attributes, as a usage bucket, or derived.
_DIRECT, _BUCKET, _DERIVED = "direct", "bucket", "derived"
_VIEW_ATTRIBUTES = {"name": "name", "model": "model", "provider": "provider", "operation": "operation",
                    "input": "input", "output": "output", "trace_input": "trace_input",
                    "trace_output": "trace_output", "model_parameters": "model_parameters", "user_id": "user_id",
                    "session_id": "session_id", "trace_name": "trace_name", "tags": "tags", "metadata": "metadata",
                    "environment": "environment"}


def _role(field_name: str) -> tuple[str, str]:
    if field_name in _VIEW_ATTRIBUTES:
        return _DIRECT, _VIEW_ATTRIBUTES[field_name]
    if field_name.startswith("usage.") and field_name != "usage.other":
        return _BUCKET, field_name[6:]
    return _DERIVED, field_name


def _plain_span(type_: str, status_code: int, status_message: str) -> GenAIView:
    """The view of a span no convention describes (most spans of an application)."""
    return GenAIView(type_, None, None, None, None, None, None, None, None, None, {}, {}, None, None,
                     None, None, None, [], {}, type_ in MODEL_CALL_TYPES, None,
                     level="ERROR" if status_code == Status.STATUS_CODE_ERROR else "DEFAULT",
                     status_message=status_message or None)


_EVENT__PLAIN_READERS: dict[str, Callable[[Any], Any]] = {
    "text": _text, "string": _js_string, "count": _count, "positive_count": _positive, "usd": _usd,
    "content": _content, "content_nonempty": _content_nonempty, "mapping": _mapping, "params": _params,
    "tags": _tags, "level": _level, "time": iso_time, "offset": _offset, "environment": _environment,
    "usage_details": _usage_details, "cost_details": _cost_details,
}

_EVENT_READERS: dict[str, Reader] = {"content": _event_attribute, "event_messages": _event_messages,
                                     "event_choices": _event_choices, "event_attributes": _event_whole}


def _read(source: Source, raw: Any, ctx: _Ctx) -> Any:
    """One source's value, or None when it is unusable here."""
    if source.when is not None and _text(ctx.attributes.get(source.when[0])) != source.when[1]:
        return None
    if source.compose:
        return _compose(source, ctx)
    if source.events:
        return _EVENT_READERS[source.read](raw, source, ctx)
    if source.path:
        value: Any = ctx.json(source.key) if source.key is not None else raw
        for step in source.path:
            if not isinstance(value, dict):
                return None
            value = value.get(step)
        if value is None:
            return None
        raw = value
    value = READERS[source.read](raw, source, ctx)
    if value is None:
        return None
    if source.pick is not None and isinstance(value, dict) and source.pick in value:
        value = _content(value[source.pick])
    if source.values is not None and source.read != "operation":
        value = source.values.get(value) if isinstance(value, str) else None
    if source.prepend is not None and isinstance(value, str):
        head = _text(ctx.attributes.get(source.prepend[0]))
        if head:
            value = head + source.prepend[1] + value
    if source.unit != 1.0 and isinstance(value, float):
        value *= source.unit
    if source.system_instructions:
        instructions = ctx.attributes.get("gen_ai.system_instructions")
        if instructions is not None:
            value = _prepend_instructions(value, _content(instructions))
    return value


def _best(bucket: list[tuple[int, Source, Any]], ctx: _Ctx, scope_name: str,
          field_name: str) -> tuple[Any, Source | None]:
    """The best-ranked candidate that reads as a usable value (merged fields: all of them)."""
    if len(bucket) > 1:
        bucket.sort(key=itemgetter(0))
    if field_name in _MERGED_FIELDS:
        out: dict[str, Any] = {}
        first: Source | None = None
        for _, source, raw in reversed(bucket):
            if _scope_ok(source.scopes, scope_name) and isinstance(value := _read(source, raw, ctx), dict):
                out.update(value)
                first = source
        return out or None, first
    for i, (_, source, raw) in enumerate(bucket):
        if source.scopes is not None and not _scope_ok(source.scopes, scope_name):
            continue
        value = _read(source, raw, ctx)
        if value is None:
            continue
        if field_name in _DICT_FIELDS and isinstance(value, dict):
            # Sources of the same priority merge (the first in the table winning a key).
            merged = dict(value)
            for _, other, other_raw in bucket[i + 1:]:
                if other.priority != source.priority:
                    break
                if _scope_ok(other.scopes, scope_name) and isinstance(extra := _read(other, other_raw, ctx), dict):
                    merged = {**extra, **merged}
            return merged, source
        return value, source
    return None, None


def _compose(source: Source, ctx: _Ctx) -> dict[str, Any] | None:
    """A mapping built from several keys (members absent: null), other JSON objects merged over it."""
    attributes = ctx.attributes
    if source.require and not all(k in attributes for k in source.require):
        return None
    out: dict[str, Any] = {}
    for member_name, options in source.compose:
        value = None
        for option in options:
            if option.key is None:
                value = option.constant
                break
            if option.key in attributes:
                value = _read(option, attributes[option.key], ctx)
                if value is not None or not option.path:
                    break
        out[member_name] = value
    for key in source.merge:
        extra = _params(attributes.get(key))
        if extra:
            out.update(extra)
    return out


def _add_event_candidates(engine: _Engine, events: Sequence[Span.Event], candidates: Candidates) -> None:
    """Span events a source names, in span order, grouped by source."""
    found: dict[Source, tuple[int, list[Span.Event]]] = {}
    sources_of = engine.events
    for event in events:
        for rank, source in sources_of.get(event.name, ()):
            entry = found.get(source)
            if entry is None:
                found[source] = (rank, [event])
            else:
                entry[1].append(event)
    for source, (rank, matched) in found.items():
        candidates.setdefault(source.field, []).append((rank, source, matched))


# --- helpers of the view ---------------------------------------------------------------------

_MAX_PATH = 12   # segments below a message family key; real ones use at most 7


def _is_index(segment: str) -> bool:
    return segment.isascii() and segment.isdigit()


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


def _prepend_instructions(input_: Any, instructions: Any) -> Any:
    """System instructions as a first {role: system, content} message of a message list that has
    none (Langfuse's shape: the text parts joined by newlines)."""
    if instructions is None or not isinstance(input_, list):
        return input_
    if any(isinstance(m, dict) and m.get("role") == "system" for m in input_):
        return input_
    if isinstance(instructions, list):
        content = "\n".join(str(p["content"]) if isinstance(p, dict) and p.get("content") else
                            (p if isinstance(p, str) else orjson.dumps(_plain(p)).decode()) for p in instructions)
    elif isinstance(instructions, str):
        content = instructions
    else:
        content = orjson.dumps(_plain(instructions)).decode()
    return [{"role": "system", "content": content}, *input_]


def _with_tools(input_: Any, tools: list[Any]) -> Any:
    """Tool definitions join the input, as Langfuse shows them: {messages, tools}."""
    if isinstance(input_, list):
        return {"messages": input_, "tools": tools}
    if isinstance(input_, dict):
        existing = input_.get("tools")
        return {**input_, "tools": (existing + tools) if isinstance(existing, list) else tools}
    if input_ is None:
        return {"tools": tools}
    if isinstance(input_, str):
        return {"prompt": input_, "tools": tools}
    return input_


def _usage(reported: dict[str, int], other: dict[str, int] | None,
           blob: dict[str, int] | None) -> tuple[dict[str, int] | None, tuple[int | None, ...]]:
    """Langfuse's usage buckets, and the counts as reported (input, output, total, cache reads,
    reasoning, cache creation)."""
    if blob:
        details = dict(blob)
        # The blob's input / output exclude its buckets: add them back for the reported counts.
        reported = dict(blob)
        for side in ("input", "output"):
            if side in details:
                reported[side] = details[side] + sum(n for k, n in details.items() if k != side and _root_of(k) == side)
    elif reported or other:
        details = {**other, **reported} if other else dict(reported)
        # Each count less the buckets within it (a bucket absent itself counts as its own buckets).
        if any(k not in _PLAIN_COUNTS for k in reported):
            for bucket in ("input_cache_creation", "input", "output"):
                if bucket in reported:
                    within = 0
                    for child in _CHILDREN[bucket]:
                        if child in reported:
                            within += reported[child]
                        else:
                            for grandchild in _CHILDREN.get(child, ()):
                                within += reported.get(grandchild, 0)
                    details[bucket] = max(reported[bucket] - within, 0)
    else:
        return None, (None,) * 6
    if "total" not in details and details:
        total = sum(details.values())   # as Langfuse does when no total is given
        if total <= _INT64_MAX:
            details["total"] = total
    input_tokens = reported.get("input")
    output_tokens = reported.get("output")
    total = reported.get("total")
    if total is None and input_tokens is not None and output_tokens is not None:
        total = _count(input_tokens + output_tokens)   # None past int64, like a given total
    return details, (input_tokens, output_tokens, total, _alias(reported, _CACHED), _alias(reported, _REASONING),
                     _alias(reported, _CREATION))


_PLAIN_COUNTS = frozenset(("input", "output", "total"))   # nothing to take out of these
# Spellings of the reported buckets Aperture records, as Langfuse's own keys and as SDKs send them.
_CACHED = ("input_cached_tokens", "input_cache_read", "cache_read_input_tokens", "input_cached", "cached_tokens")
_REASONING = ("output_reasoning_tokens", "output_reasoning", "reasoning_tokens")
_CREATION = ("input_cache_creation", "cache_creation_input_tokens", "input_cache_write")


def _alias(reported: dict[str, int], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        if key in reported:
            return reported[key]
    return None


# Buckets within each count (USAGE_WITHIN inverted).
_CHILDREN: dict[str, tuple[str, ...]] = {}
for _child, _parent in USAGE_WITHIN.items():
    _CHILDREN[_parent] = (*_CHILDREN.get(_parent, ()), _child)
_CHILDREN.setdefault("input_cache_creation", ())


def _root_of(bucket: str) -> str | None:
    while bucket in USAGE_WITHIN:
        bucket = USAGE_WITHIN[bucket]
    return bucket if bucket in ("input", "output") else None


def _cost(picked: dict[str, Any]) -> tuple[float | None, dict[str, float]]:
    """The total cost and Langfuse's cost details: the cost_details blob, else the cost attributes;
    without a total, the sum of the parts (as Langfuse computes it)."""
    blob = picked.get("cost_details")
    if blob:
        details = dict(blob)
    else:
        details = {}
        for field_name, key in (("cost.input", "input"), ("cost.output", "output"), ("cost.total", "total")):
            if (amount := picked.get(field_name)) is not None:
                details[key] = amount
    cost = details.get("total")
    if cost is None and details:
        cost = _usd(sum(details.values()))   # None when the sum overflows to infinity
        if cost is not None:
            details["total"] = cost
    return cost, details


def rfc3339(unix_nano: int, digits: int = 6) -> str:
    """UTC time as "2026-03-09T22:25:37.430509Z", with 6 (micro) or 9 (nano) fractional digits."""
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    head = _SECONDS.get(seconds)
    if head is None:   # the spans of a trace share their seconds: format each once
        t = time.gmtime(seconds)
        head = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS[seconds] = head
    return f"{head}{nanos:09d}Z" if digits == 9 else f"{head}{nanos // 1000:06d}Z"


_SECONDS: dict[int, str] = {}


def _first_chunk(offset: float, start_nano: int) -> str | None:
    """When the first token came, from an offset (seconds) after the span's start."""
    delta = offset * 1_000_000_000   # inf when a finite but absurd offset overflows: skipped, never rounded
    if delta < _MAX_UNIX_NANO and (nanos := start_nano + round(delta)) < _MAX_UNIX_NANO:
        return rfc3339(nanos)
    return None


# --- the keys the view reads, as older readers of this module (tests/test_format_fuzz.py) ask ----

_COMPAT_FIELDS = {"params": "parameter_blobs"}


def __getattr__(name: str) -> Any:
    """`_SOURCES` (key → (field, rank)), `_FAMILIES` ((prefix, field, rank)), `_PARAMETERS` and
    `_EVENT_NAMES`, derived from the table in force (they were hard-coded lists once)."""
    table = conventions.active()
    if name == "_SOURCES":
        return {s.key: (_COMPAT_FIELDS.get(s.read, s.field), rank) for rank, s in enumerate(table.sources)
                if s.key is not None}
    if name == "_FAMILIES":
        return tuple((s.prefix, s.field, rank) for rank, s in enumerate(table.sources) if s.prefix is not None)
    if name == "_PARAMETERS":
        return {s.prefix + p: p for s in table.sources if s.prefix and s.read == "flat_params"
                for p in ("temperature", "max_tokens", "top_p", "top_k", "stop_sequences", "seed", "stream")}
    if name == "_EVENT_NAMES":
        return frozenset(n for s in table.sources for n in s.events)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
