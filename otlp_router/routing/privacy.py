"""Privacy mode: remove prompt and completion content, keep everything else
(usage, cost, timing, model, ids, custom metadata).

What is content is the conventions table's (otlp_router/model/conventions.yaml plus router.yaml's
entries): every key, prefix and span event it marks as content goes, on every span, log record and
resource. On a span the table recognises as a model call (type GENERATION or EMBEDDING) it goes
further, as allow-list redaction does: every attribute the table does not name as non-content goes
too, so content under a key no convention lists yet (Logfire's older `request_data`, a new SDK's
own) cannot survive on the spans that carry prompts. Counts the table reads from inside a content
value (Genkit's usage in `genkit:output`, ADK's cached count, ...) are kept as the plain GenAI
attributes they stand for (gen_ai.usage.*), so usage survives its content.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.message import Message

from otlp_router.model import conventions
from otlp_router.model.attributes import set_value, value_of
from otlp_router.model.conventions import MODEL_CALL_TYPES, Table
from otlp_router.model.genai import _content, _count, _plain, _scope_ok, _text, classify_cached
from otlp_router.model.signals import Signal

# The plain attribute a field's value is kept under when its source is taken out as content.
_SALVAGED_AS = {
    "usage.input": "gen_ai.usage.input_tokens",
    "usage.output": "gen_ai.usage.output_tokens",
    "usage.total": "gen_ai.usage.total_tokens",
    "usage.input_cached_tokens": "gen_ai.usage.cache_read.input_tokens",
    "usage.input_cache_creation": "gen_ai.usage.cache_creation.input_tokens",
    "usage.output_reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
    # A model key no type rule looks at: keeping the model must not change what the span is.
    "model": "llm.response.model",
    "model_parameters": "llm.invocation_parameters",   # as a JSON object
}


def may_hold_content(wire: bytes) -> bool:
    """False when the protobuf bytes contain none of the table's needles: then the request holds
    no content and no model call, and is passed as is."""
    return any(needle in wire for needle in conventions.active().needles)


def _strip(attributes: Any, table: Table) -> int:
    decided = table.decided
    decide = table.decide
    drop = [i for i, kv in enumerate(attributes) if (decided.get(kv.key) or decide(kv.key))[0]]
    for i in reversed(drop):
        del attributes[i]
    return len(drop)


def strip_content(message: Message, signal: Signal) -> int:
    """Remove content attributes and content-carrying events (span events, and
    GenAI event log records' bodies) in place; returns how many were removed."""
    table = conventions.active()
    removed = 0
    logs = signal.name == "logs"
    traces = signal.name == "traces"
    for rs in getattr(message, signal.resource_field):
        typed_resource: dict[str, Any] = {}
        rule_resource: dict[str, Any] = {}
        if traces:
            typed_resource = _typed(rs.resource.attributes, table)
            if table.resource_keys:
                rule_resource = {kv.key: value_of(kv.value) for kv in rs.resource.attributes
                                 if kv.key in table.resource_keys}
        removed += _strip(rs.resource.attributes, table)
        for ss in getattr(rs, signal.scope_field):
            for item in getattr(ss, signal.items_field):
                if traces:
                    removed += _strip_span(item, table, typed_resource, rule_resource, ss.scope.name,
                                           ss.scope.version)
                    if len(item.events):
                        removed += _strip_events(item.events, table)
                    continue
                for attributes in signal.attribute_lists(item):
                    removed += _strip(attributes, table)
                if logs:
                    removed += _strip_event_record(item, table)
    return removed


def _typed(attributes: Any, table: Table) -> dict[str, Any]:  # of a resource
    """The attributes a type rule looks at, as Python values (the few there are)."""
    type_keys = table.type_keys
    return {kv.key: value_of(kv.value) for kv in attributes if kv.key in type_keys}


def _strip_span(span: Any, table: Table, typed_resource: dict[str, Any], rule_resource: dict[str, Any],
                scope_name: str, scope_version: str) -> int:
    attributes = span.attributes
    get = table.decided.get
    # C-level passes over the (remembered) decisions; Python only for keys not seen before.
    decisions = [get(kv.key) for kv in attributes]
    if None in decisions:
        decisions = [d or table.decide(kv.key) for d, kv in zip(decisions, attributes)]
    drop = [i for i, d in enumerate(decisions) if d[0]]
    not_kept = [i for i, d in enumerate(decisions) if not d[1]]
    # Content is never kept: when nothing else is unkept, what the span is does not matter.
    if len(not_kept) != len(drop):
        typed_at = [i for i, d in enumerate(decisions) if d[2]]
        if typed_at or typed_resource:   # a model call is always named by some type key
            typed = {attributes[i].key: value_of(attributes[i].value) for i in typed_at}
            if typed_resource:
                typed = {**typed_resource, **typed}
            if classify_cached(typed, span.name, scope_name, scope_version, rule_resource,
                               table) in MODEL_CALL_TYPES:
                drop = not_kept
    if not drop:
        return 0
    salvage = table.salvage
    if salvage and any(attributes[i].key in salvage for i in drop):
        _salvage(span, [attributes[i] for i in drop], table, scope_name)
        # Salvaged attributes are appended: the positions to drop are unchanged.
    for i in reversed(drop):
        del attributes[i]
    return len(drop)


def _salvage(span: Any, dropped: list[Any], table: Table, scope_name: str) -> None:
    """Keep what the table reads from inside content values as the plain attributes it stands for."""
    present = {kv.key for kv in span.attributes}
    found: dict[str, Any] = {}
    for kv in dropped:
        sources = table.salvage.get(kv.key)
        if not sources:
            continue
        parsed = _content(value_of(kv.value))
        for source in sources:
            target = _SALVAGED_AS.get(source.field)
            if target is None or target in present or target in found or not _scope_ok(source.scopes, scope_name):
                continue
            if source.when is not None:
                continue   # conditions on other attributes: not worth reading here
            value = parsed
            for step in source.path:
                value = value.get(step) if isinstance(value, dict) else None
            if source.field == "model_parameters":
                value = orjson.dumps(_plain(value)).decode() if isinstance(value, dict) and value else None
            elif source.field.startswith("usage."):
                value = _count(value)
            else:
                value = _text(value)
            if value is not None and (value or source.read != "positive_count"):
                found[target] = value
    for key, value in found.items():
        set_value(span.attributes.add(key=key).value, value)


def _strip_events(events: Any, table: Table) -> int:
    content_events = table.content_events
    drop = [i for i, ev in enumerate(events) if ev.name in content_events]
    # (events carrying none keep their attributes less the content keys)
    for i in reversed(drop):
        del events[i]
    removed = len(drop)
    for ev in events:
        removed += _strip(ev.attributes, table)
    return removed


def _strip_event_record(record: Any, table: Table) -> int:
    """A GenAI event emitted as a log record carries its message in the body."""
    name = record.event_name or next((kv.value.string_value for kv in record.attributes if kv.key == "event.name"), "")
    if name in table.content_events and record.HasField("body"):
        record.ClearField("body")
        return 1
    return 0
