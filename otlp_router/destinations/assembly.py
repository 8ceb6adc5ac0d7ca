"""Gathering items into stored objects: whole traces (per-trace JSON), record
batches (Aperture) and line batches (OTLP JSON objects).

A spool entry is acknowledged only once every object holding its items has
been written, so nothing gathered here is lost with the process: after a
restart the spool hands the same entries over again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from otlp_router.destinations.formats.aperture import record as aperture_record
from otlp_router.destinations.formats.trace_json import SpanRef
from otlp_router.model import otlp_json
from otlp_router.model.attributes import to_dict
from otlp_router.model.genai import view
from otlp_router.spool.base import Entry


class Holds:
    """Counts, per spool entry, the open groups that still hold its items."""

    def __init__(self, ack: Callable[[list[Entry]], None]) -> None:
        self._ack = ack
        self._open: dict[int, list[Any]] = {}   # id(entry) -> [entry, groups still open]

    def hold(self, entry: Entry, groups: int) -> None:
        if groups == 0:
            self._ack([entry])
            return
        held = self._open.get(id(entry))
        if held is None:
            self._open[id(entry)] = [entry, groups]
        else:
            held[1] += groups

    def release(self, entries: Iterable[Entry]) -> None:
        done = []
        for entry in entries:
            held = self._open[id(entry)]
            held[1] -= 1
            if held[1] == 0:
                del self._open[id(entry)]
                done.append(entry)
        if done:
            self._ack(done)

    def __len__(self) -> int:
        return len(self._open)


@dataclass
class Group:
    """Items on their way into one object."""

    opened: float                                   # monotonic
    touched: float
    entries: dict[int, Entry] = field(default_factory=dict)
    size: int = 0
    api_key_name: str | None = None
    first_received: float = float("inf")            # unix time the first item arrived: names the object

    def take(self, entry: Entry, size: int, now: float) -> bool:
        """Count the entry in; True when it is new to this group."""
        self.size += size
        self.touched = now
        if id(entry) in self.entries:
            return False
        self.entries[id(entry)] = entry
        self.first_received = min(self.first_received, entry.batch.received)
        return True


@dataclass
class OpenTrace(Group):
    trace_id: bytes = b""
    spans: list[SpanRef] = field(default_factory=list)


class TraceAssembler:
    """Spans gathered by trace until the trace is quiet for `idle` seconds or
    older than `max_age`; past `max_traces` or `max_bytes` open, the oldest are
    let go early (written, never dropped)."""

    def __init__(self, idle: float, max_age: float, max_traces: int, max_bytes: int) -> None:
        self.idle, self.max_age = idle, max_age
        self.max_traces, self.max_bytes = max_traces, max_bytes
        self.open: dict[bytes, OpenTrace] = {}
        self.bytes = 0

    def add(self, entry: Entry, now: float) -> int:
        """Take an entry's spans; returns how many open traces now hold it."""
        touched = 0
        batch = entry.batch
        for rs in batch.message.resource_spans:
            resource = to_dict(rs.resource.attributes)
            for ss in rs.scope_spans:
                scope_name, scope_version = ss.scope.name, ss.scope.version
                for span in ss.spans:
                    trace = self.open.get(span.trace_id)
                    if trace is None:
                        trace = self.open[span.trace_id] = OpenTrace(now, now, trace_id=span.trace_id,
                                                                     api_key_name=batch.api_key_name)
                    size = span.ByteSize()
                    self.bytes += size
                    touched += trace.take(entry, size, now)
                    trace.spans.append(SpanRef(span, resource, scope_name, scope_version))
        return touched

    def due(self, now: float, everything: bool = False) -> list[OpenTrace]:
        ready = [t for t in self.open.values()
                 if everything or now - t.touched >= self.idle or now - t.opened >= self.max_age]
        for trace in ready:
            self._close(trace)
        # Over a bound: write the oldest early rather than drop or grow without end.
        if len(self.open) > self.max_traces or self.bytes > self.max_bytes:
            for trace in sorted(self.open.values(), key=lambda t: t.opened):
                if len(self.open) <= self.max_traces and self.bytes <= self.max_bytes:
                    break
                self._close(trace)
                ready.append(trace)
        return ready

    def _close(self, trace: OpenTrace) -> None:
        del self.open[trace.trace_id]
        self.bytes -= trace.size

    def next_due(self) -> float | None:
        if not self.open:
            return None
        return min(min(t.touched + self.idle, t.opened + self.max_age) for t in self.open.values())


@dataclass
class RecordGroup(Group):
    records: list[dict[str, Any]] = field(default_factory=list)


class RecordBatcher:
    """Aperture records, one object every `every` seconds of at most `limit` records."""

    def __init__(self, every: float, limit: int, privacy: bool) -> None:
        self.every, self.limit, self.privacy = every, limit, privacy
        self.current: RecordGroup | None = None
        self.full: list[RecordGroup] = []
        self._last_id = 0

    def _next_id(self, received: float, index: int) -> int:
        # From the arrival time (microseconds) and the position in the request, so
        # a replay after a restart numbers the same records the same; increasing.
        self._last_id = max(self._last_id + 1, int(received * 1_000_000) + index)
        return self._last_id

    def add(self, entry: Entry, now: float) -> int:
        touched = 0
        batch = entry.batch
        index = 0
        for rs in batch.message.resource_spans:
            resource = to_dict(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    ref = SpanRef(span, resource, ss.scope.name, ss.scope.version)
                    genai = view(span, resource)
                    if not genai.is_genai:
                        continue
                    index += 1
                    rec = aperture_record(ref, genai, record_id=self._next_id(batch.received, index),
                                          privacy=self.privacy, api_key_name=batch.api_key_name)
                    if rec is None:
                        continue
                    if self.current is None:
                        self.current = RecordGroup(now, now)
                    touched += self.current.take(entry, 1, now)
                    self.current.records.append(rec)
                    if len(self.current.records) >= self.limit:
                        self.full.append(self.current)
                        self.current = None
        return touched

    def due(self, now: float, everything: bool = False) -> list[RecordGroup]:
        ready, self.full = self.full, []
        if self.current is not None and (everything or now - self.current.opened >= self.every):
            ready.append(self.current)
            self.current = None
        return ready

    def next_due(self) -> float | None:
        if self.full:
            return 0.0
        return None if self.current is None else self.current.opened + self.every


@dataclass
class LineGroup(Group):
    signal: str = "traces"
    lines: list[bytes] = field(default_factory=list)


class LineBatcher:
    """OTLP JSON lines (one export request each) per signal, an object per
    `max_bytes` or `max_age`."""

    def __init__(self, max_bytes: int, max_age: float) -> None:
        self.max_bytes, self.max_age = max_bytes, max_age
        self.current: dict[str, LineGroup] = {}
        self.full: list[LineGroup] = []

    def add(self, entry: Entry, now: float) -> int:
        signal = entry.batch.signal.name
        line = otlp_json.encode(entry.batch.message) + b"\n"
        group = self.current.get(signal)
        if group is None:
            group = self.current[signal] = LineGroup(now, now, signal=signal)
        group.take(entry, len(line), now)
        group.lines.append(line)
        if group.size >= self.max_bytes:
            self.full.append(self.current.pop(signal))
        return 1

    def due(self, now: float, everything: bool = False) -> list[LineGroup]:
        ready, self.full = self.full, []
        for signal, group in list(self.current.items()):
            if everything or now - group.opened >= self.max_age:
                ready.append(self.current.pop(signal))
        return ready

    def next_due(self) -> float | None:
        if self.full:
            return 0.0
        return min((g.opened + self.max_age for g in self.current.values()), default=None)
