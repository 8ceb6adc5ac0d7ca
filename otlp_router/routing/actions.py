"""Attribute actions, like the Collector's attributes processor.

    attributes:
      - {action: insert, key: deployment.environment, value: prod}    # only when absent
      - {action: update, key: user.id, value: anonymous}              # only when present
      - {action: upsert, key: team, from_attribute: service.namespace}
      - {action: rename, key: llm.user, to: user.id}
      - {action: delete, key: http.request.header.cookie}             # or pattern: "^internal\\."
      - {action: hash, key: user.id}    # HMAC-SHA256 with hash_key (default: plain SHA-256)
        include: {span: kind, equals: client}    # optional, the routing match rules
        exclude: {...}
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Callable

from google.protobuf.message import Message

from otlp_router.model.attributes import set_value, value_of
from otlp_router.model.signals import Signal
from otlp_router.routing.match import Needs, Predicate, compile_rule, walk
from otlp_router.settings import Section

ACTIONS = ("insert", "update", "upsert", "rename", "delete", "hash")


@dataclass
class _Action:
    action: str
    key: str | None
    pattern: re.Pattern[str] | None
    value: Any
    from_attribute: str | None
    to: str | None
    hash_key: bytes | None
    include: Predicate | None
    exclude: Predicate | None

    def applies(self, ctx: Any) -> bool:
        return (self.include is None or self.include(ctx)) and (self.exclude is None or not self.exclude(ctx))


def _find(attributes: Any, key: str) -> int:
    for i, kv in enumerate(attributes):
        if kv.key == key:
            return i
    return -1


def _read_action(section: Section, needs: Needs) -> _Action:
    action = section.str("action", choices=ACTIONS)
    key = section.str("key", None)
    pattern = None
    if action == "delete" and section.has("pattern"):
        raw = section.str("pattern")
        try:
            pattern = re.compile(raw)
        except re.error as e:
            section.fail(f"invalid regular expression {raw!r}: {e}", "pattern")
    elif key is None:
        section.fail("is required", "key")
    value = from_attribute = to = hash_key = None
    if action in ("insert", "update", "upsert"):
        if section.has("value") == section.has("from_attribute"):
            section.fail("expected exactly one of value, from_attribute")
        value = section.raw("value", None)
        from_attribute = section.str("from_attribute", None)
    if action == "rename":
        to = section.str("to")
    if action == "hash":
        secret = section.str("hash_key", None)
        hash_key = secret.encode() if secret else None
    include = compile_rule(section.section("include"), needs) if section.has("include") else None
    exclude = compile_rule(section.section("exclude"), needs) if section.has("exclude") else None
    section.done()
    return _Action(action, key, pattern, value, from_attribute, to, hash_key, include, exclude)


class AttributeActions:
    def __init__(self, items: list[Any], file: str, path: str) -> None:
        self.needs = Needs()
        self.actions = [_read_action(Section(item, file, f"{path}[{i}]"), self.needs) for i, item in enumerate(items)]
        self._filtered = any(a.include or a.exclude for a in self.actions)

    def apply(self, message: Message, signal: Signal, api_key: str | None = None) -> None:
        for item, ctx in walk(message, signal, self.needs, api_key):
            for action in self.actions:
                if self._filtered and not action.applies(ctx):
                    continue
                for attributes in signal.attribute_lists(item):
                    _APPLY[action.action](action, attributes)


def _set(action: _Action, attributes: Any, index: int) -> None:
    if action.from_attribute is not None:
        source = _find(attributes, action.from_attribute)
        if source < 0:
            return
        value = attributes[source].value
        target = attributes[index].value if index >= 0 else attributes.add(key=action.key).value
        target.CopyFrom(value)
        return
    target = attributes[index].value if index >= 0 else attributes.add(key=action.key).value
    target.Clear()
    set_value(target, action.value)


def _insert(action: _Action, attributes: Any) -> None:
    if _find(attributes, action.key) < 0:
        _set(action, attributes, -1)


def _update(action: _Action, attributes: Any) -> None:
    i = _find(attributes, action.key)
    if i >= 0:
        _set(action, attributes, i)


def _upsert(action: _Action, attributes: Any) -> None:
    _set(action, attributes, _find(attributes, action.key))


def _rename(action: _Action, attributes: Any) -> None:
    i = _find(attributes, action.key)
    if i < 0:
        return
    existing = _find(attributes, action.to)
    if existing >= 0:
        attributes[existing].value.CopyFrom(attributes[i].value)
        del attributes[i]
    else:
        attributes[i].key = action.to


def _delete(action: _Action, attributes: Any) -> None:
    if action.pattern is not None:
        drop = [i for i, kv in enumerate(attributes) if action.pattern.search(kv.key)]
    else:
        drop = [i for i, kv in enumerate(attributes) if kv.key == action.key]
    for i in reversed(drop):
        del attributes[i]


def _hash(action: _Action, attributes: Any) -> None:
    i = _find(attributes, action.key)
    if i < 0:
        return
    raw = value_of(attributes[i].value)
    data = raw if isinstance(raw, bytes) else str(raw).encode()
    digest = hmac.new(action.hash_key, data, hashlib.sha256).hexdigest() if action.hash_key \
        else hashlib.sha256(data).hexdigest()
    attributes[i].value.Clear()
    attributes[i].value.string_value = digest


_APPLY: dict[str, Callable[[_Action, Any], None]] = {
    "insert": _insert, "update": _update, "upsert": _upsert, "rename": _rename, "delete": _delete, "hash": _hash,
}
