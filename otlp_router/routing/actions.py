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

The actions run in the native core (native/src/shaping/actions.rs), on the protobuf bytes, and so
do the include / exclude rules (the routing table's match rules, native/src/routing.rs); Python
keeps the delete patterns' re.search and the digests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otlp_router import _native
from otlp_router.model.attributes import set_value, value_of
from otlp_router.model.batch import on_wire
from otlp_router.model.signals import SIGNALS, Signal
from otlp_router.routing.match import Rule, compile_rule, event_name
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
    include: Rule | None
    exclude: Rule | None


def _read_action(section: Section) -> _Action:
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
    include = compile_rule(section.section("include")) if section.has("include") else None
    exclude = compile_rule(section.section("exclude")) if section.has("exclude") else None
    section.done()
    return _Action(action, key, pattern, value, from_attribute, to, hash_key, include, exclude)


class AttributeActions:
    def __init__(self, items: list[Any], file: str, path: str) -> None:
        self.actions = [_read_action(Section(item, file, f"{path}[{i}]")) for i, item in enumerate(items)]
        # The include / exclude rules as one program of the core's rule engine (each rule a
        # "route" of every signal): per item, which of them it matches.
        rules = [rule for a in self.actions for rule in (a.include, a.exclude) if rule is not None]
        self._rules = _native.Routes([(sorted(SIGNALS), rule.tree, False) for rule in rules]) if rules else None
        self._rule_of = {id(rule): i for i, rule in enumerate(rules)}
        # An action's include / exclude see the item as the actions before it left it (a rule on
        # an attribute an earlier action deleted no longer holds): the actions run in blocks, a
        # new one at every filtered action after the first, each read by the rules afresh.
        starts = [0] + [i for i, a in enumerate(self.actions) if i and (a.include or a.exclude)]
        self._blocks = list(zip(starts, [*starts[1:], len(self.actions)]))
        self._native = _native.Actions(actions=[_spec(a) for a in self.actions], deletes=self._deletes,
                                       hash=self._hash)

    def apply_wire(self, wire: bytes, signal: Signal, api_key: str | None = None) -> bytes | None:
        """The export request `wire` with the actions applied, or None when nothing changed: the
        native core's work, on the protobuf bytes."""
        changed = None
        for block in self._blocks:
            got = on_wire(signal, wire if changed is None else changed,
                          lambda b: self._native.apply(signal.name, b, self._applies(signal, b, api_key, *block)))
            changed = changed if got is None else got
        return changed

    def _applies(self, signal: Signal, wire: bytes, api_key: str | None, start: int, end: int) -> bytes | None:
        """Per item, per action, whether the action applies: those of the block [start, end)
        whose rules hold (None: every action, every item)."""
        if self._rules is None:
            return None
        choices, groups, _ = self._rules.route(signal.name, wire, api_key, None, event_name)
        per_choice = []
        for matched in choices:
            hit = set(matched)
            per_choice.append(bytes(
                start <= i < end
                and (a.include is None or self._rule_of[id(a.include)] in hit)
                and (a.exclude is None or self._rule_of[id(a.exclude)] not in hit) for i, a in enumerate(self.actions)))
        return b"".join(per_choice[g] for g in groups)

    def apply(self, message: Message, signal: Signal, api_key: str | None = None) -> None:
        """Apply the actions to `message` in place."""
        got = self.apply_wire(message.SerializeToString(), signal, api_key)
        if got is not None:
            message.CopyFrom(type(message).FromString(got))

    def _deletes(self, index: int, key: str) -> bool:
        pattern = self.actions[index].pattern
        return pattern is not None and pattern.search(key) is not None

    def _hash(self, index: int, value: bytes) -> str:
        raw = value_of(AnyValue.FromString(value))
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        secret = self.actions[index].hash_key
        return hmac.new(secret, data, hashlib.sha256).hexdigest() if secret else hashlib.sha256(data).hexdigest()


def _spec(action: _Action) -> tuple[str, str | None, bytes | None, str | None, str | None]:
    """The action as the core takes it: a value to set as the AnyValue bytes upb writes for it."""
    value = None
    if action.action in ("insert", "update", "upsert") and action.from_attribute is None:
        target = AnyValue()
        target.Clear()
        set_value(target, action.value)
        value = target.SerializeToString()
    key = None if action.pattern is not None else action.key
    return action.action, key, value, action.from_attribute, action.to
