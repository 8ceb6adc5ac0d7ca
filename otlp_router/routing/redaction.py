"""Redaction: drop attributes by key pattern, mask secrets inside values, or
keep only an allow-list of keys (fails closed: anything not listed goes).

    redaction:
      blocked_keys: ["*.password", "http.request.header.*"]
      mask: [email, card, bearer, api_key]     # built-in value patterns (default: all)
      patterns: ["ACME-[0-9]{6}"]              # extra value regexes
      allowed_keys: ["gen_ai.*", "service.name"]   # allow-list mode

The walk is the native core's (native/src/shaping/redaction.rs), on the protobuf bytes; the
globs and regular expressions stay Python's fnmatch and re, asked once per key and only for the
strings a mask could match.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Callable

from google.protobuf.message import Message

from otlp_router import _native
from otlp_router.model.batch import on_wire
from otlp_router.model.signals import Signal
from otlp_router.settings import Section

BUILTIN_PATTERNS = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "card": r"\b(?:\d[ -]?){12,18}\d\b",
    "bearer": r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*",
    "api_key": r"\b(?:sk-(?:or-v1-|ant-|proj-)?[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
               r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z\-_]{35}|xaat-[A-Za-z0-9-]{16,})",
}


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _key_matcher(patterns: list[str]) -> Callable[[str], bool]:
    exact = {p for p in patterns if not any(c in p for c in "*?[")}
    globs = [p for p in patterns if p not in exact]
    regex = re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None
    if regex is None:
        return exact.__contains__
    return lambda key: key in exact or regex.match(key) is not None


class Redaction:
    def __init__(self, section: Section) -> None:
        blocked = self._strings(section, "blocked_keys")
        allowed = self._strings(section, "allowed_keys") if section.has("allowed_keys") else None
        builtin = self._strings(section, "mask") if section.has("mask") else list(BUILTIN_PATTERNS)
        for i, name in enumerate(builtin):
            if name not in BUILTIN_PATTERNS:
                section.fail(f"expected one of {', '.join(BUILTIN_PATTERNS)}, got {name!r}", f"mask[{i}]")
        extra = self._strings(section, "patterns")
        rules: list[tuple[str, re.Pattern[str]]] = [(n, re.compile(BUILTIN_PATTERNS[n])) for n in builtin]
        for i, pattern in enumerate(extra):
            try:
                rules.append(("pattern", re.compile(pattern)))
            except re.error as e:
                section.fail(f"invalid regular expression {pattern!r}: {e}", f"patterns[{i}]")
        self.replacement = section.str("replacement", "[REDACTED:{kind}]")
        section.done()
        self.blocked = _key_matcher(blocked) if blocked else None
        self.allowed = _key_matcher(allowed) if allowed is not None else None
        self.rules = rules
        self._native = _native.Redaction(masks=[kind for kind, _ in rules],
                                         keys=self.blocked is not None or self.allowed is not None,
                                         drop=self._drops, mask=self.mask)

    @staticmethod
    def _strings(section: Section, key: str) -> list[str]:
        values = section.list(key, [])
        for i, v in enumerate(values):
            if not isinstance(v, str):
                section.fail(f"expected a string, got {v!r}", f"{key}[{i}]")
        return values

    def mask(self, text: str) -> str:
        for kind, pattern in self.rules:
            if kind == "card":
                text = pattern.sub(lambda m: self._card(m), text)
            else:
                text = pattern.sub(self.replacement.format(kind=kind), text)
        return text

    def _card(self, m: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", m.group(0))
        return self.replacement.format(kind="card") if _luhn(digits) else m.group(0)

    def _drops(self, key: str) -> bool:
        return (self.allowed is not None and not self.allowed(key)) or bool(self.blocked and self.blocked(key))

    def apply_wire(self, wire: bytes, signal: Signal) -> bytes | None:
        """The export request `wire` redacted, or None when nothing changed. The walk is the
        native core's, on the protobuf bytes; it asks `_drops` once per key and `mask` only for
        strings one of the rules could match."""
        return on_wire(signal, wire, lambda b: self._native.redact(signal.name, b))

    def apply(self, message: Message, signal: Signal) -> None:
        """Redact `message` in place."""
        got = self.apply_wire(message.SerializeToString(), signal)
        if got is not None:
            message.CopyFrom(type(message).FromString(got))
