"""The disk spool under any order of appends, reads, acks, requeues, crashes,
restarts and failed steps (ENOSPC or a crash at every fault point).

Invariants: a record whose append returned (the client was answered) is
either acknowledged by the reader or readable after a restart; nothing
readable was never appended; a sequence number always names the same record
over the life of the directory; start-up never finds a gap or damage of its
own making."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.spool.base import FAULT_POINTS, Entry, SpoolFull
from otlp_router.spool.disk import DiskSpool
from tests.support import make_request

SPOOL_POINTS = [p for p in FAULT_POINTS if not p.startswith("deadletter.")]
NEVER = 1e9  # ack_interval: saves only when a rule asks


class Crash(Exception):
    """kill -9 at a fault point: the spool object is abandoned right after."""


class Inline(concurrent.futures.Executor):
    """Spool I/O at once on the calling thread, so every run replays exactly."""

    def submit(self, fn, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:
            future.set_exception(e)
        return future


_WIRE = {n: make_request(spans=1 + n % 3, seed=1 + n % 200).SerializeToString() for n in range(400)}


def _batch(n: int) -> Batch:
    return Batch(TRACES, None, 1 + n % 3, _WIRE[n % 400], api_key_name=f"id-{n}")


def _id(entry: Entry) -> int:
    return int(entry.batch.api_key_name.split("-")[1])


class SpoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-crash-"))
        self.loop = asyncio.new_event_loop()
        self.executor = Inline()
        self.options: dict = {"fsync": "batch", "segment_bytes": 1, "reserve_bytes": 0}
        self.spool: DiskSpool | None = None
        self.next_id = 0
        self.attempted: set[int] = set()      # every append begun
        self.answered: set[int] = set()       # appends that returned: the client was told "stored"
        self.delivered: set[int] = set()      # acknowledged by the reader
        self.outstanding: dict[int, Entry] = {}  # handed out, not yet acknowledged or requeued
        self.names: dict[int, int] = {}       # seq -> id, over the life of the directory
        self.fault: tuple[str, str] | None = None  # (point, "enospc" | "crash"), fires once
        self.crashed = False

    # -- plumbing ---------------------------------------------------------

    def _hook(self, point: str) -> None:
        if self.fault is None or self.fault[0] != point:
            return
        _, kind = self.fault
        self.fault = None
        if kind == "crash":
            self.crashed = True
            raise Crash(point)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def _run(self, coro):
        return self.loop.run_until_complete(coro)

    def _open(self) -> None:
        for _ in range(3):  # a fault may fail an open (one-shot: the next one works)
            spool = DiskSpool("dest", self.dir, 1 << 30, executor=self.executor, **self.options)
            spool.ack_interval = NEVER
            spool._last_save = time.monotonic()  # not even the first ack saves unless a rule asks
            spool.fault = self._hook
            self.crashed = False
            try:
                spool.open()
            except (Crash, OSError):
                continue
            self.spool = spool
            self._check_recovered()
            return
        raise AssertionError("the spool does not open")

    def _note(self, entries: list[Entry]) -> None:
        for entry in entries:
            n = _id(entry)
            assert n in self.attempted, f"record {n} was never appended"
            assert entry.batch.wire == _WIRE[n % 400]
            assert self.names.setdefault(entry.seq, n) == n, \
                f"sequence number {entry.seq} reused: record {self.names[entry.seq]}, now {n}"

    def _check_recovered(self) -> None:
        assert self.spool is not None
        recovery = self.spool.recovery
        assert recovery.missing_records == 0, recovery
        assert recovery.corrupt_records == 0 and recovery.torn_bytes == 0, recovery
        entries = list(self.spool._queue)
        self._note(entries)
        readable = {_id(e) for e in entries}
        lost = self.answered - self.delivered - readable
        assert not lost, f"answered, never delivered, gone after the restart: {sorted(lost)}"
        self.outstanding = {}

    def _after_crash(self) -> None:
        assert self.spool is not None
        self.spool._abandon()
        self.spool = None
        self._open()

    def _guarded(self, step) -> None:
        """Run a step; a crash at a fault point abandons the spool and starts a new one."""
        try:
            step()
        except Crash:
            pass
        if self.crashed:
            self._after_crash()

    # -- rules ------------------------------------------------------------

    @initialize(fsync=st.sampled_from(["batch", "always", "never"]), segment_bytes=st.sampled_from([1, 600, 1 << 20]),
                reserve=st.booleans())
    def start(self, fsync: str, segment_bytes: int, reserve: bool) -> None:
        self.options = {"fsync": fsync, "segment_bytes": segment_bytes, "reserve_bytes": 4096 if reserve else 0}
        self._open()

    @rule(count=st.integers(1, 3))
    def append(self, count: int) -> None:
        def step() -> None:
            for _ in range(count):
                n = self.next_id
                self.next_id += 1
                self.attempted.add(n)
                try:
                    self._run(self.spool.append(_batch(n)))
                except SpoolFull:
                    continue
                self.answered.add(n)
        self._guarded(step)

    @precondition(lambda self: self.spool is not None and self.spool._queue)
    @rule(items=st.integers(1, 6))
    def read(self, items: int) -> None:
        entries = self._run(self.spool.read(items, 1 << 30))
        self._note(entries)
        for entry in entries:
            assert entry.seq not in self.outstanding, "handed out twice at once"
            self.outstanding[entry.seq] = entry

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data(), save=st.booleans())
    def ack(self, data: st.DataObject, save: bool) -> None:
        """Any subset, in any order, in one or more calls; `save`: the mark is due."""
        chosen = data.draw(st.permutations(sorted(self.outstanding)))
        chosen = chosen[:data.draw(st.integers(1, len(chosen)))]
        cut = data.draw(st.integers(1, len(chosen)))

        def step() -> None:
            self.spool.ack_interval = 0 if save else NEVER
            try:
                for part in (chosen[:cut], chosen[cut:]):
                    entries = [self.outstanding.pop(seq) for seq in part]
                    if entries:
                        self._run(self._ack(entries))  # never raises (a Crash is caught inside)
                        self.delivered.update(_id(e) for e in entries)
            finally:
                if self.spool is not None:
                    self.spool.ack_interval = NEVER
        self._guarded(step)

    async def _ack(self, entries: list[Entry]) -> None:
        self.spool.ack(entries)

    @precondition(lambda self: self.spool is not None and self.spool._queue)
    @rule(items=st.integers(1, 6), save=st.booleans())
    def deliver(self, items: int, save: bool) -> None:
        """Read and acknowledge at once (the common case, in one step)."""
        self.read(items)
        entries = [self.outstanding.pop(seq) for seq in sorted(self.outstanding)]

        def step() -> None:
            self.spool.ack_interval = 0 if save else NEVER
            try:
                self._run(self._ack(entries))
                self.delivered.update(_id(e) for e in entries)
            finally:
                if self.spool is not None:
                    self.spool.ack_interval = NEVER
        self._guarded(step)

    @rule(clean=st.booleans())
    def restart(self, clean: bool) -> None:
        """A crash (descriptors closed, nothing saved: kill -9), or release() then open."""
        if not clean:
            self._after_crash()
            return
        self.spool.release()
        self.spool = None
        self._open()

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        seqs = data.draw(st.lists(st.sampled_from(sorted(self.outstanding)), min_size=1, unique=True))
        self.spool.requeue([self.outstanding.pop(seq) for seq in sorted(seqs)])

    @rule(point=st.sampled_from(SPOOL_POINTS), kind=st.sampled_from(["enospc", "crash"]))
    def inject(self, point: str, kind: str) -> None:
        self.fault = (point, kind)

    @invariant()
    def accounting(self) -> None:
        if self.spool is not None:
            pending = self.spool._unacked
            assert self.spool.pending_items == sum(e.batch.items for e in pending.values())
            assert not set(self.outstanding) - set(pending)

    def teardown(self) -> None:
        try:
            if self.spool is not None:
                self.spool._abandon()
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)


SpoolMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None, database=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_spool_survives_any_crash_order = SpoolMachine.TestCase


def setup_module() -> None:
    # The machine fails saves on purpose; their error lines are expected.
    logging.getLogger("otlp_router.spool").setLevel(logging.CRITICAL)


def teardown_module() -> None:
    logging.getLogger("otlp_router.spool").setLevel(logging.NOTSET)
