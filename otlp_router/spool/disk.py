"""A durable spool: an append-only log on disk in front of the in-memory queue.

Layout under the destination's directory::

    00000000000000000001.seg   segments named by their first record's sequence number
    acked                      every record up to the first number is delivered, and those listed after it
    lock                       held while a router uses the directory

Each record is ``[u32 length][u32 crc32][payload]`` and the payload is the
batch's protobuf bytes behind a small header (signal, items, arrival time, API
key name). An append returns once the record is written and, per `fsync`,
on disk: `always` syncs every append, `batch` lets every append made while
one fsync runs share the next (group commit), `never` leaves it to the OS.

At start-up everything after `acked` is read back and handed out again, so
an acknowledged export survives a crash; a torn or corrupt tail is cut at the
last good record, and a bad record in the middle of a segment is reported,
counted, and the rest of that segment skipped.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from otlp_router import telemetry
from otlp_router.model.batch import Batch
from otlp_router.model.signals import SIGNALS
from otlp_router.spool.base import Entry, SpoolFull
from otlp_router.spool.memory import MemorySpool

log = logging.getLogger("otlp_router.spool")

_FRAME = struct.Struct("<II")            # payload length, crc32 of the payload
_HEADER = struct.Struct("<BdIBH")        # version, received, items, signal name length, API key name length
_VERSION = 1
_MAX_RECORD = 1 << 30
FSYNC_POLICIES = ("always", "batch", "never")


@dataclass
class Recovery:
    """What start-up found on disk."""

    records: int = 0
    torn_bytes: int = 0
    corrupt_records: int = 0
    skipped_bytes: int = 0


def record_parts(batch: Batch) -> list[bytes]:
    """A record as the pieces to write: no copy of the (large) protobuf bytes."""
    signal = batch.signal.name.encode()
    key = (batch.api_key_name or "").encode()
    head = _HEADER.pack(_VERSION, batch.received, batch.items, len(signal), len(key)) + signal + key
    wire = batch.wire
    return [_FRAME.pack(len(head) + len(wire), zlib.crc32(wire, zlib.crc32(head))), head, wire]


def encode_record(batch: Batch) -> bytes:
    return b"".join(record_parts(batch))


def decode_payload(payload: bytes) -> Batch:
    version, received, items, signal_len, key_len = _HEADER.unpack_from(payload)
    if version != _VERSION:
        raise ValueError(f"unknown record version {version}")
    at = _HEADER.size
    signal = SIGNALS[payload[at:at + signal_len].decode()]
    at += signal_len
    key = payload[at:at + key_len].decode() or None
    at += key_len
    return Batch(signal, None, items, payload[at:], api_key_name=key, received=received)


def scan(path: Path) -> tuple[list[tuple[int, bytes]], int, int | None]:
    """Good records of a segment as (offset, payload), the end of the last good
    one, and the offset of the first bad record (None if the file is clean)."""
    data = path.read_bytes()
    records = []
    at = 0
    while at < len(data):
        if len(data) - at < _FRAME.size:
            return records, at, at
        length, crc = _FRAME.unpack_from(data, at)
        start = at + _FRAME.size
        if length > _MAX_RECORD or start + length > len(data):
            return records, at, at
        payload = data[start:start + length]
        if zlib.crc32(payload) != crc:
            return records, at, at
        records.append((at, payload))
        at = start + length
    return records, at, None


def read_acked(directory: Path) -> tuple[int, set[int]]:
    """The acknowledged mark of a spool directory, and the numbers acknowledged past it."""
    path = directory / "acked"
    if not path.exists():
        return 0, set()
    numbers = [int(n) for n in path.read_text().split()]
    return (numbers[0], set(numbers[1:])) if numbers else (0, set())


def pending_records(directory: Path) -> int:
    """How many records of a (closed) spool directory are not acknowledged."""
    mark, above = read_acked(directory)
    pending = 0
    for path in sorted(directory.glob("*.seg")):
        records, _, _ = scan(path)
        first = int(path.stem)
        pending += sum(1 for n in range(len(records)) if first + n > mark and first + n not in above)
    return pending


class DiskSpool(MemorySpool):
    durable = True

    def __init__(self, destination: str, directory: Path, max_bytes: int, fsync: str = "batch",
                 segment_bytes: int = 32 * 1024 * 1024, retry_after: float = 1.0) -> None:
        super().__init__(destination, max_bytes, retry_after)
        self.dir = Path(directory)
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._segments: list[tuple[int, Path]] = []      # (first seq, path), oldest first
        self._fd = -1
        self._written = 0                                  # bytes in the current segment
        self._acked_seq = 0
        self._acked_above: set[int] = set()                # acknowledged out of order, past the mark
        self.ack_interval = 0.2
        self._acked_saved = 0.0
        self._commit: asyncio.Future[None] | None = None
        self._syncing = False
        self._unsynced: list[int] = []                     # rotated segment fds still to sync
        self._lock_fd = -1
        self.recovery = Recovery()

    # -- start-up ---------------------------------------------------------

    def open(self) -> Recovery:
        """Lock the directory, read back what was not acknowledged, start a new segment."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise RuntimeError(f"spool {self.dir} is in use by another router process") from None
        self._acked_seq, self._acked_above = self._read_acked()
        self._seq = self._acked_seq
        segments = sorted(self.dir.glob("*.seg"))
        for i, path in enumerate(segments):
            first = int(path.stem)
            records, good_end, bad_at = scan(path)
            last_segment = i == len(segments) - 1
            if bad_at is not None:
                size = path.stat().st_size
                if last_segment:
                    self.recovery.torn_bytes += size - good_end
                    log.warning("spool %s: %s ends in a torn or corrupt record: cut %d byte(s) at offset %d",
                                self.destination, path.name, size - good_end, good_end)
                else:
                    self.recovery.corrupt_records += 1
                    self.recovery.skipped_bytes += size - bad_at
                    telemetry.spool_corrupt.labels(self.destination).inc()
                    log.error("spool %s: corrupt record at offset %d of %s: skipped the rest of the segment "
                              "(%d byte(s))", self.destination, bad_at, path.name, size - bad_at)
                with open(path, "r+b") as f:
                    f.truncate(good_end)
            for n, (_, payload) in enumerate(records):
                seq = first + n
                self._seq = max(self._seq, seq)
                if seq <= self._acked_seq or seq in self._acked_above:
                    continue
                self._enqueue(Entry(decode_payload(payload), _FRAME.size + len(payload), seq))
            if records or not last_segment:
                self._segments.append((first, path))
        self.recovery.records = len(self._unacked)
        self._delete_acked_segments()
        self._new_segment()
        if self.recovery.records or self.recovery.torn_bytes or self.recovery.corrupt_records:
            log.info("spool %s: recovered %d record(s) to deliver (%d torn byte(s) cut, %d corrupt record(s))",
                     self.destination, self.recovery.records, self.recovery.torn_bytes,
                     self.recovery.corrupt_records)
        return self.recovery

    # -- appending --------------------------------------------------------

    def _new_segment(self) -> None:
        if self._fd >= 0:
            if self.fsync == "never":
                os.close(self._fd)
            else:
                self._unsynced.append(self._fd)  # closed by the next commit, after its fsync
        first = self._seq + 1
        path = self.dir / f"{first:020d}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._written = os.fstat(self._fd).st_size
        self._segments.append((first, path))

    async def append(self, batch: Batch) -> None:
        if self._closed:
            raise RuntimeError(f"spool of {self.destination} is closed")
        parts = record_parts(batch)
        size = sum(map(len, parts))
        try:
            written = os.writev(self._fd, parts)
            if written != size:
                raise OSError(errno.ENOSPC, "short write")
        except OSError as e:
            # Leave no partial record behind, and tell the client to come back.
            # Either way the next append goes to a new segment: once this one
            # is acknowledged it is deleted, and the space (disk full) or the
            # file size (a size limit) comes back. A remnant that cannot be
            # cut stays a tail that start-up reports, not a gap between records.
            try:
                os.ftruncate(self._fd, self._written)
            except OSError:
                pass
            if self._written:
                try:
                    self._new_segment()
                except OSError:
                    pass
            telemetry.spool_write_errors.labels(self.destination).inc()
            raise SpoolFull(self.destination, f"cannot write the spool: {e.strerror or e}", self.retry_after) \
                from None
        self._written += size
        self._seq += 1
        self._enqueue(Entry(batch, size, self._seq))
        if self._written >= self.segment_bytes:
            self._new_segment()
        if self.fsync == "always":
            await self._sync_now()
        elif self.fsync == "batch":
            await self._group_commit()

    async def _sync_now(self) -> None:
        fds, self._unsynced = self._unsynced, []
        await asyncio.to_thread(self._sync, [*fds, self._fd], fds)

    @staticmethod
    def _sync(fds: list[int], close: list[int]) -> None:
        for fd in fds:
            os.fsync(fd)
        for fd in close:
            os.close(fd)

    async def _group_commit(self) -> None:
        """Wait for the fsync that covers this append. One fsync runs at a time;
        every append made while it runs shares the next one (group commit)."""
        if self._commit is None:
            self._commit = asyncio.get_running_loop().create_future()
            if not self._syncing:
                # After the callbacks already due, so this loop turn's appends join in.
                asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._run_commits()))
        await asyncio.shield(self._commit)

    async def _run_commits(self) -> None:
        self._syncing = True
        try:
            while self._commit is not None:
                future, self._commit = self._commit, None
                try:
                    await self._sync_now()
                except OSError as e:
                    future.set_exception(SpoolFull(self.destination, f"cannot sync the spool: {e.strerror or e}",
                                                   self.retry_after))
                else:
                    future.set_result(None)
        finally:
            self._syncing = False

    # -- acknowledging ----------------------------------------------------

    def _read_acked(self) -> tuple[int, set[int]]:
        return read_acked(self.dir)

    def ack(self, entries: list[Entry]) -> None:
        super().ack(entries)
        self._acked_above.update(entry.seq for entry in entries)
        mark = next(iter(self._unacked)) - 1 if self._unacked else self._seq
        self._acked_above = {seq for seq in self._acked_above if seq > mark}
        if mark > self._acked_seq:
            self._acked_seq = mark
            self._delete_acked_segments()
        # The mark is saved at most every `ack_interval`: a crash in between
        # only means a few duplicates, never a loss.
        now = time.monotonic()
        if now - self._acked_saved >= self.ack_interval:
            self._save_acked()
            self._acked_saved = now

    def _save_acked(self) -> None:
        tmp = self.dir / "acked.tmp"
        tmp.write_text(" ".join(map(str, [self._acked_seq, *sorted(self._acked_above)])))
        os.replace(tmp, self.dir / "acked")

    def _delete_acked_segments(self) -> None:
        # A segment is done when the next one starts at or below the acked mark + 1.
        while len(self._segments) > 1 and self._segments[1][0] <= self._acked_seq + 1:
            _, path = self._segments.pop(0)
            path.unlink(missing_ok=True)

    def release(self) -> None:
        """Close files and the lock (after the delivery stopped)."""
        if self._lock_fd >= 0:
            self._save_acked()
        for fd in [*self._unsynced, self._fd]:
            if fd < 0:
                continue
            try:
                if self.fsync != "never":
                    os.fsync(fd)
            except OSError as e:
                log.error("spool %s: cannot sync at close: %s", self.destination, e.strerror or e)
            os.close(fd)
        self._unsynced, self._fd = [], -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
