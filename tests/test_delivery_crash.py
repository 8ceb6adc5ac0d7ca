"""Crash-point testing of the spool and the delivery engine together.

Hypothesis drives a disk spool and its delivery through any sequence of
appends, time passing, a destination that fails for now, for good or slowly,
crashes (kill -9: nothing saved), clean restarts, reloads and ENOSPC at any
step the spool takes; then the destination comes back and everything drains.
The promise checked: every record acknowledged to a client is delivered or in
the dead letter, and nothing is delivered that was never appended."""

from __future__ import annotations

import asyncio
import errno
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from otlp_router.destinations.assembly import Group
from otlp_router.destinations.base import Destination, ExportError
from otlp_router.destinations.delivery import BatchSettings, Delivery, RetrySettings
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.settings import Section
from otlp_router.spool.base import FAULT_POINTS, SpoolFull
from otlp_router.spool.deadletter import DeadLetters
from otlp_router.spool.disk import DiskSpool
from tests.support import numbered_request

RETRY = RetrySettings(initial_interval=0.002, max_interval=0.01, max_elapsed=0.0)
MODES = ("ok", "retryable", "permanent", "slow", "bug")
SPOOL_POINTS = [p for p in FAULT_POINTS if not p.startswith("deadletter.")]


class Destination_(Destination):
    """A destination whose behaviour the machine switches; `world` records what
    it accepted (across restarts, as a real backend would)."""

    type_name = "machine"

    def __init__(self, world: "DeliveryMachine") -> None:
        super().__init__("machine", Section({}, "t.yaml", "destinations.machine"))
        self.world = world

    async def export(self, group: Group) -> None:
        mode = self.world.mode
        if mode == "slow":
            await asyncio.sleep(0.01)
        elif mode == "retryable":
            raise ExportError("HTTP 503", retry_after=0.0)
        elif mode == "permanent":
            raise ExportError("HTTP 400", permanent=True)
        elif mode == "bug":
            raise KeyError("a bug")
        for batch in group.batches():
            for rs in batch.message.resource_spans:
                for ss in rs.scope_spans:
                    self.world.delivered.update(s.span_id for s in ss.spans)


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="delivery-crash-"))
        self.loop = asyncio.new_event_loop()
        self.mode = "ok"
        self.delivered: set[bytes] = set()
        self.acked: set[bytes] = set()        # answered 200 to a client
        self.appended: set[bytes] = set()     # every append tried, refused or not
        self.next = 0
        self.dead = DeadLetters(self.dir / "dead", 3600)
        self.spool: DiskSpool | None = None
        self.delivery: Delivery | None = None

    # -- lifecycle ------------------------------------------------------------

    def _run(self, coro: object) -> object:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def _open(self) -> None:
        self.spool = DiskSpool("machine", self.dir / "spool", 1 << 22, fsync="batch", segment_bytes=4096)
        self.spool.open()
        self.delivery = Delivery(Destination_(self), self.spool, RETRY, BatchSettings(max_items=30),
                                 self.dead)
        self._run(self.delivery.start())

    @initialize()
    def start(self) -> None:
        self._open()

    def teardown(self) -> None:
        try:
            if self.delivery is not None:
                self.mode = "ok"
                self.spool.fault = None
                self._run(self._drain())
                self._run(self.delivery.stop(1.0))
                dead = {s.span_id for letter in self.dead.list() for b in letter.batches
                        for rs in b.message.resource_spans for ss in rs.scope_spans for s in ss.spans}
                lost = self.acked - self.delivered - dead
                assert not lost, f"{len(lost)} acknowledged span(s) lost"
                assert (self.delivered | dead) <= self.appended, "delivered what was never appended"
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    async def _drain(self) -> None:
        async def poll() -> None:
            while self.spool.pending_items:
                await asyncio.sleep(0.005)
        await asyncio.wait_for(poll(), 20)

    # -- rules ----------------------------------------------------------------

    @rule(count=st.integers(1, 4))
    def append(self, count: int) -> None:
        for _ in range(count):
            request = numbered_request(self.next, spans=3)
            self.next += 1
            ids = {s.span_id for s in request.resource_spans[0].scope_spans[0].spans}
            self.appended |= ids
            try:
                self.spool.check_room(request.ByteSize())
                self._run(self.spool.append(Batch(TRACES, request, 3, request.SerializeToString())))
            except SpoolFull:
                continue   # refused: the client retries, nothing was promised
            self.acked |= ids

    @rule(ms=st.integers(0, 15))
    def time_passes(self, ms: int) -> None:
        self._run(asyncio.sleep(ms / 1000))

    @rule(mode=st.sampled_from(MODES))
    def destination_behaves(self, mode: str) -> None:
        self.mode = mode

    @rule(point=st.sampled_from(SPOOL_POINTS), times=st.integers(1, 3))
    def disk_fails(self, point: str, times: int) -> None:
        left = [times]

        def fault(step: str) -> None:
            if step == point and left[0] > 0:
                left[0] -= 1
                raise OSError(errno.ENOSPC, "No space left on device")
        self.spool.fault = fault

    @rule()
    def disk_recovers(self) -> None:
        self.spool.fault = None

    @rule()
    def crash(self) -> None:
        """kill -9: the engine's tasks vanish, the spool saves nothing."""
        main = self.delivery._main
        if main is not None:
            main.cancel()
            self._run(asyncio.gather(main, return_exceptions=True))
        self.spool._abandon()
        self._open()

    @rule()
    def restart(self) -> None:
        self.spool.fault = None
        self._run(self.delivery.stop(0.05))
        self._open()

    @rule(max_items=st.integers(1, 50))
    def reload(self, max_items: int) -> None:
        self._run(self.delivery.replace(Destination_(self), RETRY, BatchSettings(max_items=max_items), 0.5))

    @precondition(lambda self: self.delivery is not None)
    @invariant()
    def nothing_delivered_that_was_never_appended(self) -> None:
        assert self.delivered <= self.appended


DeliveryMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
TestDeliveryCrashPoints = DeliveryMachine.TestCase
