"""Privacy mode: remove prompt and completion content, keep everything else
(usage, cost, timing, model, ids, custom metadata)."""

from __future__ import annotations

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


def _strip(attributes) -> int:  # type: ignore[no-untyped-def]
    drop = [i for i, kv in enumerate(attributes) if is_content_key(kv.key)]
    for i in reversed(drop):
        del attributes[i]
    return len(drop)


def strip_content(message: Message, signal: Signal) -> int:
    """Remove content attributes and content-carrying events in place; returns how many were removed."""
    removed = 0
    for rs in getattr(message, signal.resource_field):
        removed += _strip(rs.resource.attributes)
        for ss in getattr(rs, signal.scope_field):
            for item in getattr(ss, signal.items_field):
                removed += _strip(item.attributes)
                events = item.events
                if not len(events):
                    continue
                drop = [i for i, ev in enumerate(events) if ev.name in CONTENT_EVENTS]
                for i in reversed(drop):
                    del events[i]
                removed += len(drop)
                for ev in events:
                    removed += _strip(ev.attributes)
    return removed
