"""The loop between a destination's spool and the destination: read, export,
retry what may succeed later, acknowledge, and account for everything."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from otlp_router import telemetry
from otlp_router.destinations.base import Destination, ExportError, Gatherer
from otlp_router.settings import Section
from otlp_router.spool.base import Entry, Spool
from otlp_router.spool.deadletter import DeadLetters

log = logging.getLogger("otlp_router.delivery")


@dataclass(frozen=True)
class RetrySettings:
    initial_interval: float = 1.0
    max_interval: float = 30.0
    max_elapsed: float = 300.0   # 0: retry forever

    @classmethod
    def read(cls, section: Section) -> "RetrySettings":
        s = cls(section.duration("initial_interval", cls.initial_interval, minimum=0.001),
                section.duration("max_interval", cls.max_interval, minimum=0.001),
                section.duration("max_elapsed", cls.max_elapsed))
        section.done()
        return s

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter over the upper half, so a crowd of
        routers does not retry in lockstep."""
        ceiling = min(self.max_interval, self.initial_interval * (2 ** attempt))
        return ceiling * random.uniform(0.5, 1.0)


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
    """Runs one destination from its spool until the spool is closed and drained."""

    def __init__(self, destination: Destination, spool: Spool, retry: RetrySettings, batch: BatchSettings,
                 dead_letters: DeadLetters | None = None) -> None:
        self.dead_letters = dead_letters
        self.spool = spool
        self._tasks: list[asyncio.Task[None]] = []
        self._failing_since = 0.0
        self._use(destination, retry, batch)

    def _use(self, destination: Destination, retry: RetrySettings, batch: BatchSettings) -> None:
        self.destination, self.retry, self.batch = destination, retry, batch
        self.flush_interval = batch.flush_interval if batch.flush_interval is not None \
            else destination.default_flush_interval
        self.max_in_flight = batch.max_in_flight or destination.default_max_in_flight
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return self.destination.name

    async def start(self) -> None:
        if isinstance(self.destination, Gatherer):
            self.destination.bind(self._acknowledge)
        await self.destination.start()
        self._tasks = [asyncio.create_task(self._run(), name=f"delivery:{self.name}:{i}")
                       for i in range(self.max_in_flight)]

    async def replace(self, destination: Destination, retry: RetrySettings, batch: BatchSettings) -> None:
        """Carry on from the same spool with a new destination (a reload changed
        its settings): exports in flight go back to the spool, the old
        destination flushes what it gathered, the new one takes over."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.destination.stop()
        self._use(destination, retry, batch)
        await self.start()

    async def stop(self, timeout: float) -> None:
        """Close the spool, deliver what is in it within `timeout`, then stop the destination."""
        self.spool.close()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.destination.stop()
        left = self.spool.pending_items
        if left:
            if self.spool.durable:
                log.warning("destination %s: %d item(s) stay in the spool for the next start", self.name, left)
            else:
                log.error("destination %s: %d item(s) not delivered by the shutdown timeout are lost "
                          "(memory spool)", self.name, left)
                telemetry.exporter_dropped.labels(self.name, "traces", "shutdown").inc(left)
        release = getattr(self.spool, "release", None)
        if release is not None:
            release()

    async def _run(self) -> None:
        while True:
            entries = await self._next()
            if not entries:
                return
            await self._deliver(entries)

    async def _next(self) -> list[Entry]:
        """Entries for one export: what is there, topped up for `flush_interval`."""
        entries = await self.spool.read(self.batch.max_items, self.batch.max_bytes)
        if not entries or self.flush_interval <= 0:
            return entries
        items = sum(e.batch.items for e in entries)
        size = sum(e.size for e in entries)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_interval
        while items < self.batch.max_items and size < self.batch.max_bytes:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                more = await asyncio.wait_for(
                    self.spool.read(self.batch.max_items - items, self.batch.max_bytes - size), remaining)
            except asyncio.TimeoutError:
                break
            except asyncio.CancelledError:
                self.spool.requeue(entries)  # stopping mid-gather: hand them out again later
                raise
            if not more:
                break
            entries.extend(more)
            items += sum(e.batch.items for e in more)
            size += sum(e.size for e in more)
        return entries

    def _acknowledge(self, entries: list[Entry]) -> None:
        """A gatherer has written these entries."""
        items = sum(e.batch.items for e in entries)
        telemetry.exporter_sent.labels(self.name, entries[0].batch.signal.name).inc(items)
        self.spool.ack(entries)

    async def _deliver(self, entries: list[Entry]) -> None:
        if isinstance(self.destination, Gatherer):
            await self.destination.take(entries)
            return
        # One export carries one signal: split a mixed read into runs.
        start = 0
        for i in range(1, len(entries) + 1):
            if i == len(entries) or entries[i].batch.signal is not entries[start].batch.signal:
                await self._deliver_run(entries[start:i])
                start = i

    async def _deliver_run(self, entries: list[Entry]) -> None:
        batches = [e.batch for e in entries]
        items = sum(b.items for b in batches)
        signal = batches[0].signal.name
        started = time.monotonic()
        attempt = 0
        telemetry.export_batch_items.labels(self.name).observe(items)
        while True:
            attempt_started = time.monotonic()
            try:
                await self.destination.export(batches)
            except ExportError as e:
                error = e
            except asyncio.CancelledError:
                self.spool.requeue(entries)
                raise
            except Exception as e:  # a bug in a destination must not stop delivery
                log.exception("destination %s: unexpected error while exporting", self.name)
                error = ExportError(f"unexpected error: {e!r}")
            else:
                telemetry.export_latency.labels(self.name).observe(time.monotonic() - attempt_started)
                telemetry.exporter_sent.labels(self.name, signal).inc(items)
                self.spool.ack(entries)
                if self.last_error is not None:
                    log.info("destination %s: state ok (delivering again after %.1fs)", self.name,
                             time.monotonic() - self._failing_since)
                    self.last_error = None
                return
            telemetry.export_latency.labels(self.name).observe(time.monotonic() - attempt_started)
            if self.last_error is None:
                self._failing_since = time.monotonic()
                log.error("destination %s: state failing: %s", self.name, error)
            self.last_error = str(error)
            reason = "permanent" if error.permanent else "retryable"
            telemetry.exporter_failed.labels(self.name, signal, reason).inc(items)
            if error.permanent:
                if self.dead_letters is not None:
                    path = self.dead_letters.put(batches, str(error))
                    log.error("destination %s: rejected %d %s (%s); kept in the dead letter %s "
                              "(otlp-router replay)", self.name, items, signal, error, path.name)
                    telemetry.dead_lettered.labels(self.name, signal).inc(items)
                    self.spool.ack(entries)
                    return
                self._give_up(entries, items, signal, "rejected", str(error))
                return
            delay = error.retry_after if error.retry_after is not None else self.retry.backoff(attempt)
            delay = max(delay, 0.0)
            elapsed = time.monotonic() - started
            if self.retry.max_elapsed and elapsed + delay > self.retry.max_elapsed:
                self._give_up(entries, items, signal, "retries_exhausted",
                              f"{error} (gave up after {attempt + 1} attempt(s) over {elapsed:.1f}s)")
                return
            log.warning("destination %s: export of %d %s failed, retry %d in %.2fs: %s",
                        self.name, items, signal, attempt + 1, delay, error)
            attempt += 1
            await asyncio.sleep(delay)

    def _give_up(self, entries: list[Entry], items: int, signal: str, reason: str, message: str) -> None:
        log.error("destination %s: dropped %d %s (%s): %s", self.name, items, signal, reason, message)
        telemetry.exporter_dropped.labels(self.name, signal, reason).inc(items)
        self.spool.ack(entries)
