"""The delivery engine, one for every destination:

    spool → assembler → export → classify → retry with backoff → ack, or dead letter

A reader takes entries from the destination's spool into its assembler; a
writer exports the groups that come due, at most `max_in_flight` at a time,
each through the one retry loop (`_deliver`). An entry is acknowledged to the
spool once every group holding items of it is exported or dead-lettered.
Whatever is held when the engine stops — shutdown, reload, a crash of its own
tasks — goes back to the spool in one place (`_run`'s `finally`), so a
cancellation at any await point loses nothing.

The promise is at-least-once: an item is acknowledged only after its
destination took it or it is in the dead letter. Duplicates appear when the
process dies between an export and its acknowledgement, when a reload or
shutdown interrupts an export that had in fact arrived, and when an entry
spread over several groups (per-trace JSON) is handed out again after some
of them were written."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from otlp_router import logs, telemetry
from otlp_router.destinations.assembly import Assembler, Group, Holds, Poison, poison
from otlp_router.destinations.base import Destination, ExportError
from otlp_router.destinations.loadbalance import LoadBalancedDestination
from otlp_router.model.batch import Batch
from otlp_router.settings import Section
from otlp_router.spool.base import Entry, Spool
from otlp_router.spool.deadletter import DeadLetters

log = logging.getLogger("otlp_router.delivery")

# How far the reader gets ahead of a destination whose export slots are all busy: what is read
# waits in memory (its bytes, held), not in the spool, so the bound is in bytes as well.
READ_AHEAD_ENTRIES = 4096
READ_AHEAD_BYTES = 32 * 1024 * 1024
READ_BACK_ROUNDS = 3


@dataclass(frozen=True)
class RetrySettings:
    initial_interval: float = 1.0
    max_interval: float = 30.0
    max_elapsed: float = 0.0   # 0: retry for as long as the spool has room

    @classmethod
    def read(cls, section: Section) -> "RetrySettings":
        s = cls(section.duration("initial_interval", cls.initial_interval, minimum=0.001),
                section.duration("max_interval", cls.max_interval, minimum=0.001),
                section.duration("max_elapsed", cls.max_elapsed))
        section.done()
        return s

    def delay(self, attempt: int, hint: float | None = None) -> float:
        """Exponential backoff with jitter over the upper half (a crowd of routers
        does not retry in lockstep); a server's hint raises it, never lowers it."""
        ceiling = min(self.max_interval, self.initial_interval * (2 ** min(attempt, 60)))
        return max(ceiling * random.uniform(0.5, 1.0), hint or 0.0)


@dataclass(frozen=True)
class BatchSettings:
    """Export when `max_items` or `max_bytes` are reached or `flush_interval`
    has passed since the first item, whichever comes first."""

    max_items: int = 8192
    max_bytes: int = 8 * 1024 * 1024
    flush_interval: float | None = None   # None: the destination's default
    max_in_flight: int | None = None      # concurrent exports; None: the destination's default

    @classmethod
    def read(cls, section: Section, max_in_flight: int | None = None) -> "BatchSettings":
        s = cls(section.int("max_spans", cls.max_items, minimum=1),
                section.size("max_bytes", cls.max_bytes, minimum=1),
                section.duration("flush_interval", None),
                max_in_flight)
        section.done()
        return s


class Delivery:
    """Runs one destination from its spool until the spool is closed and drained.

    A `loadbalance:` destination has a child delivery per endpoint, each with
    its own spool (`endpoint_delivery` makes them); this one only splits what
    it reads into theirs."""

    def __init__(self, destination: Destination, spool: Spool, retry: RetrySettings, batch: BatchSettings,
                 dead_letters: DeadLetters | None = None,
                 endpoint_delivery: Callable[[str, Destination], "Delivery"] | None = None) -> None:
        self.dead_letters = dead_letters
        self.spool = spool
        self.children: dict[str, Delivery] = {}
        self._endpoint_delivery = endpoint_delivery
        self._error: str | None = None
        self.dead_lettered = 0                       # items, since start
        self.last_dead_letter: str | None = None     # its reason, for the status page
        self._failing_since = 0.0
        self._main: asyncio.Task[None] | None = None
        self._use(destination, retry, batch)

    def _use(self, destination: Destination, retry: RetrySettings, batch: BatchSettings) -> None:
        self.destination, self.retry, self.batch = destination, retry, batch
        flush = batch.flush_interval if batch.flush_interval is not None else destination.default_flush_interval
        self.flush_interval = flush
        self.max_in_flight = batch.max_in_flight or destination.default_max_in_flight

    @property
    def name(self) -> str:
        return self.destination.name

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        destination = self.destination
        if isinstance(destination, LoadBalancedDestination):
            assert self._endpoint_delivery is not None, "a loadbalance destination needs endpoint deliveries"
            for endpoint, child in zip(destination.endpoints, destination.children):
                if endpoint not in self.children:
                    self.children[endpoint] = self._endpoint_delivery(endpoint, child)
                    await self.children[endpoint].start()
            destination.queues = [self.children[e].spool for e in destination.endpoints]
        await destination.start()
        self._main = asyncio.create_task(self._supervise(), name=f"delivery:{self.name}")

    async def replace(self, destination: Destination, retry: RetrySettings, batch: BatchSettings,
                      timeout: float = 10.0) -> None:
        """Carry on from the same spool with a new destination (a reload changed
        its settings): what the old one held goes back to the spool, the new
        one takes over. An endpoint a reload removed hands its queue back here,
        to be split over the endpoints there are now."""
        await self._halt()
        await self._bounded(self.destination.stop(), timeout, "stopping")
        kept = dict(zip(destination.endpoints, destination.children)) \
            if isinstance(destination, LoadBalancedDestination) else {}
        for endpoint, child in list(self.children.items()):
            if endpoint in kept:
                await child.replace(kept[endpoint], retry, batch, timeout)
            else:
                await child.hand_back(self.spool, timeout)
                del self.children[endpoint]
        self._use(destination, retry, batch)
        await self.start()

    async def hand_back(self, spool: Spool, timeout: float) -> None:
        """Stop, moving everything this delivery's spool holds into `spool`."""
        await self._halt()
        self.spool.close()
        moved = 0
        try:
            while entries := await self.spool.read(1 << 30, 1 << 62):
                for entry in entries:
                    await spool.append(entry.batch)
                self.spool.ack(entries)
                moved += sum(e.batch.items for e in entries)
        except Exception as e:  # noqa: BLE001 - what could not be moved stays in this spool
            log.error("destination %s: cannot hand its queue back (%s); %d item(s) stay in its spool",
                      self.name, e, self.spool.pending_items)
        if moved:
            log.info("destination %s: removed; handed %d item(s) back to be sent elsewhere", self.name, moved)
        await self.stop(timeout)

    async def stop(self, timeout: float) -> None:
        """Close the spool, deliver what is in it within `timeout`, then stop the
        destination; what is left stays in a durable spool for the next start."""
        deadline = time.monotonic() + timeout
        self.spool.close()
        if self._main is not None:
            done, _ = await asyncio.wait([self._main], timeout=timeout)
            if not done:
                await self._halt()
        await self._bounded(self.destination.stop(), max(0.1, deadline - time.monotonic()), "stopping")
        # Endpoint queues last: what this one split went into them.
        await asyncio.gather(*(c.stop(max(0.1, deadline - time.monotonic())) for c in self.children.values()))
        left = self.spool.pending_items
        if left:
            if self.spool.durable:
                log.warning("destination %s: %d item(s) stay in the spool for the next start", self.name, left)
            else:
                log.error("destination %s: %d item(s) not delivered by the shutdown timeout are lost "
                          "(memory spool)", self.name, left)
                telemetry.exporter_dropped.labels(self.name, "traces", "shutdown").inc(left)
        await self.spool.flush_acks()   # off the event loop; release() then has little left to write
        release = getattr(self.spool, "release", None)
        if release is not None:
            release()

    async def _halt(self) -> None:
        if self._main is not None:
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)
            self._main = None

    async def _bounded(self, step: Awaitable[None], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                await step
        except TimeoutError:
            log.error("destination %s: %s took longer than %.1fs; left behind", self.name, what, timeout)
        except Exception:  # noqa: BLE001 - a destination failing to close must not stop the router
            log.exception("destination %s: error while %s", self.name, what)

    async def _supervise(self) -> None:
        """Run the engine; should a task of its own die of a bug, say so, mark the
        destination failing, and start again (its entries are back in the spool)."""
        attempt = 0
        while True:
            try:
                await self._run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the engine restarts rather than stop delivering silently
                log.exception("destination %s: delivery stopped by an unexpected error; restarting", self.name)
                self._failed(f"delivery stopped by an unexpected error: {e!r}")
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1

    # -- the engine -------------------------------------------------------

    async def _run(self) -> None:
        self._holds = Holds()
        self._assembler: Assembler = self.destination.assembler(
            self.batch.max_items, self.batch.max_bytes, self.flush_interval)
        self._wake = asyncio.Event()
        self._reading = True
        self._slots = asyncio.Semaphore(self.max_in_flight)
        self._exports: set[asyncio.Task[None]] = set()
        reader = asyncio.create_task(self._read_loop(), name=f"delivery:{self.name}:read")
        writer = asyncio.create_task(self._write_loop(), name=f"delivery:{self.name}:write")
        try:
            done, _ = await asyncio.wait([reader, writer], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()                      # a crash of either is the engine's crash
            await writer
        finally:
            for task in (reader, writer, *self._exports):
                task.cancel()
            await asyncio.gather(reader, writer, *self._exports, return_exceptions=True)
            held = self._holds.abandon()
            if held:
                self.spool.requeue(held)

    async def _read_loop(self) -> None:
        while True:
            # Do not read far ahead of a destination that is the bottleneck (every
            # export slot busy): what is read waits in memory, not in the spool.
            while (self._slots.locked() and self._exports
                   and (len(self._holds) > READ_AHEAD_ENTRIES or self._holds.bytes > READ_AHEAD_BYTES)):
                await asyncio.wait(set(self._exports), return_when=asyncio.FIRST_COMPLETED)
            entries = await self.spool.read(self.batch.max_items, self.batch.max_bytes)
            if not entries:
                self._reading = False
                self._wake.set()
                return
            now = time.monotonic()
            for entry in entries:
                self._holds.hold(entry)               # the reader's own hold, until gathered
                try:
                    poisoned = self._assembler.add(entry, now, self._holds.hold)
                except Exception as e:  # noqa: BLE001 - a bug in an assembler: the whole entry is poison
                    poisoned = [poison(entry, entry.batch, e, now, self._holds.hold)]
                for group in poisoned:
                    self._start(self._dead_letter_group(group, group.reason))
                self._done([entry])
                if self._assembler.copies and not poisoned and entry in self._holds:
                    # Its groups hold copies of its items: the payload waits on disk for a dead letter.
                    self.spool.let_go(entry)
            self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            due_at = self._assembler.next_due()
            if due_at is None and not self._reading:
                break
            timeout = None if due_at is None else max(0.0, due_at - time.monotonic())
            if timeout != 0.0:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the
                # cancellation of a reload or shutdown when the event fires at the
                # same moment, and this loop would then wait for ever.
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            now, everything = time.monotonic(), not self._reading
            await self._read_back(now, everything)
            due = self._assembler.due(now, everything)   # at once: nothing is let go in between
            due.reverse()
            while due:
                group = due.pop()   # let go of each as it starts: thousands of traces may come due at once
                if isinstance(group, Poison):   # what an assembler found it cannot place when it closed a group
                    self._start(self._dead_letter_group(group, group.reason))
                    continue
                await self._slots.acquire()
                self._start(self._deliver(group), release_slot=True)
        while self._exports:
            await asyncio.wait(set(self._exports))

    async def _read_back(self, now: float, everything: bool) -> None:
        """Read back from the spool the payloads the groups coming due need again (log events
        joining records made from them). A payload that cannot be read is reported by the spool
        and left out (what needed it goes to the dead letter); new ones may be let go meanwhile,
        so this asks again, a few times."""
        unreadable: set[int] = set()
        for _ in range(READ_BACK_ROUNDS):
            entries = [e for e in self._assembler.wanted(now, everything) if id(e) not in unreadable]
            if not entries:
                return
            unreadable.update(id(e) for e in await self.spool.reload(entries))

    def _start(self, work: object, release_slot: bool = False) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._exports.add(task)

        def finished(t: asyncio.Task[None]) -> None:
            self._exports.discard(t)
            if release_slot:
                self._slots.release()
            if not t.cancelled() and t.exception() is not None:
                # _deliver catches everything an export raises; this is a bug in the engine itself.
                log.error("destination %s: export task failed", self.name, exc_info=t.exception())
                self._failed(f"export task failed: {t.exception()!r}")
        task.add_done_callback(finished)

    def _done(self, entries: list[Entry]) -> None:
        ready = self._holds.release(entries)
        if ready:
            self.spool.ack(ready)

    async def _deliver(self, group: Group) -> None:
        """The one retry loop: export until it works, is refused for good, or
        outlives `max_elapsed`; the last two go to the dead letter."""
        started = time.monotonic()
        attempt = 0
        telemetry.export_batch_items.labels(self.name).observe(group.items)
        while True:
            attempt_started = time.monotonic()
            try:
                await self.destination.export(group)
            except ExportError as e:
                error = e
            except Exception as e:  # noqa: BLE001 - an item the exporter cannot handle is refused, not retried forever
                log.exception("destination %s: cannot export %d %s", self.name, group.items, group.signal)
                error = ExportError(f"cannot export: {e!r}", permanent=True)
            else:
                telemetry.export_latency.labels(self.name).observe(time.monotonic() - attempt_started)
                telemetry.exporter_sent.labels(self.name, group.signal).inc(group.items)
                self._recovered()
                self._done(list(group.entries.values()))
                return
            telemetry.export_latency.labels(self.name).observe(time.monotonic() - attempt_started)
            telemetry.exporter_failed.labels(self.name, group.signal,
                                             "permanent" if error.permanent else "retryable").inc(group.items)
            self._failed(str(error))
            if error.permanent:
                await self._dead_letter_group(group, str(error))
                return
            delay = self.retry.delay(attempt, error.retry_after)
            elapsed = time.monotonic() - started
            if self.retry.max_elapsed and elapsed + delay > self.retry.max_elapsed:
                await self._dead_letter_group(
                    group, f"{error} (gave up after {attempt + 1} attempt(s) over {elapsed:.1f}s)", "exhausted")
                return
            log.warning("destination %s: export of %d %s failed, retry %d in %.2fs: %s",
                        self.name, group.items, group.signal, attempt + 1, delay, error)
            attempt += 1
            await asyncio.sleep(delay)

    async def _dead_letter_group(self, group: Group, reason: str, why: str = "rejected") -> None:
        """Keep a group's items in the dead letter, then let go of its entries.
        A dead letter that cannot be written (disk full) is tried again: until
        it is written, the entries stay in the spool."""
        # The reason often quotes the backend's answer, which can echo a secret
        # header back; it goes to a file, the status page and the log: masked.
        reason = logs.mask(reason)
        unreadable = await self.spool.reload(list(group.entries.values()))
        if unreadable:   # logged and counted as lost by the spool; what can be read is kept
            for entry in unreadable:
                del group.entries[id(entry)]
            if not group.entries and not isinstance(group, Poison):
                self._done(unreadable)
                return
        attempt = 0
        while True:
            try:
                path = await self._put_dead_letter(group, reason)
                break
            except OSError as e:
                self._failed(f"cannot write the dead letter: {e.strerror or e}")
                log.error("destination %s: cannot write the dead letter (%s); trying again", self.name,
                          e.strerror or e)
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
        kind = "poison" if isinstance(group, Poison) else why
        self.dead_lettered += group.items
        self.last_dead_letter = reason
        if path:
            telemetry.dead_lettered.labels(self.name, group.signal, kind).inc(group.items)
        where = f"kept in the dead letter {path}" if path else "lost: this destination has no dead letter"
        log.error("destination %s: %s %d %s (%s); %s (otlp-router replay)", self.name,
                  {"rejected": "rejected", "exhausted": "gave up on", "poison": "could not handle"}[kind],
                  group.items, group.signal, reason, where)
        self._done([*group.entries.values(), *unreadable])

    async def _put_dead_letter(self, group: Group, reason: str) -> str | None:
        if self.dead_letters is None:
            telemetry.exporter_dropped.labels(self.name, group.signal, "no_dead_letter").inc(group.items)
            return None
        path = await self.dead_letters.put_async(group.batches(), reason)
        return path.name

    # -- state ------------------------------------------------------------

    @property
    def last_error(self) -> str | None:
        """Why the destination (or one of its endpoints) is failing; None when it is ok."""
        if self._error is not None:
            return self._error
        for endpoint, child in self.children.items():
            if child.last_error is not None:
                return f"endpoint {endpoint}: {child.last_error}"
        return None

    def _failed(self, error: str) -> None:
        # Masked before it is kept: last_error reaches /api/status and /readyz,
        # and a backend's answer can quote the request's secret headers.
        error = logs.mask(error)
        if self._error is None:
            self._failing_since = time.monotonic()
            log.error("destination %s: state failing: %s", self.name, error)
        self._error = error

    def _recovered(self) -> None:
        if self._error is not None:
            log.info("destination %s: state ok (delivering again after %.1fs)", self.name,
                     time.monotonic() - self._failing_since)
            self._error = None


async def export_once(destination: Destination, batches: list[Batch]) -> None:
    """Gather `batches` as the destination does and export every group once,
    now (`otlp-router replay`); raises the first `ExportError`."""
    assembler = destination.assembler(1 << 62, 1 << 62, 0.0)
    now = time.monotonic()
    for n, batch in enumerate(batches):
        poisoned = assembler.add(Entry(batch, batch.size, n), now, lambda entry: None)
        if poisoned:
            raise ExportError(poisoned[0].reason, permanent=True)
    for group in assembler.due(now, everything=True):
        if isinstance(group, Poison):
            raise ExportError(group.reason, permanent=True)
        await destination.export(group)
