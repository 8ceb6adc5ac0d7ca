"""The delivery engine: one retry loop, classification, dead letters, and a
cancellation at any await point that leaves every entry in the spool.

In-process, with a scripted destination; each test names the finding of
issue 13 it first reproduced."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

import cbor2
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otlp_router import _native

from otlp_router.destinations.assembly import Group, OpenTrace, RecordBatcher, Runs, TraceAssembler
from otlp_router.destinations.base import Destination, ExportError
from otlp_router.destinations.delivery import BatchSettings, Delivery, RetrySettings
from otlp_router.model.batch import Batch, items_of
from otlp_router.model.signals import SIGNALS, TRACES
from otlp_router.settings import Section
from otlp_router.spool.deadletter import DeadLetters
from otlp_router.spool.disk import DiskSpool
from otlp_router.spool.memory import MemorySpool
from tests.support import make_request

FAST = RetrySettings(initial_interval=0.01, max_interval=0.02, max_elapsed=0.0)


class Scripted(Destination):
    """A destination whose export runs `behaviour(group, attempt)`; it records what it took."""

    type_name = "scripted"

    def __init__(self, behaviour: Callable[[Group, int], Any] | None = None, **attrs: Any) -> None:
        super().__init__("scripted", Section({}, "t.yaml", "destinations.scripted"))
        self.behaviour = behaviour or (lambda group, attempt: None)
        self.attempts = 0
        self.delivered: list[bytes] = []    # span ids
        self.stopped = False
        for k, v in attrs.items():
            setattr(self, k, v)

    async def export(self, group: Group) -> None:
        self.attempts += 1
        outcome = self.behaviour(group, self.attempts)
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        for batch in group.batches():
            for rs in batch.message.resource_spans:
                for ss in rs.scope_spans:
                    self.delivered.extend(s.span_id for s in ss.spans)

    async def stop(self) -> None:
        self.stopped = True


def batch(seed: int, spans: int = 2) -> Batch:
    request = make_request(spans=spans, seed=seed)
    return Batch(TRACES, request, spans, request.SerializeToString())


def span_ids(*seeds: int, spans: int = 2) -> list[bytes]:
    return [s.span_id for seed in seeds for s in make_request(spans=spans, seed=seed).resource_spans[0]
            .scope_spans[0].spans]


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait for a condition; a liveness bound, not a timing assertion."""
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout)


def delivery(destination: Destination, spool: Any = None, retry: RetrySettings = FAST,
             dead: DeadLetters | None = None, **batch: Any) -> Delivery:
    return Delivery(destination, spool or MemorySpool("scripted", 1 << 24), retry,
                    BatchSettings(**batch), dead)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_batch_is_exported_and_acknowledged() -> None:
    async def go() -> None:
        dest = Scripted()
        d = delivery(dest)
        await d.start()
        await d.spool.append(batch(1))
        await until(lambda: d.spool.pending_items == 0)
        await d.stop(1.0)
        assert dest.delivered == span_ids(1)
        assert d.last_error is None and dest.stopped
    run(go())


def test_retries_exhausted_go_to_the_dead_letter_not_away(tmp_path: Path) -> None:
    """Finding 2: past max_elapsed a batch used to be acknowledged and dropped."""
    async def go() -> None:
        dest = Scripted(lambda g, a: (_ for _ in ()).throw(ExportError("HTTP 503: busy")))
        dead = DeadLetters(tmp_path / "dead", 3600)
        d = delivery(dest, retry=RetrySettings(0.01, 0.02, max_elapsed=0.1), dead=dead)
        await d.start()
        await d.spool.append(batch(1))
        await until(lambda: d.spool.pending_items == 0)
        await d.stop(1.0)
        letters = dead.list()
        assert len(letters) == 1 and "gave up after" in letters[0].reason and "503" in letters[0].reason
        assert [s.span_id for s in letters[0].batches[0].message.resource_spans[0].scope_spans[0].spans] == \
            span_ids(1)
        assert d.last_error is not None  # the state says failing until an export works again
    run(go())


def test_by_default_retries_go_on_for_as_long_as_the_spool_has_room() -> None:
    assert RetrySettings().max_elapsed == 0.0
    assert RetrySettings.read(Section({}, "t.yaml", "retry")).max_elapsed == 0.0


@pytest.mark.parametrize("hint", [None, 0.0, 0.001])
def test_a_retry_hint_raises_the_backoff_and_never_lowers_it(hint: float | None) -> None:
    """Finding 3: `Retry-After: 0` replaced the backoff and made a hot loop."""
    retry = RetrySettings(initial_interval=1.0, max_interval=30.0)
    for attempt in range(10):
        assert retry.delay(attempt, hint) >= 0.5 * min(30.0, 2 ** attempt)
    assert retry.delay(0, 12.0) >= 12.0
    assert retry.delay(100, None) <= 30.0


def test_retry_after_zero_backs_off_in_the_engine() -> None:
    async def go() -> None:
        dest = Scripted(lambda g, a: (_ for _ in ()).throw(ExportError("HTTP 429", retry_after=0.0)))
        d = delivery(dest, retry=RetrySettings(initial_interval=0.05, max_interval=0.1))
        await d.start()
        await d.spool.append(batch(1))
        await asyncio.sleep(0.3)
        await d.stop(0.1)
        assert dest.attempts <= 10   # about 5 with the backoff; thousands without
    run(go())


def test_a_reload_during_the_backoff_hands_the_entries_to_the_new_destination() -> None:
    """Finding 4: a cancel during the backoff sleep stranded the entries."""
    async def go() -> None:
        failing = Scripted(lambda g, a: (_ for _ in ()).throw(ExportError("down")))
        d = delivery(failing, retry=RetrySettings(initial_interval=30.0, max_interval=30.0))
        await d.start()
        await d.spool.append(batch(1))
        await until(lambda: failing.attempts == 1)
        await asyncio.sleep(0.05)              # now in the 15-30 s backoff sleep
        working = Scripted()
        await d.replace(working, FAST, BatchSettings())
        await until(lambda: d.spool.pending_items == 0)
        assert working.delivered == span_ids(1) and failing.stopped
        await d.stop(1.0)
    run(go())


def test_shutdown_with_a_destination_that_never_answers_is_bounded_and_keeps_the_spool(tmp_path: Path) -> None:
    """Finding 5: stop used to retry an unwritable store without end."""
    async def hang(group: Group, attempt: int) -> None:
        await asyncio.sleep(3600)

    async def first() -> None:
        spool = DiskSpool("scripted", tmp_path / "spool", 1 << 24)
        spool.open()
        d = delivery(Scripted(hang), spool)
        await d.start()
        await spool.append(batch(1))
        await spool.append(batch(2))
        await asyncio.wait_for(d.stop(0.3), 1.3)   # shutdown_timeout plus a second

    async def second() -> list[bytes]:
        spool = DiskSpool("scripted", tmp_path / "spool", 1 << 24)
        spool.open()
        dest = Scripted()
        d = delivery(dest, spool)
        await d.start()
        await until(lambda: spool.pending_items == 0)
        await d.stop(1.0)
        return dest.delivered

    run(first())
    assert sorted(run(second())) == sorted(span_ids(1, 2))


def test_a_permanent_refusal_is_dead_lettered_and_the_rest_goes_on(tmp_path: Path) -> None:
    async def go() -> None:
        def refuse_seed_2(group: Group, attempt: int) -> None:
            if any(b.message.resource_spans[0].scope_spans[0].spans[0].trace_id == bytes([2] * 16)
                   for b in group.batches()):
                raise ExportError("HTTP 400: bad", permanent=True)
        dest = Scripted(refuse_seed_2)
        dead = DeadLetters(tmp_path / "dead", 3600)
        d = delivery(dest, dead=dead, max_items=2)
        await d.start()
        for seed in (1, 2, 3):
            await d.spool.append(batch(seed))
        await until(lambda: d.spool.pending_items == 0)
        await d.stop(1.0)
        assert sorted(dest.delivered) == sorted(span_ids(1, 3))
        assert [letter.reason for letter in dead.list()] == ["HTTP 400: bad"]
    run(go())


def test_an_exception_in_an_export_is_poison_for_that_group_only(tmp_path: Path) -> None:
    """Finding 12: an error that was not an ExportError killed the destination silently."""
    async def go() -> None:
        def crash_on_seed_2(group: Group, attempt: int) -> None:
            if group.batches()[0].message.resource_spans[0].scope_spans[0].spans[0].trace_id == bytes([2] * 16):
                raise OverflowError("cannot convert float infinity to integer")
        dest = Scripted(crash_on_seed_2)
        dead = DeadLetters(tmp_path / "dead", 3600)
        d = delivery(dest, dead=dead, max_items=2)
        await d.start()
        for seed in (1, 2, 3):
            await d.spool.append(batch(seed))
        await until(lambda: d.spool.pending_items == 0)
        assert "OverflowError" in d.last_dead_letter and d.dead_lettered == 2   # on the status page
        await d.spool.append(batch(4))
        await until(lambda: d.spool.pending_items == 0)
        await d.stop(1.0)
        assert sorted(dest.delivered) == sorted(span_ids(1, 3, 4))
        assert ["OverflowError" in letter.reason for letter in dead.list()] == [True]
    run(go())


def test_a_span_that_cannot_be_gathered_is_dead_lettered_alone(tmp_path: Path, monkeypatch) -> None:
    """Finding 12, at the item: one span's record fails, its neighbours are written."""
    from otlp_router.destinations import assembly

    def record(ref: Any, genai: Any, **kw: Any) -> dict[str, str]:
        if ref.span.name == "span-1":
            raise TypeError("'list' object is not a mapping")
        return {"span": ref.span.name}
    monkeypatch.setattr(assembly, "aperture_record", record)
    monkeypatch.setattr(assembly, "view", lambda span, resource, *_: type("GenAI", (), {"is_genai": True})())

    class LeftToPython:   # the core leaves every request to Python, whose record fails for span-1
        def aperture_records(self, *args: Any) -> None:
            return None
    monkeypatch.setattr(assembly.genai, "native_table", LeftToPython)

    class Records(Scripted):
        def assembler(self, max_items: int, max_bytes: int, flush_interval: float) -> Any:
            return RecordBatcher(0.01, 100, False)

    async def go() -> None:
        dest = Records()
        dead = DeadLetters(tmp_path / "dead", 3600)
        d = delivery(dest, dead=dead)
        await d.start()
        await d.spool.append(batch(1, spans=3))
        await until(lambda: d.spool.pending_items == 0)
        await d.stop(1.0)
        ids = span_ids(1, spans=3)
        assert sorted(dest.delivered) == sorted([ids[0], ids[2]])
        [letter] = dead.list()
        assert "TypeError" in letter.reason
        assert [s.span_id for s in letter.batches[0].message.resource_spans[0].scope_spans[0].spans] == [ids[1]]
    run(go())


def test_a_dead_letter_that_cannot_be_written_is_tried_again_and_the_entry_kept(tmp_path: Path) -> None:
    """Finding 13: ENOSPC while dead-lettering must neither lose nor kill."""
    class FullOnce(DeadLetters):
        failures = 2

        def put(self, batches: list[Batch], reason: str) -> Path:
            if self.failures:
                self.failures -= 1
                raise OSError(28, "No space left on device")
            return super().put(batches, reason)

    async def go() -> None:
        dest = Scripted(lambda g, a: (_ for _ in ()).throw(ExportError("HTTP 400", permanent=True)))
        dead = FullOnce(tmp_path / "dead", 3600)
        d = delivery(dest, dead=dead)
        await d.start()
        await d.spool.append(batch(1))
        await until(lambda: d.spool.pending_items == 0)
        await d.stop(1.0)
        assert dead.failures == 0 and len(dead.list()) == 1
    run(go())


def test_an_engine_task_that_dies_marks_the_destination_failing_and_restarts() -> None:
    """Finding 10: an exception in the gathering path stopped a destination silently."""
    class Broken(Runs):
        crashes = 1

        def due(self, now: float, everything: bool = False) -> list[Group]:
            groups = super().due(now, everything)
            if groups and Broken.crashes:
                Broken.crashes -= 1
                raise RuntimeError("bug in an assembler")
            return groups

    class WithBroken(Scripted):
        def assembler(self, max_items: int, max_bytes: int, flush_interval: float) -> Any:
            return Broken(max_items, max_bytes, flush_interval)

    async def go() -> None:
        dest = WithBroken()
        d = delivery(dest)
        await d.start()
        await d.spool.append(batch(1))
        await until(lambda: d.last_error is not None)
        assert "bug in an assembler" in d.last_error
        await until(lambda: d.spool.pending_items == 0)   # restarted: the entry was requeued and delivered
        assert dest.delivered == span_ids(1) and d.last_error is None
        await d.stop(1.0)
    run(go())


def test_concurrent_exports_finishing_out_of_order_acknowledge_each_entry_once(tmp_path: Path) -> None:
    async def go() -> None:
        async def jitter(group: Group, attempt: int) -> None:
            await asyncio.sleep(0.05 if attempt % 2 else 0.0)
            if attempt % 3 == 0:
                raise ExportError("HTTP 503")
        spool = DiskSpool("scripted", tmp_path / "spool", 1 << 24)
        spool.open()
        dest = Scripted(jitter)
        d = delivery(dest, spool, max_items=2, max_in_flight=4)
        await d.start()
        for seed in range(1, 21):
            await spool.append(batch(seed))
        await until(lambda: spool.pending_items == 0)
        await d.stop(1.0)
        assert sorted(set(dest.delivered)) == sorted(span_ids(*range(1, 21)))
    run(go())
    spool = DiskSpool("scripted", tmp_path / "spool", 1 << 24)
    assert spool.open().records == 0
    spool.release()


def test_reloads_under_load_never_hang_and_lose_nothing() -> None:
    """A reload's cancellation arriving as the writer wakes used to be swallowed
    (asyncio.wait_for on 3.11): the engine then waited for ever."""
    async def go() -> None:
        delivered: list[bytes] = []

        async def jitter(group: Group, attempt: int) -> None:
            await asyncio.sleep(0.002 * (attempt % 3))

        def fresh() -> Scripted:
            dest = Scripted(jitter)
            dest.delivered = delivered
            return dest
        d = delivery(fresh(), max_items=3, max_in_flight=4)
        await d.start()
        seeds = list(range(1, 121))
        for n, seed in enumerate(seeds):
            await d.spool.append(batch(seed))
            if n % 4 == 0:
                await asyncio.wait_for(d.replace(fresh(), FAST, BatchSettings(max_items=1 + n % 5, flush_interval=0.001,
                                                                             max_in_flight=4)), 5)
        await until(lambda: d.spool.pending_items == 0)
        await asyncio.wait_for(d.stop(1.0), 3)
        assert set(delivered) == set(span_ids(*seeds))
    run(go())


# -- a destination that gathers copies: the payloads wait on disk ---------------------------------

class PerTrace(Scripted):
    """Gathers whole traces, as per-trace JSON does: it exports the spans' own bytes."""

    def assembler(self, max_items: int, max_bytes: int, flush_interval: float) -> TraceAssembler:
        return TraceAssembler(idle=0.01, max_age=60.0, max_traces=1000, max_bytes=1 << 30)

    async def export(self, group: Group) -> None:
        assert isinstance(group, OpenTrace)
        self.attempts += 1
        self.on_disk = [e.on_disk is not None for e in group.entries.values()]
        outcome = self.behaviour(group, self.attempts)
        if asyncio.iscoroutine(outcome):
            await outcome
        self.delivered.extend(Span.FromString(wire).span_id for wire, *_ in group.parts)


def _one_trace(dest: PerTrace, directory: Path, dead: DeadLetters | None = None) -> None:
    """One request through a delivery on a disk spool, until the spool has none of it left."""
    async def go() -> None:
        spool = DiskSpool("scripted", directory, 1 << 24)
        spool.open()
        d = delivery(dest, spool, dead=dead)
        await d.start()
        await d.spool.append(batch(1))
        await until(lambda: d.spool.pending_items == 0)
        await d.stop(1.0)
    run(go())


def test_while_its_traces_are_open_a_requests_payload_waits_on_disk_not_in_memory(tmp_path: Path) -> None:
    dest = PerTrace()
    _one_trace(dest, tmp_path / "spool")
    assert dest.on_disk == [True] and sorted(dest.delivered) == sorted(span_ids(1))


def test_a_refused_trace_is_dead_lettered_whole_from_the_payload_read_back(tmp_path: Path) -> None:
    dest = PerTrace(lambda g, a: (_ for _ in ()).throw(ExportError("HTTP 400: bad", permanent=True)))
    dead = DeadLetters(tmp_path / "dead", 3600)
    _one_trace(dest, tmp_path / "spool", dead)
    assert dest.on_disk == [True]
    [letter] = dead.list()
    assert [s.span_id for b in letter.batches for s in b.message.resource_spans[0].scope_spans[0].spans] == \
        span_ids(1)


def test_a_payload_that_cannot_be_read_back_for_its_dead_letter_is_reported_and_the_spool_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def corrupt_then_refuse(group: Group, attempt: int) -> None:
        [entry] = group.entries.values()
        path, offset = entry.on_disk
        with open(path, "r+b") as f:
            f.seek(offset + 20)
            f.write(b"\xff\xff\xff")
        raise ExportError("HTTP 400: bad", permanent=True)
    dead = DeadLetters(tmp_path / "dead", 3600)
    _one_trace(PerTrace(corrupt_then_refuse), tmp_path / "spool", dead)
    assert any("cannot read back record" in r.getMessage() for r in caplog.records)
    assert dead.list() == []


# -- Aperture objects: the payloads wait on disk, and come back for a log event's join ------------

class Objects(Scripted):
    """Gathers Aperture records, as `format: cbor_zstd` does: it exports the records."""

    def assembler(self, max_items: int, max_bytes: int, flush_interval: float) -> RecordBatcher:
        return RecordBatcher(0.3, 100, False)

    async def export(self, group: Group) -> None:
        self.attempts += 1
        self.behaviour(group, self.attempts)
        self.records = [cbor2.loads(r) for r in group.records.records()]


def _on_the_wire(kind: str, body: bytes) -> Batch:
    signal = SIGNALS[kind]
    wire = _native.json_to_proto(kind, body)
    return Batch(signal, None, sum(1 for _ in items_of(Batch(signal, None, 0, wire))), wire)


def _an_object_with_a_log_event(directory: Path, while_open: Callable[[Delivery], None] = lambda d: None,
                                dead: DeadLetters | None = None) -> Objects:
    """A log event (GenAI details, with one record that has no span), then its span, through an
    Aperture delivery on a disk spool; `while_open` sees the delivery once both are gathered."""
    from tests.test_storage_destinations import _details_log_json, _genai_span_json
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    dest = Objects()

    async def go() -> None:
        spool = DiskSpool("scripted", directory, 1 << 24)
        spool.open()
        d = delivery(dest, spool, dead=dead)
        await d.start()
        await d.spool.append(_on_the_wire("logs", _details_log_json(trace_id, span_id)))
        await d.spool.append(_on_the_wire("traces", _genai_span_json(trace_id, span_id)))
        await until(lambda: sum(len(g.logs) + len(g.record_ids) for g in d._assembler.current.values()) == 3)
        while_open(d)
        await until(lambda: d.spool.pending_items == 0)
        await d.stop(1.0)
    run(go())
    return dest


def _open_entries(d: Delivery) -> list[Any]:
    [group] = d._assembler.current.values()
    return [entry for entry, _, _ in group.spans()] + [entry for _, entry, _ in group.logs]


def test_while_an_object_fills_its_entries_wait_on_disk_and_a_log_event_still_joins_its_record(
        tmp_path: Path) -> None:
    seen: list[bool] = []
    dest = _an_object_with_a_log_event(tmp_path / "spool",
                                       lambda d: seen.extend(e.on_disk is not None for e in _open_entries(d)))
    assert seen == [True, True, True]
    [record] = dest.records
    assert record["model"] == "gpt-4o-mini"
    assert "secret prompt" in record["capture"]["requestBody"]
    assert "secret answer" in record["capture"]["responseBody"]


def _corrupt(index: int) -> Callable[[Delivery], None]:
    """Damage the record of the object's entry at `index` (spans first, then log events)."""
    def corrupt(d: Delivery) -> None:
        path, offset = _open_entries(d)[index].on_disk
        with open(path, "r+b") as f:
            f.seek(offset + 20)
            f.write(b"\xff\xff\xff")
    return corrupt


def test_a_span_that_cannot_be_read_back_keeps_its_record_and_its_events_go_to_the_dead_letter(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = DeadLetters(tmp_path / "dead", 3600)
    dest = _an_object_with_a_log_event(tmp_path / "spool", _corrupt(0), dead)
    [record] = dest.records
    assert record["model"] == "gpt-4o-mini" and record["capture"]["requestBody"] is None
    assert any("cannot read back record" in r.getMessage() for r in caplog.records)
    [letter] = dead.list()
    assert len(letter.batches[0].message.resource_logs[0].scope_logs[0].log_records) == 2


def test_log_events_that_cannot_be_read_back_still_join_from_what_the_object_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The events an object waits with are kept decoded; only the one with no span, for the dead
    letter, needed the payload: the spool reports it lost."""
    dead = DeadLetters(tmp_path / "dead", 3600)
    dest = _an_object_with_a_log_event(tmp_path / "spool", _corrupt(-1), dead)
    assert "secret prompt" in dest.records[0]["capture"]["requestBody"]
    assert any("cannot read back record" in r.getMessage() for r in caplog.records)
    assert dead.list() == []


def test_the_log_record_without_a_span_goes_to_the_dead_letter_read_back_from_disk(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "dead", 3600)
    dest = _an_object_with_a_log_event(tmp_path / "spool", dead=dead)
    assert "secret prompt" in dest.records[0]["capture"]["requestBody"]
    [letter] = dead.list()
    [log_record] = letter.batches[0].message.resource_logs[0].scope_logs[0].log_records
    assert log_record.body.string_value == "no trace here"


def test_a_refused_object_is_dead_lettered_whole_from_the_payloads_read_back(tmp_path: Path) -> None:
    from tests.test_storage_destinations import _genai_span_json
    span_ids_sent = ["eee19b7ec3c1b174", "eee19b7ec3c1b175"]
    dest = Objects(lambda g, a: (_ for _ in ()).throw(ExportError("HTTP 403: AccessDenied", permanent=True)))
    dead = DeadLetters(tmp_path / "dead", 3600)

    async def go() -> None:
        spool = DiskSpool("scripted", tmp_path / "spool", 1 << 24)
        spool.open()
        d = delivery(dest, spool, dead=dead)
        await d.start()
        for span_id in span_ids_sent:
            await d.spool.append(_on_the_wire("traces", _genai_span_json("5b8efff798038103d269b633813fc60c", span_id)))
        await until(lambda: sum(len(g.record_ids) for g in d._assembler.current.values()) == 2)
        assert all(e.on_disk is not None for e in _open_entries(d))
        await until(lambda: d.spool.pending_items == 0)
        await d.stop(1.0)
    run(go())
    [letter] = dead.list()
    assert [s.span_id.hex() for b in letter.batches for s in b.message.resource_spans[0].scope_spans[0].spans] == \
        span_ids_sent
