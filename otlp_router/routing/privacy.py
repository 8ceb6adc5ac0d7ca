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

The work per attribute is the native core's (native/src/privacy.rs), on the protobuf bytes: it
decides every key from the table's sets, drops content attributes, events and GenAI event bodies,
and copies everything else through. Python is asked only what the type rules make of a span that
has unkept attributes and a type key (`classify_cached`, once per distinct span signature), and,
for a span losing a key the table reads values from (Genkit's, ADK's, Logfire's older blobs),
what to keep of it (`_salvage`).
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from otlp_router import _native
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


def strip_wire(wire: bytes, signal: Signal) -> tuple[bytes, int] | None:
    """The export request `wire` without its content: (new bytes, how many attributes, events and
    bodies were removed), or None when nothing was (then `wire` stands)."""
    return _compiled(conventions.active()).strip(signal.name, wire)


def strip_content(message: Message, signal: Signal) -> int:
    """Remove content attributes and content-carrying events (span events, and
    GenAI event log records' bodies) in place; returns how many were removed."""
    stripped = strip_wire(message.SerializeToString(), signal)
    if stripped is None:
        return 0
    new = type(message).FromString(stripped[0])
    # Privacy removes no item, scope or resource: copied back item by item, a caller's references
    # to the message's spans (records, metrics) and resources stay live.
    for rs, new_rs in zip(getattr(message, signal.resource_field), getattr(new, signal.resource_field)):
        if new_rs.HasField("resource"):
            rs.resource.CopyFrom(new_rs.resource)
        for ss, new_ss in zip(getattr(rs, signal.scope_field), getattr(new_rs, signal.scope_field)):
            for item, new_item in zip(getattr(ss, signal.items_field), getattr(new_ss, signal.items_field)):
                item.CopyFrom(new_item)
    return stripped[1]


_COMPILED: tuple[Table, Any] | None = None


def _compiled(table: Table) -> Any:
    """The core's privacy for `table`, built once per table."""
    global _COMPILED
    if _COMPILED is None or _COMPILED[0] is not table:
        _COMPILED = (table, _compile(table))
    return _COMPILED[1]


def _compile(table: Table) -> Any:
    def classify(typed: dict[str, Any], name: str, scope_name: str, scope_version: str,
                 rule_resource: dict[str, Any]) -> bool:
        return classify_cached(typed, name, scope_name, scope_version, rule_resource, table) in MODEL_CALL_TYPES

    def salvage(dropped: list[tuple[str, bytes]], present: list[str], scope_name: str) -> list[bytes]:
        return _salvage(dropped, set(present), table, scope_name)

    return _native.Privacy(
        content_keys=sorted(table.content_keys), content_prefixes=list(table.content_prefixes),
        not_content=sorted(table.not_content), content_events=sorted(table.content_events),
        keep_keys=sorted(table.keep_keys), keep_prefixes=list(table.keep_prefixes),
        type_keys=sorted(table.type_keys), resource_keys=sorted(table.resource_keys),
        salvage_keys=sorted(table.salvage), classify=classify, salvage=salvage,
        value_of=lambda wire: value_of(AnyValue.FromString(wire)))


def _salvage(dropped: list[tuple[str, bytes]], present: set[str], table: Table, scope_name: str) -> list[bytes]:
    """Keep what the table reads from inside content values as the plain attributes it stands for:
    the KeyValues (serialised) the core appends to the span. `dropped`: the span's dropped salvage
    keys with their AnyValue bytes; `present`: every key the span had."""
    found: dict[str, Any] = {}
    for key, value in dropped:
        sources = table.salvage.get(key)
        if not sources:
            continue
        parsed = _content(value_of(AnyValue.FromString(value)))
        for source in sources:
            target = _SALVAGED_AS.get(source.field)
            if target is None or target in present or target in found or not _scope_ok(source.scopes, scope_name):
                continue
            if source.when is not None:
                continue   # conditions on other attributes: not worth reading here
            got = parsed
            for step in source.path:
                got = got.get(step) if isinstance(got, dict) else None
            if source.field == "model_parameters":
                got = orjson.dumps(_plain(got)).decode() if isinstance(got, dict) and got else None
            elif source.field.startswith("usage."):
                got = _count(got)
            else:
                got = _text(got)
            if got is not None and (got or source.read != "positive_count"):
                found[target] = got
    out = []
    for key, got in found.items():
        kv = KeyValue(key=key)
        set_value(kv.value, got)
        out.append(kv.SerializeToString())
    return out
