"""Which span attributes and events carry content (prompts, completions, documents, tool I/O).

Privacy mode removes these and keeps everything else: usage, cost, timing, model, ids, custom
metadata. The list is not kept here: it is the conventions table's (otlp_router/model/
conventions.yaml plus router.yaml's own entries), which marks every content source of every
convention, so a convention cannot leak by being forgotten in a second list.

Fail closed where conventions leave room: an unknown key under a content prefix is content (the
few keys under those prefixes known to be names rather than text are `NOT_CONTENT_KEYS`), and on
a span the table recognises as a model call every attribute it does not name as non-content goes
(`keeps`). Use `is_content_key`, not the prefixes alone.

`CONTENT_KEYS`, `CONTENT_PREFIXES`, `NOT_CONTENT_KEYS` and `CONTENT_EVENTS` are the active table's,
read when asked for (so after `conventions.install` too).
"""

from __future__ import annotations

from typing import Any

from otlp_router.model import conventions

__all__ = ["is_content_key", "keeps"]   # and CONTENT_KEYS, ... through __getattr__


def is_content_key(key: str) -> bool:
    """True when the attribute `key` carries prompt / completion / document / tool content."""
    return conventions.active().is_content_key(key)


def keeps(key: str) -> bool:
    """True when privacy keeps `key` on a model-call span (a non-content key the table names)."""
    return conventions.active().keeps(key)


_VIEWS = {
    "CONTENT_KEYS": lambda t: t.content_keys,
    "CONTENT_PREFIXES": lambda t: t.content_prefixes,
    "NOT_CONTENT_KEYS": lambda t: t.not_content,
    "CONTENT_EVENTS": lambda t: t.content_events,
}


def __getattr__(name: str) -> Any:
    """The catalogue's parts, from the table in force (module attributes would go stale on install)."""
    view = _VIEWS.get(name)
    if view is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return view(conventions.active())
