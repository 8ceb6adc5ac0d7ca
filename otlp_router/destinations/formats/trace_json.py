"""Per-trace JSON in the Langfuse trace model (the S3 layout of OpenRouter Broadcast).

One document per trace: the trace fields, then its observations (one per span)
sorted by start time then id. The document is meant for Athena and other JSON
engines, so its shape never depends on the data: every key is always present
with one JSON type (strings or null for scalars, objects for maps, a list for
tags), times are ISO 8601 UTC strings with microseconds, and there is no NaN or
Infinity (orjson writes those as null). Content is never invented: input and
output are null when the spans carry none (privacy mode removes it upstream).

Every field is what Langfuse's OTel ingestion would make of the same spans (the canonical view,
otlp_router/model/genai.py, reads the conventions table in Langfuse's priorities), so a document
loaded into Langfuse counts nothing twice: `usageDetails` holds Langfuse's buckets, `input`
without cache reads and cache creation, `output` without reasoning and audio, each of those its
own key (`input_cached_tokens`, `input_cache_creation`, `output_reasoning_tokens`, ...) and
`total` the given total or the sum of the buckets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otlp_router.model import conventions, genai, prices
from otlp_router.model.attributes import to_dict, value_of
from otlp_router.model.genai import GenAIView, _plain, _view, attributes_of, rfc3339

__all__ = ["KeptSpan", "SpanRef", "encode_document", "encode_trace", "rfc3339", "span_refs", "trace_document"]


@dataclass(frozen=True, slots=True)
class SpanRef:
    """One span with what travels with it."""

    span: Span
    resource: dict[str, Any]   # resource attributes as python values
    scope_name: str
    scope_version: str


@dataclass(frozen=True, slots=True)
class LogRef:
    """One log record of a trace with what travels with it."""

    record: LogRecord
    resource: dict[str, Any]
    scope_name: str
    scope_version: str


def joined(spans: Sequence[SpanRef], logs: Sequence[LogRef]) -> tuple[list[SpanRef], list[LogRef]]:
    """Log records joined to their spans: each becomes a span event of the span its span id names
    (on a copy: the spooled span stays as it came), so the GenAI events the OTel conventions now
    send as logs (`gen_ai.client.inference.operation.details` with the prompts and completions,
    the older per-message events) read as the same events on the span do. Returns the spans and the
    records no span of the trace took (no span id, or their span not among these)."""
    if not logs:
        return list(spans), []
    unique = list({log.record.SerializeToString(deterministic=True): log for log in logs}.values())   # replays
    span_ids = {ref.span.span_id for ref in spans}
    by_span: dict[bytes, list[LogRef]] = {}
    orphans = []
    for log in unique:
        if log.record.span_id in span_ids:
            by_span.setdefault(log.record.span_id, []).append(log)
        else:
            orphans.append(log)
    out = []
    for ref in spans:
        mine = by_span.get(ref.span.span_id)
        if mine:
            span = Span()
            span.CopyFrom(ref.span)
            span.events.extend(_as_event(log.record) for log in sorted(mine, key=lambda log: _log_time(log.record)))
            ref = SpanRef(span, ref.resource, ref.scope_name, ref.scope_version)
        out.append(ref)
    return out, orphans


def _log_time(record: LogRecord) -> int:
    return record.time_unix_nano or record.observed_time_unix_nano


def _event_name(record: LogRecord) -> str:
    return record.event_name or next((kv.value.string_value for kv in record.attributes if kv.key == "event.name"), "")


def _as_event(record: LogRecord) -> Span.Event:
    """A log record as the span event it stands for: its attributes, then its body's members (the
    older GenAI events carry the message in a map body) or the body itself as `body`."""
    event = Span.Event(name=_event_name(record), time_unix_nano=_log_time(record))
    keys = set()
    for kv in record.attributes:
        if kv.key != "event.name":
            event.attributes.append(kv)
            keys.add(kv.key)
    body = record.body
    if body.HasField("kvlist_value"):
        event.attributes.extend(kv for kv in body.kvlist_value.values if kv.key not in keys)
    elif body.WhichOneof("value") is not None and "body" not in keys:
        event.attributes.add(key="body").value.CopyFrom(body)
    return event


_LEVELS = ((17, "ERROR"), (13, "WARNING"), (9, "DEFAULT"), (1, "DEBUG"))   # OTel severity numbers


def _event_observation(trace_id: bytes, log: LogRef, index: int, resource: dict[str, str]) -> dict[str, Any]:
    """A log record no span took, as an EVENT observation of its trace (so it is not lost): under
    its span when it names one, its body as the input, its attributes (stringified) as metadata."""
    record = log.record
    own = attributes_of(record.attributes)
    level = next((name for floor, name in _LEVELS if record.severity_number >= floor), "DEFAULT")
    return {
        "id": f"{record.span_id.hex() or trace_id.hex()[:16]}-event-{index}",
        "traceId": trace_id.hex(),
        "parentObservationId": record.span_id.hex() or None,
        "type": "EVENT",
        "name": _event_name(record) or "log",
        "startTime": rfc3339(_log_time(record)),
        "endTime": None,
        "completionStartTime": None,
        "model": None,
        "modelParameters": {},
        "input": _plain(value_of(record.body)) if record.body.WhichOneof("value") is not None else None,
        "output": None,
        "usageDetails": {},
        "costDetails": {},
        "metadata": {"attributes": {k: v if v.__class__ is str else _stringified(v) for k, v in own.items()},
                     "resourceAttributes": resource,
                     "scope": {"name": log.scope_name, "version": log.scope_version}},
        "environment": "default",
        "level": level,
        "statusMessage": None,
    }


# Metadata keys Langfuse reserves for where a span came from (they win over custom metadata of
# the same name): its unmapped attributes (no content, nothing a field already holds; stringified),
# its resource attributes (stringified, so a JSON engine reads one type) and its instrumentation scope.
_LANGFUSE_SDK_SCOPE = "langfuse-sdk"   # Langfuse leaves these spans' attributes out of their metadata


def trace_document(trace_id: bytes, spans: Sequence[SpanRef], logs: Sequence[LogRef] = ()) -> dict[str, Any]:
    """The Langfuse-model document of one trace's spans (any order, repeats allowed) and its log
    records (see `joined`)."""
    spans, orphans = joined(spans, logs)
    # A span delivered twice (client retry, spool replay) is one observation.
    unique = {ref.span.span_id: ref for ref in spans}
    ordered = sorted(unique.values(), key=lambda ref: (ref.span.start_time_unix_nano, ref.span.span_id))
    table = conventions.active()
    skip = _shown_keys(table)
    resources: dict[int, dict[str, str]] = {}
    observations: list[dict[str, Any]] = []
    views: list[GenAIView] = []
    for ref in ordered:
        span = ref.span
        own = attributes_of(span.attributes)
        status = span.status
        v = _view({**ref.resource, **own} if ref.resource else own, span.events, span.name, ref.scope_name,
                  ref.scope_version, ref.resource, status.code, status.message, span.start_time_unix_nano, None)
        views.append(v)
        resource = resources.get(id(ref.resource))
        if resource is None:
            resource = resources[id(ref.resource)] = {k: _stringified(val) for k, val in ref.resource.items()}
        observations.append(_observation(ref, v, own, resource, table, skip))

    # The root is the earliest span whose parent is not among these (the earliest span if all
    # have one); trace-level values are looked for in the root first, then by start time.
    root = next((i for i, ref in enumerate(ordered)
                 if not ref.span.parent_span_id or ref.span.parent_span_id not in unique), 0)
    priority = [root, *range(root), *range(root + 1, len(views))] if views else []
    by_priority = [views[i] for i in priority]

    metadata: dict[str, Any] = {}
    for v in reversed(by_priority):   # applied last, the root wins a key
        metadata.update(v.metadata)
    if observations:   # where the root came from, as Langfuse's trace metadata says
        for key in ("attributes", "resourceAttributes", "scope"):
            if key in observations[root]["metadata"]:
                metadata[key] = observations[root]["metadata"][key]

    # Trace input / output: the trace's own (langfuse.trace.*), else the root's, else the earliest
    # generation input and the latest generation output.
    generations = [v for v in views if v.type == "GENERATION"]
    input_ = _first(v.trace_input for v in by_priority)
    if input_ is None:
        input_ = _first(v.input for v in by_priority[:1] + generations)
    output = _first(v.trace_output for v in by_priority)
    if output is None:
        output = _first(v.output for v in by_priority[:1] + generations[::-1])

    name = _first(v.trace_name for v in by_priority)
    if name is None and observations:
        name = observations[root]["name"] or None
    environment = next((v.environment for v in by_priority if v.environment != "default"), "default")
    if orphans:
        for i, log in enumerate(orphans):
            observations.append(_event_observation(trace_id, log, i, {k: _stringified(val)
                                                                      for k, val in log.resource.items()}))
        observations.sort(key=lambda o: o["startTime"])   # stable: spans of one microsecond keep their order

    return {
        "id": trace_id.hex(),
        "name": name,
        "timestamp": observations[0]["startTime"] if observations else None,   # the earliest start
        "environment": environment if views else None,
        "userId": _first(v.user_id for v in by_priority),
        "sessionId": _first(v.session_id for v in by_priority),
        "metadata": metadata,
        "tags": sorted({tag for v in views for tag in v.tags}),
        "input": input_,
        "output": output,
        "observations": observations,
    }


# A span as the trace assembler keeps it: its bytes, its Resource message's bytes and its
# instrumentation scope's name and version.
KeptSpan = tuple[bytes, bytes, str, str]


def encode_trace(trace_id: bytes, spans: Sequence[KeptSpan], logs: Sequence[LogRef] = ()) -> bytes:
    """`encode_document(trace_document(...))` of spans kept as bytes: written by the native core
    from the bytes (native/src/genai, the same document to the byte), or by Python when a span
    needs what only Python can say, or log records are to join their spans."""
    if not logs:
        document = genai.native_table().trace_document(trace_id, spans)
        if document is not None:
            return document
    return encode_document(trace_document(trace_id, span_refs(spans), logs))


def span_refs(spans: Sequence[KeptSpan]) -> list[SpanRef]:
    """Kept spans decoded (each resource once)."""
    resources: dict[bytes, dict[str, Any]] = {}
    refs = []
    for wire, resource_wire, name, version in spans:
        resource = resources.get(resource_wire)
        if resource is None:
            resource = resources[resource_wire] = to_dict(Resource.FromString(resource_wire).attributes)
        refs.append(SpanRef(Span.FromString(wire), resource, name, version))
    return refs


def _first(values: Iterable[Any]) -> Any:
    return next((value for value in values if value is not None), None)


def encode_document(document: dict[str, Any]) -> bytes:
    """UTF-8 JSON, no trailing newline; NaN and ±Infinity are written as null."""
    return orjson.dumps(document)


def _stringified(value: Any) -> str:
    """An attribute value as Langfuse's metadata holds it: strings as they are, the rest as JSON."""
    if value.__class__ is str:
        return value
    try:
        return orjson.dumps(_plain(value)).decode()
    except orjson.JSONEncodeError:
        return ""


_SHOWN: tuple[conventions.Table, dict[str, bool]] | None = None
_MAX_SHOWN = 20_000


def _shown_keys(table: conventions.Table) -> dict[str, bool]:
    """Per attribute key: whether metadata.attributes shows it (remembered per table)."""
    global _SHOWN
    if _SHOWN is None or _SHOWN[0] is not table:
        _SHOWN = (table, {})
    return _SHOWN[1]


def _decide_shown(key: str, table: conventions.Table, shown: dict[str, bool]) -> bool:
    """The span attributes no field reads: content is left out (privacy's to keep), and so is every
    attribute the table maps (model, usage, ids, the metadata families...: in their own fields)."""
    mapped = _mapped(table)
    hidden = table.is_content_key(key) or key in mapped[0] or key.startswith(mapped[1])
    if len(shown) < _MAX_SHOWN:   # past the bound, decided each time
        shown[key] = not hidden
    return not hidden


_MAPPED: tuple[conventions.Table, tuple[frozenset[str], tuple[str, ...]]] | None = None


def _mapped(table: conventions.Table) -> tuple[frozenset[str], tuple[str, ...]]:
    """The keys and prefixes the table's sources and type rules read."""
    global _MAPPED
    if _MAPPED is None or _MAPPED[0] is not table:
        keys = frozenset(k for s in table.sources for k in s.keys()) | table.type_keys
        prefixes = tuple(dict.fromkeys(s.prefix for s in table.sources if s.prefix))
        _MAPPED = (table, (keys, prefixes))
    return _MAPPED[1]


def _observation(ref: SpanRef, v: GenAIView, own: dict[str, Any], resource: dict[str, str],
                 table: conventions.Table, skip: dict[str, bool]) -> dict[str, Any]:
    """The observation of a span."""
    span = ref.span
    metadata = dict(v.metadata)
    if not ref.scope_name.startswith(_LANGFUSE_SDK_SCOPE):
        shown = skip.get
        attributes: dict[str, str] = {}
        for k, val in own.items():
            flag = shown(k)
            if flag is None:
                flag = _decide_shown(k, table, skip)
            if flag:
                attributes[k] = val if val.__class__ is str else _stringified(val)
        metadata["attributes"] = attributes
    metadata["resourceAttributes"] = resource
    metadata["scope"] = {"name": ref.scope_name, "version": ref.scope_version}
    if (estimate := v.cost_estimate) is not None:
        # costDetails came from the price table, not the span: say so, and which prices.
        metadata["costEstimate"] = {"source": prices.source(), "model": estimate.model, "provider": estimate.provider}
    start = span.start_time_unix_nano
    return {
        "id": span.span_id.hex(),
        "traceId": span.trace_id.hex(),
        "parentObservationId": span.parent_span_id.hex() or None,
        "type": v.type,
        "name": v.name or span.name,
        "startTime": rfc3339(start),
        "endTime": rfc3339(span.end_time_unix_nano) if span.end_time_unix_nano else None,
        "completionStartTime": v.completion_start_time,
        "model": v.model,
        "modelParameters": v.model_parameters,
        "input": v.input,
        "output": v.output,
        "usageDetails": v.usage_details or {},
        "costDetails": {key: float(amount) for key, amount in v.cost_details.items()},
        "metadata": metadata,
        "environment": v.environment,
        "level": v.level,
        "statusMessage": v.status_message if isinstance(v.status_message, str) and v.status_message else None,
    }




def __getattr__(name: str) -> Any:
    """`_SPAN_KEYS` and `_RESOURCE_ENVIRONMENT`, the keys behind the observation's own fields,
    derived from the table for older readers of this module (tests/test_format_fuzz.py)."""
    table = conventions.active()
    if name == "_SPAN_KEYS":
        return frozenset(s.key for s in table.sources if s.key and s.field in (
            "level", "status_message", "completion_start_time", "time_to_first_chunk", "environment"))
    if name == "_RESOURCE_ENVIRONMENT":
        return tuple(s.key for s in table.sources if s.key and s.field == "environment")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
