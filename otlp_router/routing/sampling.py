"""Deterministic sampling per destination: a whole trace or session is kept or
dropped together, by every router that sees it.

    sampling: {rate: 0.1, by: trace_id}      # or by: session.id

With `by: session.id`, spans of a trace without the attribute follow the
session of any other span of that trace (in the same request, or seen before).
Log records follow their trace; a log record without a trace id is sampled on
its own (by its content, so a resent record gets the same decision); metrics
are not sampled.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from google.protobuf.message import Message

from otlp_router.model.attributes import value_of
from otlp_router.model.signals import Signal
from otlp_router.settings import Section

_SCALE = float(1 << 64)


def _unit(key: bytes) -> float:
    """A key's stable position in [0, 1)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / _SCALE


class Sampling:
    BY = ("trace_id", "session.id")

    def __init__(self, section: Section, remembered: int = 100_000) -> None:
        self.rate = section.number("rate", minimum=0.0, maximum=1.0)
        self.by = section.str("by", "trace_id", choices=self.BY)
        section.done()
        self._sessions: OrderedDict[bytes, bytes] = OrderedDict()
        self._remembered = remembered

    def _remember(self, trace_id: bytes, session: bytes) -> None:
        self._sessions[trace_id] = session
        self._sessions.move_to_end(trace_id)
        if len(self._sessions) > self._remembered:
            self._sessions.popitem(last=False)

    def keeps(self, key: bytes) -> bool:
        return _unit(key) < self.rate

    def apply(self, message: Message, signal: Signal) -> int:
        """Remove the items sampled out, in place; returns how many."""
        if self.rate >= 1.0 or signal.name == "metrics":  # metrics belong to no trace or session
            return 0
        containers = [getattr(ss, signal.items_field) for rs in getattr(message, signal.resource_field)
                      for ss in getattr(rs, signal.scope_field)]
        if self.by == "session.id":
            for items in containers:
                for item in items:
                    for kv in item.attributes:
                        if kv.key == "session.id":
                            self._remember(item.trace_id, str(value_of(kv.value)).encode())
                            break
        decisions: dict[bytes, bool] = {}
        removed = 0
        for items in containers:
            drop = []
            for i, item in enumerate(items):
                trace_id = item.trace_id
                if not trace_id:
                    # No trace (or session) to follow: each item is decided alone,
                    # by its own bytes, so the same record is decided the same way again.
                    if not self.keeps(b"i:" + item.SerializeToString(deterministic=True)):
                        drop.append(i)
                    continue
                keep = decisions.get(trace_id)
                if keep is None:
                    key = self._sessions.get(trace_id, b"t:" + trace_id) if self.by == "session.id" \
                        else trace_id
                    keep = decisions[trace_id] = self.keeps(key)
                if not keep:
                    drop.append(i)
            for i in reversed(drop):
                del items[i]
            removed += len(drop)
        return removed
