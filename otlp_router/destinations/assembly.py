"""Gathering spool entries into groups, one group per export: runs of one
signal (OTLP exporters, files), whole traces (per-trace JSON), record batches
(Aperture) and line batches (OTLP JSON objects).

An assembler only gathers: the delivery engine holds every entry until each
group that took items of it has been exported or dead-lettered, so nothing
gathered here is lost with the process (the spool hands the entries over
again after a restart). An item that cannot be gathered (a span whose record
cannot be made) comes back as a `Poison` group, for the dead letter, and the
rest of its entry goes on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

from otlp_router import _native
from otlp_router.destinations.formats.aperture import RecordStream, encode_record
from otlp_router.destinations.formats.aperture import record as aperture_record
from otlp_router.destinations.formats.trace_json import KeptSpan, LogRef, SpanRef, joined, span_refs
from otlp_router.model import genai, otlp_json
from otlp_router.model.attributes import to_dict
from otlp_router.model.batch import Batch, items_of, select
from otlp_router.model.genai import view
from otlp_router.spool.base import Entry

log = logging.getLogger("otlp_router.delivery")

Hold = Callable[[Entry], None]   # called once per (entry, group) the entry joins


@dataclass(eq=False)
class Group:
    """Items on their way into one export."""

    opened: float                                   # monotonic
    touched: float
    signal: str = "traces"
    entries: dict[int, Entry] = field(default_factory=dict)
    size: int = 0
    items: int = 0
    api_key_name: str | None = None
    first_received: float = float("inf")            # unix time the first item arrived: names stored objects

    def take(self, entry: Entry, size: int, items: int, now: float, hold: Hold) -> None:
        self.size += size
        self.items += items
        self.touched = now
        if id(entry) not in self.entries:
            self.entries[id(entry)] = entry
            self.first_received = min(self.first_received, entry.batch.received)
            hold(entry)

    def batches(self) -> list[Batch]:
        """Exactly the items of this group, as batches (for OTLP exports and dead letters)."""
        return [e.batch for e in self.entries.values()]


@dataclass(eq=False)
class Poison(Group):
    """Items that could not be gathered, with the reason: they go to the dead letter."""

    reason: str = ""
    parts: list[Batch] = field(default_factory=list)

    def batches(self) -> list[Batch]:
        return self.parts


def poison(entry: Entry, part: Batch, error: BaseException, now: float, hold: Hold) -> Poison:
    log.error("destination: cannot gather %d %s of a batch (%r); they go to the dead letter",
              part.items, part.signal.name, error, exc_info=error)
    group = Poison(now, now, signal=part.signal.name, reason=f"cannot gather: {error!r}", parts=[part])
    group.take(entry, part.size, part.items, now, hold)
    return group


class Holds:
    """Counts, per spool entry, what still holds it (the delivery engine: its reader and the
    groups; a trace assembler: its open traces), and the bytes of the entries held."""

    def __init__(self) -> None:
        self._open: dict[int, list] = {}   # id(entry) -> [entry, holders]
        self.bytes = 0                      # of the entries held

    def hold(self, entry: Entry) -> None:
        held = self._open.get(id(entry))
        if held is None:
            self._open[id(entry)] = [entry, 1]
            self.bytes += entry.size
        else:
            held[1] += 1

    def release(self, entries: list[Entry]) -> list[Entry]:
        """Let go of these entries once each; returns those nothing holds now."""
        done = []
        for entry in entries:
            held = self._open[id(entry)]
            held[1] -= 1
            if held[1] == 0:
                del self._open[id(entry)]
                self.bytes -= entry.size
                done.append(entry)
        return done

    def abandon(self) -> list[Entry]:
        """Everything still held, oldest first; forgotten here."""
        entries = sorted((held[0] for held in self._open.values()), key=lambda e: e.seq)
        self._open.clear()
        self.bytes = 0
        return entries

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, entry: Entry) -> bool:
        return id(entry) in self._open


class Assembler(Protocol):
    # True when what `add` gathers is a copy (span bytes, encoded lines): an entry's payload is then
    # only wanted again for a dead letter, and a disk spool may keep it on disk only meanwhile.
    copies: bool

    def add(self, entry: Entry, now: float, hold: Hold) -> list[Poison]:
        """Gather an entry's items; returns what could not be gathered."""

    def due(self, now: float, everything: bool = False) -> list[Group]:
        """Take the groups ready to export (all of them with `everything`)."""

    def next_due(self) -> float | None:
        """When the next group comes due (monotonic), None when nothing is open."""

    def wanted(self, now: float, everything: bool = False) -> list[Entry]:
        """Entries whose payloads went to disk that `due(now, everything)` reads again:
        the engine reads them back first."""


def nothing_wanted(self: Any, now: float, everything: bool = False) -> list[Entry]:
    """`Assembler.wanted` of an assembler that never reads an entry's payload again."""
    return []


@dataclass(eq=False)
class Run(Group):
    pass


class Runs:
    """Entries of one signal in arrival order, a run per `max_items` /
    `max_bytes`, or `flush_interval` after its first entry."""

    copies = False   # a run exports its entries' batches
    wanted = nothing_wanted

    def __init__(self, max_items: int, max_bytes: int, flush_interval: float) -> None:
        self.max_items, self.max_bytes, self.flush_interval = max_items, max_bytes, flush_interval
        self.current: dict[str, Run] = {}
        self.full: list[Group] = []

    def add(self, entry: Entry, now: float, hold: Hold) -> list[Poison]:
        signal, items = entry.batch.signal.name, entry.batch.items
        run = self.current.get(signal)
        if run is not None and (run.items + items > self.max_items or run.size + entry.size > self.max_bytes):
            self.full.append(self.current.pop(signal))
            run = None
        if run is None:
            run = self.current[signal] = Run(now, now, signal=signal)
        run.take(entry, entry.size, items, now, hold)
        if run.items >= self.max_items or run.size >= self.max_bytes:
            self.full.append(self.current.pop(signal))
        return []

    def due(self, now: float, everything: bool = False) -> list[Group]:
        ready, self.full = self.full, []
        for signal, run in list(self.current.items()):
            if everything or now - run.opened >= self.flush_interval:
                ready.append(self.current.pop(signal))
        return ready

    def next_due(self) -> float | None:
        if self.full:
            return 0.0
        return min((r.opened + self.flush_interval for r in self.current.values()), default=None)


@dataclass(eq=False)
class OpenTrace(Group):
    trace_id: bytes = b""
    # Each span as its own bytes (with what travels with it) while the trace is open: a decoded
    # span would keep its whole request decoded in memory, several times the bytes, until the
    # last trace of that request is written.
    parts: list[KeptSpan] = field(default_factory=list)
    logs: list[LogRef] = field(default_factory=list)   # joined to their spans when the trace is written

    def spans(self) -> list[SpanRef]:
        """The trace's spans, decoded for writing it (not kept: a trace waiting for its retry, or
        beside thousands written in the same second, holds its bytes only)."""
        return span_refs(self.parts)

    def batches(self) -> list[Batch]:
        out = []
        for entry in self.entries.values():
            flags = [item.trace_id == self.trace_id for item, _ in items_of(entry.batch)]
            out.append(entry.batch if all(flags) else select(entry.batch, flags))
        return out


def _spans(entry: Entry, now: float, hold: Hold, poisoned: list[Poison]) -> list[tuple[int, Any, Any, bytes]]:
    """The items (spans, log records) of an entry, each with its position in the entry, what
    travels with it (a SpanRef, a LogRef) and its Resource's bytes; a resource whose attributes
    cannot be read makes its items poison."""
    out = []
    position = 0
    bad: list[int] = []
    error: BaseException | None = None
    signal = entry.batch.signal
    ref_type = LogRef if signal.name == "logs" else SpanRef
    for rs in getattr(entry.batch.message, signal.resource_field):
        scopes = getattr(rs, signal.scope_field)
        count = sum(len(getattr(ss, signal.items_field)) for ss in scopes)
        try:
            resource = to_dict(rs.resource.attributes)
            resource_wire = rs.resource.SerializeToString()
        except Exception as e:  # noqa: BLE001 - one bad resource must not stop the others
            bad.extend(range(position, position + count))
            error = error or e
            position += count
            continue
        for ss in scopes:
            for item in getattr(ss, signal.items_field):
                out.append((position, item, ref_type(item, resource, ss.scope.name, ss.scope.version), resource_wire))
                position += 1
    if bad:
        assert error is not None
        poisoned.append(poison(entry, _only(entry.batch, set(bad)), error, now, hold))
    return out


def _only(batch: Batch, positions: set[int]) -> Batch:
    """The items of a batch at these positions (all of them: the batch itself)."""
    flags = [n in positions for n, _ in enumerate(items_of(batch))]
    return batch if all(flags) else select(batch, flags)


TraceKey = tuple[str | None, bytes]   # (API key name, trace id)


class TraceAssembler:
    """Spans gathered by trace until the trace is quiet for `idle` seconds or
    older than `max_age`; past `max_traces` or `max_bytes` open, the oldest are
    let go early (written, never dropped). Log records join the trace their
    trace id names, in any order with its spans (the document joins them to
    their spans); one without a trace id has no document to go in, and goes
    to the dead letter.

    A trace is open per API key: trace ids come from clients, so a span sent
    with one key never joins (or is written under the name of) a trace sent
    with another, even with the same trace id; each gets its own document."""

    copies = True   # each span as its bytes
    wanted = nothing_wanted

    def __init__(self, idle: float, max_age: float, max_traces: int, max_bytes: int) -> None:
        self.idle, self.max_age = idle, max_age
        self.max_traces, self.max_bytes = max_traces, max_bytes
        self.open: dict[TraceKey, OpenTrace] = {}
        self.span_bytes = 0
        # The entries open traces hold: each request stays in memory (for the dead letter) until
        # the last of its traces is written, so the bound counts it too, once.
        self._kept = Holds()

    def add(self, entry: Entry, now: float, hold: Hold) -> list[Poison]:
        if entry.batch.signal.name == "traces":
            split = _native.trace_spans(entry.batch.wire)
            if split is not None:   # the spans' bytes cut from the request's, not decoded
                resources, spans = split
                for trace_id, _, wire, resource, name, version in spans:
                    self._keep(entry, trace_id, (wire, resources[resource], name, version), now, hold)
                entry.batch.compact()
                return []
        poisoned: list[Poison] = []
        untraced: set[int] = set()
        for position, item, ref, resource_wire in _spans(entry, now, hold, poisoned):
            if not item.trace_id and ref.__class__ is LogRef:
                untraced.add(position)
            elif ref.__class__ is LogRef:
                self._keep(entry, item.trace_id, ref, now, hold)
            else:
                self._keep(entry, item.trace_id, (item.SerializeToString(), resource_wire, ref.scope_name,
                                                  ref.scope_version), now, hold)
        if untraced:
            poisoned.append(poison(entry, _only(entry.batch, untraced),
                                   ValueError("log records without a trace id: no per-trace document to go in"),
                                   now, hold))
        entry.batch.compact()
        return poisoned

    def _keep(self, entry: Entry, trace_id: bytes, item: KeptSpan | LogRef, now: float, hold: Hold) -> None:
        """A span (as its bytes) or a log record joins the open trace of its API key and trace id."""
        key = (entry.batch.api_key_name, trace_id)
        trace = self.open.get(key)
        if trace is None:
            trace = self.open[key] = OpenTrace(now, now, trace_id=trace_id, api_key_name=key[0])
        if isinstance(item, LogRef):
            size = item.record.ByteSize()
            trace.logs.append(item)
        else:
            size = len(item[0])
            trace.parts.append(item)
        self.span_bytes += size
        if id(entry) not in trace.entries:
            self._kept.hold(entry)
        trace.take(entry, size, 1, now, hold)

    def due(self, now: float, everything: bool = False) -> list[Group]:
        ready: list[Group] = []
        for trace in [t for t in self.open.values()
                      if everything or now - t.touched >= self.idle or now - t.opened >= self.max_age]:
            self._close(trace)
            ready.append(trace)
        # Over a bound: write the oldest early rather than drop or grow without end.
        if len(self.open) > self.max_traces or self.bytes > self.max_bytes:
            for trace in sorted(self.open.values(), key=lambda t: t.opened):
                if len(self.open) <= self.max_traces and self.bytes <= self.max_bytes:
                    break
                self._close(trace)
                ready.append(trace)
        return ready

    def _close(self, trace: OpenTrace) -> None:
        del self.open[(trace.api_key_name, trace.trace_id)]
        self.span_bytes -= trace.size
        self._kept.release(list(trace.entries.values()))

    @property
    def bytes(self) -> int:
        """What open traces keep in memory: their spans' bytes and, once each, their requests."""
        return self.span_bytes + self._kept.bytes

    def next_due(self) -> float | None:
        if not self.open:
            return None
        return min(min(t.touched + self.idle, t.opened + self.max_age) for t in self.open.values())


@dataclass(eq=False)
class RecordGroup(Group):
    records: RecordStream = field(default_factory=RecordStream)   # CBOR, encoded and compressed as they come
    record_ids: list[int] = field(default_factory=list)
    members: dict[int, set[int]] = field(default_factory=dict)   # id(entry) -> positions of the items in it
    # The records' spans, a run of (entry, positions, span ids) per request, in record order: found
    # again only if a log event joins one, so the decoded requests need not stay in memory beside
    # their records. A run per request, not a tuple per record: an object of 10,000 records kept
    # 10,000 tuples alive for the garbage collector to walk (about 1 µs a span in-process).
    span_runs: list[tuple[Entry, Sequence[int], Sequence[bytes]]] = field(default_factory=list)
    logs: list[tuple[LogRef, Entry, int]] = field(default_factory=list)   # to join when the object closes

    def batches(self) -> list[Batch]:
        return [_only(entry.batch, self.members[key]) for key, entry in self.entries.items()]

    def spans(self) -> Iterator[tuple[Entry, int, bytes]]:
        """Each record's span as (entry, position, span id), in record order."""
        for entry, positions, span_ids in self.span_runs:
            for position, span_id in zip(positions, span_ids):
                yield entry, position, span_id


def _span_at(entry: Entry, position: int) -> SpanRef:
    """The span at `position` of an entry (its request decoded again if it was compacted)."""
    for rs in entry.batch.message.resource_spans:
        for ss in rs.scope_spans:
            if position < len(ss.spans):
                return SpanRef(ss.spans[position], to_dict(rs.resource.attributes), ss.scope.name, ss.scope.version)
            position -= len(ss.spans)
    raise IndexError("no such span in the entry")


class RecordBatcher:
    """Aperture records, one object every `every` seconds of at most `limit`
    records, and of one API key: an object never holds two keys' records.

    Log records routed here (GenAI events with the prompts and completions of
    a model call, see trace_json.joined) wait in the object of their API key
    and join their span's record when the object closes; one whose span is not
    in that object has no record to go in, and goes to the dead letter."""

    # The records are made as entries come, so an entry's payload is only wanted again when a log
    # event joins a record of its spans: `wanted` names those entries before their object closes.
    copies = True

    def __init__(self, every: float, limit: int, privacy: bool) -> None:
        self.every, self.limit, self.privacy = every, limit, privacy
        self.current: dict[str | None, RecordGroup] = {}   # by API key name
        self.full: list[RecordGroup] = []                  # objects at `limit`, closed when taken
        self._last_id = 0
        self._hold: Hold = lambda entry: None

    def _group(self, key_name: str | None, now: float) -> RecordGroup:
        group = self.current.get(key_name)
        if group is None:
            group = self.current[key_name] = RecordGroup(now, now, api_key_name=key_name)
        return group

    def add(self, entry: Entry, now: float, hold: Hold) -> list[Poison]:
        self._hold = hold
        batch = entry.batch
        poisoned: list[Poison] = []
        if batch.signal.name != "traces" or not self._add_spans(entry, now, hold, poisoned):
            self._add_items(entry, now, hold, poisoned)
        batch.compact()   # its records are made: keep the bytes, not the decoded request (several times larger)
        return poisoned

    # Record ids come from the arrival time (microseconds) and the rank of the record in its
    # request, so a replay after a restart numbers the same records the same; increasing.

    def _add_spans(self, entry: Entry, now: float, hold: Hold, poisoned: list[Poison]) -> bool:
        """A traces request's records, made by the core from its bytes: one call for the whole
        request, or one per run of spans between those Python is to make. False when Python
        is to split the request."""
        batch = entry.batch
        core = genai.native_table()
        base = int(batch.received * 1_000_000)
        start = count = 0
        split: Any = None
        bad: set[int] = set()
        first_error: BaseException | None = None
        while True:
            try:
                answer = core.aperture_records(batch.wire, start, self._last_id, base + count, self.privacy,
                                               batch.api_key_name)
            except Exception:  # noqa: BLE001 - what the core cannot make, Python does
                log.warning("destination: the core could not make Aperture records", exc_info=True)
                answer = None
            if answer is None and start == 0:
                return False
            cbor, made, stop = answer if answer is not None else (b"", [], start)
            self._gather(entry, cbor, made, now, hold)
            count += len(made)
            if stop is None:
                break
            # The span at `stop` is Python's to make.
            split = split or _native.trace_spans(batch.wire)
            assert split is not None, "the core split this request already"
            resources, spans = split
            _, span_id, wire, r, name, version = spans[stop]
            record_id = max(self._last_id + 1, base + count + 1)
            try:
                encoded = self._make(span_refs([(wire, resources[r], name, version)])[0], record_id,
                                     batch.api_key_name)
            except Exception as e:  # noqa: BLE001 - one bad span must not stop the destination
                bad.add(stop)
                first_error = first_error or e
            else:
                if encoded is not None:
                    self._gather(entry, encoded, [(stop, span_id, len(encoded), record_id)], now, hold)
                    count += 1
            start = stop + 1
        if bad:
            assert first_error is not None
            poisoned.append(poison(entry, _only(batch, bad), first_error, now, hold))
        return True

    def _add_items(self, entry: Entry, now: float, hold: Hold, poisoned: list[Poison]) -> None:
        """An entry's records made by Python from its decoded request, and its log records."""
        batch = entry.batch
        base = int(batch.received * 1_000_000)
        count = 0
        bad: set[int] = set()
        first_error: BaseException | None = None
        for position, item, ref, _ in _spans(entry, now, hold, poisoned):
            if ref.__class__ is LogRef:
                group = self._group(batch.api_key_name, now)
                group.take(entry, 0, 0, now, hold)
                group.logs.append((ref, entry, position))
                group.members.setdefault(id(entry), set()).add(position)
                continue
            record_id = max(self._last_id + 1, base + count + 1)
            try:
                encoded = self._make(ref, record_id, batch.api_key_name)
            except Exception as e:  # noqa: BLE001 - one bad span must not stop the destination
                bad.add(position)
                first_error = first_error or e
                continue
            if encoded is not None:
                self._gather(entry, encoded, [(position, item.span_id, len(encoded), record_id)], now, hold)
                count += 1
        if bad:
            assert first_error is not None
            poisoned.append(poison(entry, _only(batch, bad), first_error, now, hold))

    def _make(self, ref: SpanRef, record_id: int, api_key_name: str | None) -> bytes | None:
        """A span's record as Python makes it; None when the span is no model call."""
        genai_view = view(ref.span, ref.resource, ref.scope_name, ref.scope_version)
        rec = aperture_record(ref, genai_view, record_id=record_id, privacy=self.privacy, api_key_name=api_key_name)
        return encode_record(rec) if rec is not None else None

    def _gather(self, entry: Entry, cbor: bytes, made: list[tuple[int, bytes, int, int]], now: float,
                hold: Hold) -> None:
        """Records of an entry's spans, one after another in `cbor`, each `(position, span id,
        length, record id)`: into the open object of the entry's API key, a new one past `limit`."""
        key_name = entry.batch.api_key_name
        data = memoryview(cbor)
        at = done = 0
        while done < len(made):
            group = self._group(key_name, now)
            part = made[done:done + self.limit - len(group.records)]
            # Columns by zip (a request makes ~100 records: no Python loop per record).
            positions, span_ids, lengths, record_ids = zip(*part)
            size = sum(lengths)
            group.take(entry, len(part), len(part), now, hold)
            group.records.extend(data[at:at + size], lengths)
            group.record_ids.extend(record_ids)
            group.span_runs.append((entry, positions, span_ids))
            group.members.setdefault(id(entry), set()).update(positions)
            self._last_id = record_ids[-1]
            at += size
            done += len(part)
            if len(group.records) >= self.limit:
                self.full.append(self.current.pop(key_name))

    def _close(self, group: RecordGroup, now: float) -> list[Group]:
        """The object, its records joined with their log events; and the log records no record took."""
        if not group.logs:
            return [group]
        logs = [log for log, _, _ in group.logs]
        wanted = {log.record.span_id for log in logs}
        # (A span whose entry could not be read back joins nothing: its events go to the dead letter.)
        at, spans = [], []
        for i, (entry, position, span_id) in enumerate(group.spans()):
            if span_id in wanted and entry.on_disk is None:
                at.append(i)
                spans.append(_span_at(entry, position))
        refs, unjoined = joined(spans, logs)
        for i, ref, before in zip(at, refs, spans):
            if ref is before:
                continue   # no event joined it
            try:
                encoded = self._make(ref, group.record_ids[i], group.api_key_name)
            except Exception:  # noqa: BLE001 - the record as the span alone makes it stays
                log.warning("destination: cannot join log events to the record of span %s", ref.span.span_id.hex(),
                            exc_info=True)
                continue
            if encoded is not None:
                group.records.replace(i, encoded)
        if not unjoined:
            return [group]
        left = {id(log) for log in unjoined}
        stray: dict[int, tuple[Entry, set[int]]] = {}
        for log_ref, entry, position in group.logs:
            if id(log_ref) in left:
                stray.setdefault(id(entry), (entry, set()))[1].add(position)
        # An object of log records alone writes nothing: its strays take over its holds.
        out: list[Group] = [group] if group.records else []
        hold = self._hold if group.records else (lambda entry: None)
        for entry, positions in stray.values():
            if entry.on_disk is not None:
                continue   # could not be read back: the spool reported it lost
            part = _only(entry.batch, positions)
            lost = Poison(now, now, signal="logs", parts=[part],
                          reason="log records whose span has no record in this Aperture object")
            lost.take(entry, part.size, part.items, now, hold)
            out.append(lost)
        return out

    def due(self, now: float, everything: bool = False) -> list[Group]:
        closing = self._closing(now, everything)
        self.full = []
        for group in closing:
            if self.current.get(group.api_key_name) is group:
                del self.current[group.api_key_name]
        return [out for group in closing for out in self._close(group, now)]

    def wanted(self, now: float, everything: bool = False) -> list[Entry]:
        entries: dict[int, Entry] = {}
        for group in self._closing(now, everything):
            if group.logs:   # the spans they join, and themselves for those that join none
                joining = {log.record.span_id for log, _, _ in group.logs}
                needed = [entry for entry, _, span_id in group.spans() if span_id in joining]
                needed += [entry for _, entry, _ in group.logs]
                entries.update((id(entry), entry) for entry in needed if entry.on_disk is not None)
        return list(entries.values())

    def _closing(self, now: float, everything: bool) -> list[RecordGroup]:
        """The objects `due` closes now."""
        due = [group for group in self.current.values() if everything or now - group.opened >= self.every]
        return [*self.full, *due]

    def next_due(self) -> float | None:
        if self.full:
            return 0.0
        return min((g.opened + self.every for g in self.current.values()), default=None)


@dataclass(eq=False)
class LineGroup(Group):
    lines: list[bytes] = field(default_factory=list)


class LineBatcher:
    """OTLP JSON lines (one export request each) per signal, an object per
    `max_bytes` or `max_age`."""

    copies = True   # each request as its JSON line
    wanted = nothing_wanted

    def __init__(self, max_bytes: int, max_age: float) -> None:
        self.max_bytes, self.max_age = max_bytes, max_age
        self.current: dict[str, LineGroup] = {}
        self.full: list[Group] = []

    def add(self, entry: Entry, now: float, hold: Hold) -> list[Poison]:
        signal = entry.batch.signal.name
        try:
            line = otlp_json.encode(entry.batch.message) + b"\n"
        except Exception as e:  # noqa: BLE001 - one bad batch must not stop the destination
            return [poison(entry, entry.batch, e, now, hold)]
        group = self.current.get(signal)
        if group is None:
            group = self.current[signal] = LineGroup(now, now, signal=signal)
        group.take(entry, len(line), entry.batch.items, now, hold)
        group.lines.append(line)
        if group.size >= self.max_bytes:
            self.full.append(self.current.pop(signal))
        return []

    def due(self, now: float, everything: bool = False) -> list[Group]:
        ready, self.full = self.full, []
        for signal, group in list(self.current.items()):
            if everything or now - group.opened >= self.max_age:
                ready.append(self.current.pop(signal))
        return ready

    def next_due(self) -> float | None:
        if self.full:
            return 0.0
        return min((g.opened + self.max_age for g in self.current.values()), default=None)
