"""OpenRouter's `trace` request field, applied as OpenRouter applies it.

A span may carry the fields of the `trace` object of an OpenRouter request,
as attributes `trace.<key>` or as one `trace` attribute (a kvlist or a JSON
string), and the request's `user` and `session_id`:

  trace_id        → the span's trace id (a 32-hex id as is, any other string
                    hashed to 16 bytes), for every span of that trace
  parent_span_id  → the parent of the trace's root span(s) (16-hex, or hashed),
                    so the upstream generation nests in the caller's own trace
  trace_name      → attribute trace.name
  span_name       → the span's name; generation_name → the name of generation spans
  any other key K → attribute trace.metadata.K
  user            → user.id,   session_id → session.id
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import orjson
from google.protobuf.message import Message

from otlp_router.model.attributes import set_value, value_of
from otlp_router.model.batch import Batch
from otlp_router.model.signals import Signal

_KNOWN = ("trace_id", "trace_name", "span_name", "generation_name", "parent_span_id")
_FIELD_KEYS = frozenset({"trace", "user", "session_id", *(f"trace.{k}" for k in _KNOWN)})
_GENERATION_HINTS = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name")
# Only requests whose bytes contain one of the keys need a look inside: exact
# protobuf encodings (field 1 of KeyValue), or quoted JSON strings.
_WIRE_KEYS = tuple(b"\n" + bytes([len(k)]) + k.encode() for k in ("trace", "user", "session_id")) + (b"trace.",)
_JSON_KEYS = (b'"trace"', b'"user"', b'"session_id"', b'"trace.')


def _id(value: Any, size: int) -> bytes:
    text = str(value).strip()
    if len(text) == size * 2:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    return hashlib.sha256(text.encode()).digest()[:size]


def _as_metadata(value: Any) -> Any:
    return value if isinstance(value, (str, bool, int, float)) else orjson.dumps(value).decode()


class OpenRouterMapping:
    def __init__(self, remembered: int = 100_000) -> None:
        # Later spans of a re-identified trace arrive in later requests.
        self._trace_ids: OrderedDict[bytes, bytes] = OrderedDict()
        self._remembered = remembered

    def wanted(self, batch: Batch) -> bool:
        wire = batch.wire_if_known
        if wire is not None:
            return any(k in wire for k in _WIRE_KEYS)
        if batch.json_body is not None:
            return any(k in batch.json_body for k in _JSON_KEYS)
        return True

    def apply(self, message: Message, signal: Signal) -> bool:
        """Map in place; True when anything changed."""
        changed = False
        roots: list[tuple[Any, bytes]] = []
        spans = [span for rs in getattr(message, signal.resource_field)
                 for ss in getattr(rs, signal.scope_field) for span in getattr(ss, signal.items_field)]
        for span in spans:
            fields = self._extract(span)
            if fields is None:
                continue
            changed = True
            if "trace_id" in fields:
                self._remember(span.trace_id, _id(fields.pop("trace_id"), 16))
            if "parent_span_id" in fields:
                parent = _id(fields.pop("parent_span_id"), 8)
                roots.append((span, parent))
            if "trace_name" in fields:
                set_value(span.attributes.add(key="trace.name").value, str(fields.pop("trace_name")))
            generation = fields.pop("generation_name", None)
            name = fields.pop("span_name", None)
            if generation is not None and any(kv.key in _GENERATION_HINTS for kv in span.attributes):
                span.name = str(generation)
            elif name is not None:
                span.name = str(name)
            for key, value in fields.items():
                set_value(span.attributes.add(key=f"trace.metadata.{key}").value, _as_metadata(value))
        if self._trace_ids:
            for span in spans:
                new = self._trace_ids.get(span.trace_id)
                if new is not None and new != span.trace_id:
                    span.trace_id = new
                    changed = True
        for span, parent in roots:
            if not span.parent_span_id:
                span.parent_span_id = parent
        return changed

    def _remember(self, old: bytes, new: bytes) -> None:
        self._trace_ids[old] = new
        self._trace_ids.move_to_end(old)
        if len(self._trace_ids) > self._remembered:
            self._trace_ids.popitem(last=False)

    @staticmethod
    def _extract(span: Any) -> dict[str, Any] | None:
        """Pull the OpenRouter fields out of a span's attributes (removing them)."""
        keys = [kv.key for kv in span.attributes]
        if _FIELD_KEYS.isdisjoint(keys):  # most spans: one pass over the keys and done
            return None
        fields: dict[str, Any] = {}
        drop = []
        renames = []
        for i, key in enumerate(keys):
            if key not in _FIELD_KEYS:
                continue
            kv = span.attributes[i]
            if key == "trace":
                value = value_of(kv.value)
                if isinstance(value, str):
                    try:
                        value = orjson.loads(value)
                    except orjson.JSONDecodeError:
                        continue
                if isinstance(value, dict):
                    fields.update(value)
                    drop.append(i)
            elif key.startswith("trace."):
                fields[key[6:]] = value_of(kv.value)
                drop.append(i)
            elif key == "user":
                renames.append((i, "user.id"))
            elif key == "session_id":
                renames.append((i, "session.id"))
        if not fields and not renames:
            return None
        for i, new_key in renames:
            span.attributes[i].key = new_key
        for i in reversed(drop):
            del span.attributes[i]
        return fields
