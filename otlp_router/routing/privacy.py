"""Privacy mode: remove prompt and completion content, keep everything else
(usage, cost, timing, model, ids, custom metadata)."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from otlp_router.model.content import CONTENT_EVENTS, CONTENT_KEYS, CONTENT_PREFIXES, is_content_key
from otlp_router.model.signals import Signal

# Every content key and event name contains one of these, so a request whose
# protobuf bytes contain none of them holds no content and is passed as is.
_NEEDLES = (b"prompt", b"completion", b"input", b"output", b"message", b"choice", b"tool", b"retrieval",
            b"document", b"embedding", b"instruction", b"llm.", b"gen_ai", b"query")
assert all(any(n.decode() in k for n in _NEEDLES)
           for k in (*CONTENT_KEYS, *CONTENT_PREFIXES, *CONTENT_EVENTS)), "a content key escapes the prefilter"


def may_hold_content(wire: bytes) -> bool:
    return any(needle in wire for needle in _NEEDLES)


def _strip(attributes: Any) -> int:
    drop = [i for i, kv in enumerate(attributes) if is_content_key(kv.key)]
    for i in reversed(drop):
        del attributes[i]
    return len(drop)


def strip_content(message: Message, signal: Signal) -> int:
    """Remove content attributes and content-carrying events (span events, and
    GenAI event log records' bodies) in place; returns how many were removed."""
    removed = 0
    logs = signal.name == "logs"
    traces = signal.name == "traces"
    for rs in getattr(message, signal.resource_field):
        removed += _strip(rs.resource.attributes)
        for ss in getattr(rs, signal.scope_field):
            for item in getattr(ss, signal.items_field):
                for attributes in signal.attribute_lists(item):
                    removed += _strip(attributes)
                if logs:
                    removed += _strip_event_record(item)
                elif traces and len(item.events):
                    removed += _strip_events(item.events)
    return removed


def _strip_events(events: Any) -> int:
    drop = [i for i, ev in enumerate(events) if ev.name in CONTENT_EVENTS]
    for i in reversed(drop):
        del events[i]
    removed = len(drop)
    for ev in events:
        removed += _strip(ev.attributes)
    return removed


def _strip_event_record(record: Any) -> int:
    """A GenAI event emitted as a log record carries its message in the body."""
    name = record.event_name or next((kv.value.string_value for kv in record.attributes if kv.key == "event.name"), "")
    if name in CONTENT_EVENTS and record.HasField("body"):
        record.ClearField("body")
        return 1
    return 0
