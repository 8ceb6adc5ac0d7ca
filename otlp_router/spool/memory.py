"""An in-memory spool: bounded, fast, and lost with the process."""

from __future__ import annotations

import asyncio
from collections import deque

from otlp_router.model.batch import Batch
from otlp_router.spool.base import Entry, Spool


class MemorySpool(Spool):
    durable = False

    def __init__(self, destination: str, max_bytes: int, retry_after: float = 1.0) -> None:
        super().__init__(destination, max_bytes, retry_after)
        self._queue: deque[Entry] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._seq = 0
        self._bytes = 0      # appended, not yet acknowledged
        self._items = 0
        # Unacknowledged entries by sequence number, oldest first (acks come out of order).
        self._unacked: dict[int, Entry] = {}

    async def append(self, batch: Batch) -> None:
        if self._closed:
            raise RuntimeError(f"spool of {self.destination} is closed")
        self._seq += 1
        self._enqueue(Entry(batch, batch.size, self._seq))

    def _enqueue(self, entry: Entry) -> None:
        """Hand an entry out to readers and count it as pending until acknowledged."""
        self._queue.append(entry)
        self._unacked[entry.seq] = entry
        self._bytes += entry.size
        self._items += entry.batch.items
        self._ready.set()

    async def read(self, max_items: int, max_bytes: int) -> list[Entry]:
        while not self._queue:
            if self._closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        out = [self._queue.popleft()]
        items, size = out[0].batch.items, out[0].size
        while self._queue:
            nxt = self._queue[0]
            if items + nxt.batch.items > max_items or size + nxt.size > max_bytes:
                break
            out.append(self._queue.popleft())
            items += nxt.batch.items
            size += nxt.size
        return out

    def ack(self, entries: list[Entry]) -> None:
        for entry in entries:
            self._bytes -= entry.size
            self._items -= entry.batch.items
            self._unacked.pop(entry.seq, None)

    def requeue(self, entries: list[Entry]) -> None:
        self._queue.extendleft(reversed(entries))
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    @property
    def oldest_pending(self) -> float | None:
        first = next(iter(self._unacked.values()), None)
        return None if first is None else first.batch.received

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    @property
    def pending_items(self) -> int:
        return self._items
