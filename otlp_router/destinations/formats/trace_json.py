"""Per-trace JSON in the Langfuse trace model (the S3 layout of OpenRouter Broadcast).

One document per trace: the trace fields, then its observations (one per span)
sorted by start time then id. The document is meant for Athena and other JSON
engines, so its shape never depends on the data: every key is always present
with one JSON type (strings or null for scalars, objects for maps, a list for
tags), times are ISO 8601 UTC strings with microseconds, and there is no NaN or
Infinity (orjson writes those as null). Content is never invented: input and
output are null when the spans carry none (privacy mode removes it upstream).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_router.model.attributes import value_of
from otlp_router.model.genai import GenAIView, view


@dataclass(frozen=True, slots=True)
class SpanRef:
    """One span with what travels with it."""

    span: Span
    resource: dict[str, Any]   # resource attributes as python values
    scope_name: str
    scope_version: str


def rfc3339(unix_nano: int, digits: int = 6) -> str:
    """UTC time as "2026-03-09T22:25:37.430509Z", with 6 (micro) or 9 (nano) fractional digits."""
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    t = time.gmtime(seconds)
    fraction = f"{nanos:09d}" if digits == 9 else f"{nanos // 1000:06d}"
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{fraction}Z")


# Span attributes read here besides the GenAI view, in one pass per span.
_COMPLETION_START = "langfuse.observation.completion_start_time"   # ISO time (Langfuse SDKs JSON-quote it)
_TIME_TO_FIRST_CHUNK: tuple[tuple[str, int], ...] = (            # offset from the start, nanoseconds per unit
    ("gen_ai.response.time_to_first_chunk", 1_000_000_000),       # OTel GenAI, seconds
    ("ai.response.msToFirstChunk", 1_000_000),                    # Vercel AI SDK
    ("trace.metadata.openrouter.time_to_first_token_ms", 1_000_000),   # OpenRouter Broadcast
)
_LEVEL = "langfuse.observation.level"
_STATUS_MESSAGE = "langfuse.observation.status_message"
_ENVIRONMENT = "langfuse.environment"
_SPAN_KEYS = frozenset((_COMPLETION_START, _LEVEL, _STATUS_MESSAGE, _ENVIRONMENT,
                        *(key for key, _ in _TIME_TO_FIRST_CHUNK)))
_RESOURCE_ENVIRONMENT = ("deployment.environment.name", "deployment.environment")
_LEVELS = frozenset(("DEBUG", "DEFAULT", "WARNING", "ERROR"))
_MAX_UNIX_NANO = 2**64   # span times are fixed64; an absurd offset must not reach past them


def trace_document(trace_id: bytes, spans: Sequence[SpanRef]) -> dict[str, Any]:
    """The Langfuse-model document of one trace's spans (any order, repeats allowed)."""
    # A span delivered twice (client retry, spool replay) is one observation.
    unique = {ref.span.span_id: ref for ref in spans}
    ordered = sorted(unique.values(), key=lambda ref: (ref.span.start_time_unix_nano, ref.span.span_id))
    views = [view(ref.span, ref.resource) for ref in ordered]
    observations: list[dict[str, Any]] = []
    environments: list[str | None] = []
    for ref, v in zip(ordered, views, strict=True):
        observation, environment = _observation(ref, v)
        observations.append(observation)
        environments.append(environment)

    # The root is the earliest span whose parent is not among these (the earliest span if all
    # have one); trace-level values are looked for in the root first, then by start time.
    root = next((i for i, ref in enumerate(ordered)
                 if not ref.span.parent_span_id or ref.span.parent_span_id not in unique), 0)
    priority = [root, *range(root), *range(root + 1, len(views))] if views else []
    by_priority = [views[i] for i in priority]

    metadata: dict[str, Any] = {}
    for v in reversed(by_priority):   # applied last, the root wins a key
        metadata.update(v.metadata)

    # Trace input / output: the root's, else the earliest generation input and the latest generation output.
    generations = [v for v in views if v.type == "GENERATION"]
    input_ = _first(v.input for v in by_priority[:1] + generations)
    output = _first(v.output for v in by_priority[:1] + generations[::-1])

    name = _first(v.trace_name for v in by_priority)
    if name is None and ordered:
        name = ordered[root].span.name or None
    environment = _first(environments[i] for i in priority)

    return {
        "id": trace_id.hex(),
        "name": name,
        "timestamp": observations[0]["startTime"] if observations else None,   # the earliest start
        "environment": environment,
        "userId": _first(v.user_id for v in by_priority),
        "sessionId": _first(v.session_id for v in by_priority),
        "metadata": metadata,
        "tags": sorted({tag for v in views for tag in v.tags}),
        "input": input_,
        "output": output,
        "observations": observations,
    }


def _first(values: Iterable[Any]) -> Any:
    return next((value for value in values if value is not None), None)


def encode_document(document: dict[str, Any]) -> bytes:
    """UTF-8 JSON, no trailing newline; NaN and ±Infinity are written as null."""
    return orjson.dumps(document)


def _observation(ref: SpanRef, v: GenAIView) -> tuple[dict[str, Any], str | None]:
    """The observation of a span, and the deployment environment the span names."""
    span = ref.span
    extra: dict[str, Any] = {}
    for kv in span.attributes:
        if kv.key in _SPAN_KEYS:
            extra[kv.key] = value_of(kv.value)

    level = extra.get(_LEVEL)
    level = level.upper() if isinstance(level, str) and level.upper() in _LEVELS else "DEFAULT"
    if span.status.code == Status.STATUS_CODE_ERROR:
        level = "ERROR"
    status_message = span.status.message or extra.get(_STATUS_MESSAGE)

    usage: dict[str, int] = {}
    for key, count in (("input", v.input_tokens), ("output", v.output_tokens), ("total", v.total_tokens),
                       ("cached", v.cached_tokens), ("reasoning", v.reasoning_tokens)):
        if count is not None:
            usage[key] = count

    environments = (extra.get(_ENVIRONMENT), *map(ref.resource.get, _RESOURCE_ENVIRONMENT))
    environment = next((value for value in environments if isinstance(value, str) and value), None)
    start = span.start_time_unix_nano
    return {
        "id": span.span_id.hex(),
        "traceId": span.trace_id.hex(),
        "parentObservationId": span.parent_span_id.hex() or None,
        "type": v.type,
        "name": span.name,
        "startTime": rfc3339(start),
        "endTime": rfc3339(span.end_time_unix_nano) if span.end_time_unix_nano else None,
        "completionStartTime": _completion_start(extra, start),
        "model": v.model,
        "modelParameters": v.model_parameters,
        "input": v.input,
        "output": v.output,
        "usageDetails": usage,
        "costDetails": {key: float(amount) for key, amount in v.cost_details.items()},
        "metadata": v.metadata,
        "level": level,
        "statusMessage": status_message if isinstance(status_message, str) and status_message else None,
    }, environment


def _completion_start(extra: dict[str, Any], start_nano: int) -> str | None:
    """When the first token came: given as a time, or as an offset from the span's start."""
    given = _iso_time(extra.get(_COMPLETION_START))
    if given is not None:
        return given
    for key, unit in _TIME_TO_FIRST_CHUNK:
        offset = _offset(extra.get(key))
        if offset is None:
            continue
        delta = offset * unit   # inf when a finite but absurd offset overflows: skipped, never rounded
        if delta < _MAX_UNIX_NANO and (nanos := start_nano + round(delta)) < _MAX_UNIX_NANO:
            return rfc3339(nanos)
    return None


def _iso_time(value: Any) -> str | None:
    """An ISO 8601 time (bare or JSON-quoted, naive meaning UTC) in the document's format."""
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
