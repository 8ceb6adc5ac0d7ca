"""Deterministic sampling per destination: a whole trace or session is kept or
dropped together, by every router that sees it.

    sampling: {rate: 0.1, by: trace_id}      # or by: session.id

With `by: session.id`, spans of a trace without the attribute follow the
session of any other span of that trace (in the same request, or seen before).
Log records follow their trace; a log record without a trace id is sampled on
its own (by its content, so a resent record gets the same decision); metrics
are not sampled.

The native core (native/src/shaping/sampling.rs) reads the trace ids and sessions from the
protobuf bytes and cuts the items out; the hash, the rate and the sessions remembered are here.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otlp_router import _native
from otlp_router.model.attributes import value_of
from otlp_router.model.batch import on_wire
from otlp_router.model.signals import Signal
from otlp_router.settings import Section

_SCALE = float(1 << 64)
_ITEMS = {"traces": Span, "logs": LogRecord}


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

    def apply_wire(self, wire: bytes, signal: Signal) -> tuple[bytes, int] | None:
        """The export request `wire` without the items sampled out: (new bytes, how many), or None
        when every item is kept. The cutting is the native core's, on the protobuf bytes; the
        decisions (hash, rate, remembered sessions) are made here, once per request."""
        if self.rate >= 1.0 or signal.name == "metrics":  # metrics belong to no trace or session
            return None
        by_session = self.by == "session.id"
        item = _ITEMS[signal.name]

        def decide(sessions: list[tuple[bytes, bytes]], traces: list[bytes],
                   lone: list[bytes]) -> tuple[list[bool], list[bool]]:
            # a lone item's key is upb's deterministic serialisation (its arrival bytes are that
            # when canonical, but need not be): every router decides it alike however it came
            return self._decide(sessions, traces, [item.FromString(b).SerializeToString(deterministic=True)
                                                    for b in lone])

        return on_wire(signal, wire, lambda b: _native.sample(signal.name, b, by_session, decide))

    def apply(self, message: Message, signal: Signal) -> int:
        """Remove the items sampled out, in place; returns how many."""
        got = self.apply_wire(message.SerializeToString(), signal)
        if got is None:
            return 0
        message.CopyFrom(type(message).FromString(got[0]))
        return got[1]

    def _decide(self, sessions: list[tuple[bytes, bytes]], traces: list[bytes],
                lone: list[bytes]) -> tuple[list[bool], list[bool]]:
        """Whether each trace and each item without one (by its serialisation) is kept;
        `sessions`: every item's first session.id attribute (trace id, AnyValue bytes),
        remembered first."""
        for trace_id, value in sessions:
            self._remember(trace_id, str(value_of(AnyValue.FromString(value))).encode())
        if self.by == "session.id":
            traces = [self._sessions.get(t, b"t:" + t) for t in traces]
        # No trace (or session) to follow: each lone item is decided alone, by its own bytes,
        # so the same record is decided the same way again.
        return [self.keeps(t) for t in traces], [self.keeps(b"i:" + item) for item in lone]
