"""A durable spool: an append-only log on disk in front of the in-memory queue.

Layout under the destination's directory::

    00000000000000000001.seg   segments named by their first record's sequence number
    00000000000000000001.free  delivered segments kept to be written over as later ones
    acked                      every record up to the first number is delivered, and those listed after it
    reserve                    a little preallocated space, given up so the mark can be saved on a full disk
    lock                       held while a router uses the directory

A segment starts with ``OTSPOOL2`` and its first sequence number; each record is
``[u32 length][u32 crc32][payload]``, the crc seeded from that number, and every
write ends with an end marker (eight zero bytes) that the next record writes
over. The payload is the batch's protobuf bytes behind a small header (signal,
items, arrival time, API key name). Segments without the header (an older
router's) are read as before: the crc unseeded, no marker.

Delivered segments are not deleted while fewer than `POOL_SEGMENTS` wait: they
are renamed `.free` and become the next segments. Writing over blocks a file
already has makes an fdatasync cheap: no size or block map to journal (on ext4,
about three times the bytes per second of syncs that grow the file). What was
in a reused file stays behind the end marker, and its records fail the crc with
the new seed even where a torn write uncovers them.

An append returns once the record is written and, per `fsync`,
on disk: `always` syncs every append, `batch` lets every append made while
one fsync runs share the next (group commit), `never` leaves it to the OS
(segments are synced with fdatasync, the directory and marks with fsync).
Every fsync runs on the spool executor (`spool_executor()`), never on the
event loop or its default pool.

Acknowledgements are kept in memory and the mark is saved (write, fsync,
rename, fsync the directory) at most every `ack_interval`, off the event loop.
A segment is deleted only once a saved mark covers all of it, so the mark on
disk always accounts for every record no segment holds. A sequence number is
never reused: at start-up numbering goes on past every number a segment name,
a record or the acked file mentions, so a stale mark can never claim a new
record. Saving the mark never fails an acknowledgement: on a disk error it is
logged, counted and retried.

At start-up everything after `acked` is read back and handed out again, so
an acknowledged export survives a crash; a torn or corrupt tail is cut at the
last good record, a bad record in the middle of a segment is reported,
counted, and the rest of that segment skipped, and numbers past the mark that
no segment holds are reported as missing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import fcntl
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from otlp_router import _native, telemetry
from otlp_router.groupcommit import GroupCommit
from otlp_router.model.batch import Batch
from otlp_router.model.signals import SIGNALS
from otlp_router.spool.base import Entry, FaultHook, SpoolFull
from otlp_router.spool.memory import MemorySpool

log = logging.getLogger("otlp_router.spool")

_FRAME = struct.Struct("<II")            # payload length, crc32 of the payload (zlib's CRC-32, from the segment's seed)
_HEADER = struct.Struct("<BdIBH")        # version, received, items, signal name length, API key name length
_VERSION = 1
_SEGMENT_MAGIC = b"OTSPOOL2"
_SEGMENT_HEAD = struct.Struct("<8sQ")    # magic, the segment's first sequence number
_END = bytes(_FRAME.size)                # the end marker: length 0, crc 0 (no record is empty)
POOL_SEGMENTS = 2                        # delivered segments kept to be written over
_MAX_RECORD = 1 << 30
FSYNC_POLICIES = ("always", "batch", "never")


# -- the spool executor ---------------------------------------------------

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def spool_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The process's spool I/O threads: segment fsyncs, ack-mark saves, dead letters.

    A pool of its own, never the loop's default one: S3 uploads and other
    `to_thread` work fill that, and an append waiting on its fsync must not
    queue behind them. Shared by every spool of the process; two threads, so
    one slow sync does not hold up every other spool."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="otlp-spool-io")
        return _executor


def _forget_executor_in_child() -> None:
    # Threads do not survive fork(), and the lock may have been held by one.
    global _executor, _executor_lock
    _executor = None
    _executor_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_executor_in_child)


def fsync_dir(directory: Path) -> None:
    """Make the creations, renames and deletions in a directory durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd` (a write that makes no progress is a full disk)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def pwrite_all(fd: int, parts: list[bytes], offset: int) -> None:
    """All of `parts` at `offset`; a short write goes on, so a full disk raises its own error."""
    total = sum(map(len, parts))
    written = os.pwritev(fd, parts, offset)
    if written < total:
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            n = os.pwrite(fd, rest, offset + written)
            if n <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += n
            rest = rest[n:]


def write_whole(path: Path, data: bytes, sync: bool = True, exclusive: bool = False) -> None:
    """Write a small file whole, mode 0600 (and fsync it); on an error remove it
    again, giving the space back."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC), 0o600)
    try:
        write_all(fd, data)
        if sync:
            os.fsync(fd)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


# -- records --------------------------------------------------------------

@dataclass
class Recovery:
    """What start-up found on disk."""

    records: int = 0
    torn_bytes: int = 0
    torn_records: int = 0            # cut final records (a crash in the middle of a write)
    corrupt_records: int = 0
    skipped_bytes: int = 0
    missing_records: int = 0         # numbers past the mark that no segment holds
    missing: list[tuple[int, int]] = field(default_factory=list)  # their (first, last) ranges


def segment_seed(first: int) -> int:
    """The crc seed of a segment's records: its own, never 0 (an unseeded record's)."""
    return first % 0xFFFFFFFF + 1


def record_parts(batch: Batch, seed: int = 0) -> list[bytes]:
    """A record as the pieces to write: no copy of the (large) protobuf bytes."""
    signal = batch.signal.name.encode()
    key = (batch.api_key_name or "").encode()
    head = _HEADER.pack(_VERSION, batch.received, batch.items, len(signal), len(key)) + signal + key
    wire = batch.wire
    return [_FRAME.pack(len(head) + len(wire), _native.crc32(wire, _native.crc32(head, seed))), head, wire]


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


def read_wire(fd: int, offset: int, seed: int) -> bytes:
    """The protobuf bytes of the record at `offset` of a segment, checked: its header and its
    payload read apart, so the payload (a request, often hundreds of KB) is read straight into
    its own bytes rather than copied again out of the whole record (`decode_payload`)."""
    start = os.pread(fd, _FRAME.size + _HEADER.size + 256, offset)
    length, crc = _FRAME.unpack_from(start)
    version, _, _, signal_len, key_len = _HEADER.unpack_from(start, _FRAME.size)
    head_length = _HEADER.size + signal_len + key_len
    if head_length > length:
        raise ValueError("the record's checksum does not match")   # lengths from a damaged header
    head = start[_FRAME.size:_FRAME.size + head_length]
    if len(head) < head_length:   # a long API key name
        head = os.pread(fd, head_length, offset + _FRAME.size)
    wire = os.pread(fd, length - head_length, offset + _FRAME.size + head_length)
    if len(head) != head_length or len(wire) != length - head_length \
            or _native.crc32(wire, _native.crc32(head, seed)) != crc:
        raise ValueError("the record's checksum does not match")
    if version != _VERSION:
        raise ValueError(f"unknown record version {version}")
    return wire


def read_seed(path: Path, data: bytes) -> int | None:
    """The crc seed of a segment from its first bytes: 0 for an older router's
    segment, None for a segment whose header never reached the disk (created or
    reused just before a crash: it holds no record)."""
    if not data.startswith(_SEGMENT_MAGIC):
        return 0
    if len(data) < _SEGMENT_HEAD.size:
        return None
    _, first = _SEGMENT_HEAD.unpack_from(data)
    return segment_seed(first) if first == int(path.stem) else None


def scan(path: Path) -> tuple[list[tuple[int, bytes]], int, int | None, int]:
    """Good records of a segment as (offset, payload), the end of the last good
    one, the offset of the first bad record (None if the file is clean), and the
    seed its records are checked with."""
    data = path.read_bytes()
    seed = read_seed(path, data)
    if seed is None:
        return [], 0, None, 0
    records = []
    at = _SEGMENT_HEAD.size if seed else 0
    while at < len(data):
        if len(data) - at < _FRAME.size:
            if seed and not any(data[at:]):
                break  # a torn end marker: the record before it is whole
            return records, at, at, seed
        length, crc = _FRAME.unpack_from(data, at)
        if seed and length == 0 and crc == 0:
            break  # the end marker: what follows is an earlier use of the file
        start = at + _FRAME.size
        if length > _MAX_RECORD or start + length > len(data):
            return records, at, at, seed
        payload = data[start:start + length]
        if _native.crc32(payload, seed) != crc:
            return records, at, at, seed
        records.append((at, payload))
        at = start + length
    return records, at, None, seed


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
        records = scan(path)[0]
        first = int(path.stem)
        pending += sum(1 for n in range(len(records)) if first + n > mark and first + n not in above)
    return pending


def missing_ranges(mark: int, above: set[int], spans: list[tuple[int, int]], top: int) -> list[tuple[int, int]]:
    """Numbers in (mark, top] that are neither acknowledged (`above`) nor held by a
    segment; `spans` are the segments' (first number, record count), in order."""
    holes: list[tuple[int, int]] = []
    expected = mark + 1
    for first, count in spans:
        if first > expected:
            holes.append((expected, first - 1))
        expected = max(expected, first + count)
    if expected <= top:
        holes.append((expected, top))
    out = []
    for lo, hi in holes:
        for seq in sorted(n for n in above if lo <= n <= hi):
            if seq > lo:
                out.append((lo, seq - 1))
            lo = seq + 1
        if lo <= hi:
            out.append((lo, hi))
    return out


class _File:
    """A segment's descriptor. Closed only under the spool's `_fd_lock`, and
    marked so, so a commit thread never syncs a number that was closed (and
    perhaps reused by another file)."""

    __slots__ = ("fd", "closed")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = False


# A save of the mark on the spool executor: its result is (the mark saved, the segments deleted).
_SaveJob = concurrent.futures.Future


# A destination that keeps up reads entries soon after they are written, so a short queue is all
# this needs to hold; a backlog past it is read back from the page cache (genai-json in
# bench/peers.py: 211 -> 193 MB RSS against 32 MiB, no change in spans written or forwarded).
RESIDENT_BYTES = 16 * 1024 * 1024


class DiskSpool(MemorySpool):
    durable = True
    fault: FaultHook | None = None   # see base.FAULT_POINTS; None in production

    def __init__(self, destination: str, directory: Path, max_bytes: int, fsync: str = "batch",
                 segment_bytes: int = 32 * 1024 * 1024, retry_after: float = 1.0, *,
                 executor: concurrent.futures.Executor | None = None, reserve_bytes: int = 64 * 1024,
                 resident_bytes: int = RESIDENT_BYTES) -> None:
        super().__init__(destination, max_bytes, retry_after)
        # Payloads of queued entries kept in memory, at most; the rest are read back from their
        # segment when handed out, so a backlog costs disk, not memory (RSS stays bounded).
        self.resident_bytes = resident_bytes
        self._resident = 0
        self.dir = Path(directory)
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.reserve_bytes = reserve_bytes
        self._executor = executor if executor is not None else spool_executor()
        self._segments: list[tuple[int, Path]] = []      # (first seq, path), oldest first; the last is current
        self._file: _File | None = None                   # the current segment
        self._written = 0                                  # where the next record goes (0: after the header it writes)
        self._seed = 0                                     # the crc seed of its records
        self._seeds: dict[Path, int] = {}                  # every segment's seed, for reading records back
        self.pool_segments = POOL_SEGMENTS
        self._pool: list[Path] = []                        # delivered segments to write over (.free)
        self._pool_lock = threading.Lock()                 # taken on the loop, given back on the executor
        self._broken = False                               # a partial record could not be cut from it
        self._rotate_failing = False
        # Segments created / covered by a directory fsync: an append into a new
        # segment returns only once the segment's name is durable too.
        self._dir_gen = 0
        self._dir_synced = 0
        self._unsynced: list[_File] = []                   # rotated segments, synced and closed by the next commit
        self._fd_lock = threading.Lock()                   # held by whoever syncs or closes segment files
        self._jobs: set[concurrent.futures.Future[None]] = set()  # commits running on the executor
        self._commits: GroupCommit[None, None] = GroupCommit(self._commit_appends)
        # Acknowledgements: in memory at once, on disk every `ack_interval`.
        self._acked_seq = 0
        self._acked_above: set[int] = set()                # acknowledged out of order, past the mark
        self.ack_interval = 0.2
        self._ack_dirty = False
        self._last_save = float("-inf")
        self._save_job: _SaveJob | None = None
        self._save_timer: asyncio.TimerHandle | None = None
        self._save_timer_loop: asyncio.AbstractEventLoop | None = None
        self._save_lock = threading.Lock()
        self._save_failing = False
        self._reserve_present = False
        self._lock_fd = -1
        self._released = False
        self.recovery = Recovery()

    @property
    def _durable_io(self) -> bool:
        return self.fsync != "never"

    # -- start-up ---------------------------------------------------------

    def open(self) -> Recovery:
        """Lock the directory, read back what was not acknowledged, start a new segment."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise RuntimeError(f"spool {self.dir} is in use by another router process") from None
        try:
            self._recover()
        except BaseException:
            self._abandon()
            raise
        return self.recovery

    def _recover(self) -> None:
        mark, above = self._read_acked()
        self._acked_seq, self._acked_above = mark, set(above)
        # Numbering goes on past every number anything on disk names, so a
        # number the acked file calls delivered is never given to a new record.
        top = max([mark, *above])
        spans: list[tuple[int, int]] = []
        empty: list[Path] = []
        segments = sorted(self.dir.glob("*.seg"))
        for i, path in enumerate(segments):
            first = int(path.stem)
            top = max(top, first - 1)
            records, good_end, bad_at, self._seeds[path] = scan(path)
            last_segment = i == len(segments) - 1
            if bad_at is not None:
                size = path.stat().st_size
                if last_segment:
                    self.recovery.torn_bytes += size - good_end
                    self.recovery.torn_records += 1
                    telemetry.spool_lost_records.labels(self.destination, "torn").inc()
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
            if records:
                spans.append((first, len(records)))
                top = max(top, first + len(records) - 1)
            for n, (offset, payload) in enumerate(records):
                seq = first + n
                if seq <= mark or seq in above:
                    continue
                self._keep(Entry(decode_payload(payload), _FRAME.size + len(payload), seq), path, offset)
            if records or not last_segment:
                self._segments.append((first, path))
            else:
                empty.append(path)
        self._seq = top
        self._report_missing(mark, above, spans, top)
        self.recovery.records = len(self._unacked)
        for free in sorted(self.dir.glob("*.free")):
            if len(self._pool) < self.pool_segments:
                self._pool.append(free)
            else:
                free.unlink(missing_ok=True)
        self._new_segment()
        current = self._segments[-1][1]
        for path in empty:
            if path != current:
                path.unlink(missing_ok=True)
        # The mark just read is on disk, so what it covers can go now.
        gone = set(self._delete_segments(self._deletable(mark)))
        self._segments = [s for s in self._segments if s[1] not in gone]
        if self._durable_io:
            fsync_dir(self.dir)
        self._dir_synced = self._dir_gen
        self._ensure_reserve()
        if self.recovery.records or self.recovery.torn_bytes or self.recovery.corrupt_records:
            log.info("spool %s: recovered %d record(s) to deliver (%d torn byte(s) cut, %d corrupt record(s))",
                     self.destination, self.recovery.records, self.recovery.torn_bytes,
                     self.recovery.corrupt_records)

    def _report_missing(self, mark: int, above: set[int], spans: list[tuple[int, int]], top: int) -> None:
        for lo, hi in missing_ranges(mark, above, spans, top):
            count = hi - lo + 1
            self.recovery.missing.append((lo, hi))
            self.recovery.missing_records += count
            telemetry.spool_lost_records.labels(self.destination, "missing").inc(count)
            log.error("spool %s: record(s) %d..%d (%d) are missing: no segment holds them and they were never "
                      "acknowledged (a segment deleted or lost outside the router?)",
                      self.destination, lo, hi, count)

    # -- appending --------------------------------------------------------

    def _new_segment(self) -> None:
        """Start the next segment; the previous one is synced and closed by the next commit."""
        if self.fault is not None:
            self.fault("segment.create")
        first = self._seq + 1
        path = self.dir / f"{first:020d}.seg"
        self._reuse_free(path)
        # A file already under this name holds no record (numbering went past every
        # one on disk): the first append writes the header over it, and what else
        # it has stays behind the end marker. Nothing is written now, so a full disk
        # still lets a segment start.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        # Only now that the new file is open does the old one change hands: a
        # failure above leaves the current segment as it was, owned once.
        old, self._file = self._file, _File(fd)
        self._written = 0
        self._seed = self._seeds[path] = segment_seed(first)
        self._broken = False
        self._segments.append((first, path))
        self._dir_gen += 1
        if old is not None:
            if self._durable_io:
                self._unsynced.append(old)
            else:
                with self._fd_lock:
                    self._close(old)

    def _reuse_free(self, path: Path) -> None:
        """Rename a kept delivered segment to `path`, if one is kept and `path` is new
        (its name is made durable with the directory, like a new file's)."""
        with self._pool_lock:
            if not self._pool or path.exists():
                return
            free = self._pool.pop()
        try:
            os.rename(free, path)
        except OSError:
            free.unlink(missing_ok=True)

    def _keep_free(self, path: Path) -> bool:
        """On the spool executor: keep a delivered full-size segment to write over; False: delete it."""
        seed = self._seeds.pop(path, 0)
        with self._pool_lock:
            if not seed or len(self._pool) >= self.pool_segments or self._released:
                return False
            try:
                if os.path.getsize(path) < self.segment_bytes:
                    return False
                free = path.with_suffix(".free")
                os.rename(path, free)
            except OSError:
                return False
            self._pool.append(free)
            return True

    def _drop_free(self) -> bool:
        """Delete the kept segments (a full disk wants the space). Whether any went."""
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for free in pool:
            try:
                free.unlink()
            except OSError:
                pass
        return bool(pool)

    def _cut_failed_write(self) -> None:
        """After a failed write: cut the partial record, and move on to a new segment
        if this one holds records (the current segment is never deleted; once
        acknowledged the old one is, and the space comes back). A remnant that
        cannot be cut is then a tail start-up reports, not a gap between records."""
        assert self._file is not None
        try:
            os.ftruncate(self._file.fd, self._written)
            self._broken = False
        except OSError:
            self._broken = True
        if self._written:
            try:
                self._new_segment()
            except OSError:
                pass

    async def append(self, batch: Batch) -> None:
        if self._closed:
            raise RuntimeError(f"spool of {self.destination} is closed")
        assert self._file is not None, "open() the spool first"
        parts = record_parts(batch, self._seed)
        size = sum(map(len, parts))
        try:
            if self._broken:
                self._cut_failed_write()
                if self._broken:
                    raise OSError(errno.EIO, "cannot cut a partial record from the segment")
            if self.fault is not None:
                self.fault("append.write")
            # Over the previous end marker, and a new one after; the first record of
            # a segment writes its header.
            lead = [] if self._written else [_SEGMENT_HEAD.pack(_SEGMENT_MAGIC, self._segments[-1][0])]
            pwrite_all(self._file.fd, [*lead, *parts, _END], self._written)
            if self.fault is not None:
                self.fault("append.after_write")
        except OSError as e:
            # Leave no partial record behind, and tell the client to come back.
            self._cut_failed_write()
            if e.errno == errno.ENOSPC:
                self._drop_free()
            telemetry.spool_write_errors.labels(self.destination).inc()
            raise SpoolFull(self.destination, f"cannot write the spool: {e.strerror or e}", self.retry_after) \
                from None
        offset = max(self._written, _SEGMENT_HEAD.size)
        self._written = offset + size
        self._seq += 1
        self._keep(Entry(batch, size, self._seq), self._segments[-1][1], offset)
        if self._written >= self.segment_bytes:
            self._rotate()
        if self.fsync == "always":
            try:
                await self._sync_now()
            except OSError as e:
                telemetry.spool_write_errors.labels(self.destination).inc()
                raise SpoolFull(self.destination, f"cannot sync the spool: {e.strerror or e}",
                                self.retry_after) from None
        elif self.fsync == "batch":
            await self._commits.join(None)   # the fsync that covers this append (group commit)

    def _keep(self, entry: Entry, segment: Path, offset: int) -> None:
        """Queue an entry, its payload in memory while the resident budget lasts, else on disk only."""
        entry.stored_at = (segment, offset)
        if self._resident + entry.size > self.resident_bytes:
            self.let_go(entry)
        else:
            self._resident += entry.size
        self._enqueue(entry)

    async def read(self, max_items: int, max_bytes: int) -> list[Entry]:
        entries = await super().read(max_items, max_bytes)
        self._resident -= sum(e.size for e in entries if e.on_disk is None)
        lost = await self.reload(entries)
        if lost:
            self.ack(lost)   # unreadable now (counted and logged in _load): given up, the rest goes on
            gone = {id(e) for e in lost}
            entries = [e for e in entries if id(e) not in gone]
        return entries

    def let_go(self, entry: Entry) -> bool:
        if entry.stored_at is None:
            return False
        if entry.on_disk is None:
            entry.batch = entry.batch.evicted()
            entry.on_disk = entry.stored_at
        return True

    async def reload(self, entries: list[Entry]) -> list[Entry]:
        evicted = [e for e in entries if e.on_disk is not None]
        if not evicted:
            return []
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._load, evicted)

    def requeue(self, entries: list[Entry]) -> None:
        self._resident += sum(e.size for e in entries if e.on_disk is None)   # the rest is read back first
        super().requeue(entries)

    def _load(self, entries: list[Entry]) -> list[Entry]:
        """On the spool executor: read evicted payloads back from their segments; returns those
        that cannot be read (a segment damaged under a running router)."""
        lost = []
        files: dict[Path, int] = {}   # a read's entries are mostly of one segment: opened once
        try:
            for entry in entries:
                assert entry.on_disk is not None
                path, offset = entry.on_disk
                try:
                    if path not in files:
                        files[path] = os.open(path, os.O_RDONLY)
                    entry.batch.replace_wire(read_wire(files[path], offset, self._seeds.get(path, 0)))
                    entry.on_disk = None
                except (OSError, ValueError, struct.error) as e:
                    lost.append(entry)
                    telemetry.spool_lost_records.labels(self.destination, "unreadable").inc()
                    log.error("spool %s: cannot read back record %d from %s at offset %d (%s): %d %s lost",
                              self.destination, entry.seq, path.name, offset, e, entry.batch.items,
                              entry.batch.signal.item_name)
        finally:
            for fd in files.values():
                os.close(fd)
        return lost

    def _rotate(self) -> None:
        try:
            self._new_segment()
        except OSError as e:
            # The record is written: keep appending to this segment, try again next time.
            if not self._rotate_failing:
                log.warning("spool %s: cannot start a new segment (%s); the current one grows",
                            self.destination, e.strerror or e)
            self._rotate_failing = True
        else:
            self._rotate_failing = False

    async def _sync_now(self) -> None:
        """fsync the current segment, the rotated ones (which this commit then
        owns and closes) and, after a segment was created, the directory."""
        assert self._file is not None
        rotated, self._unsynced = self._unsynced, []
        # Every commit syncs the directory until one that did so completes
        # (commits may finish out of order under `always`).
        gen = self._dir_gen
        dir_sync = self._dir_synced < gen
        try:
            job = self._executor.submit(self._commit_job, self._file, rotated, dir_sync)
        except RuntimeError:  # the executor is shutting down (interpreter exit): sync here
            self._commit_job(self._file, rotated, dir_sync)
        else:
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
            # Shielded: a cancelled append must not cancel a commit that owns descriptors.
            await asyncio.shield(asyncio.wrap_future(job))
        if dir_sync:
            self._dir_synced = max(self._dir_synced, gen)

    def _commit_job(self, current: _File, rotated: list[_File], dir_sync: bool) -> None:
        """On the spool executor."""
        with self._fd_lock:
            try:
                if self.fault is not None:
                    self.fault("commit.fsync")
                for f in (*rotated, current):
                    if not f.closed:  # closed: released, and synced by release()
                        # fdatasync: the records and the size that reaches them, not the times
                        # (about 20% less per commit on ext4; a new segment's name is the dir sync's).
                        os.fdatasync(f.fd)
                if dir_sync:
                    fsync_dir(self.dir)
            finally:
                for f in rotated:
                    self._close(f)

    @staticmethod
    def _close(f: _File) -> None:
        """Close a segment file; the caller holds `_fd_lock`."""
        if not f.closed:
            f.closed = True
            try:
                os.close(f.fd)
            except OSError:
                pass

    async def _commit_appends(self, appends: list[None]) -> list[None]:
        """One fsync for every append made while the previous one ran (group commit)."""
        try:
            await self._sync_now()
        except OSError as e:
            telemetry.spool_write_errors.labels(self.destination).inc()
            raise SpoolFull(self.destination, f"cannot sync the spool: {e.strerror or e}",
                            self.retry_after) from None
        return [None] * len(appends)

    # -- acknowledging ----------------------------------------------------

    def _read_acked(self) -> tuple[int, set[int]]:
        return read_acked(self.dir)

    def ack(self, entries: list[Entry]) -> None:
        """Forget these entries. Never raises: the mark is saved on the spool
        executor at most every `ack_interval`, and a failed save is retried."""
        super().ack(entries)
        self._acked_above.update(entry.seq for entry in entries if entry.seq > self._acked_seq)
        mark = next(iter(self._unacked)) - 1 if self._unacked else self._seq
        if mark > self._acked_seq:
            self._acked_seq = mark
            self._acked_above = {seq for seq in self._acked_above if seq > mark}
        if self._released:
            return
        self._ack_dirty = True
        self._maybe_save()

    def _maybe_save(self) -> None:
        """Start a save of the mark if one is due and none is running, else make sure one comes."""
        if self._save_job is not None:
            if not self._save_job.done():
                return  # its completion looks again
            self._finish_save(self._save_job)
        if not self._ack_dirty or self._released:
            return
        now = time.monotonic()
        wait = self._last_save + self.ack_interval - now
        if wait > 0:
            self._schedule_save(wait)
            return
        self._start_save(now)

    def _schedule_save(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next ack or release() saves
        if self._save_timer is not None and self._save_timer_loop is loop:
            return
        self._save_timer = loop.call_later(delay, self._on_save_timer)
        self._save_timer_loop = loop

    def _on_save_timer(self) -> None:
        self._save_timer = None
        self._maybe_save()

    def _cancel_save_timer(self) -> None:
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None

    def _snapshot(self) -> tuple[int, list[int], list[Path]]:
        self._ack_dirty = False
        mark = self._acked_seq
        return mark, sorted(self._acked_above), self._deletable(mark)

    def _start_save(self, now: float) -> None:
        self._cancel_save_timer()
        self._last_save = now
        mark, above, doomed = self._snapshot()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        job: _SaveJob
        if loop is None:
            job = self._run_inline(mark, above, doomed)
        else:
            try:
                job = self._executor.submit(self._save_job_run, mark, above, doomed)
            except RuntimeError:  # the executor is shutting down
                job = self._run_inline(mark, above, doomed)
        self._save_job = job
        if job.done():
            self._finish_save(job)
            return
        job.add_done_callback(lambda f: self._call_back(loop, f))

    def _call_back(self, loop: asyncio.AbstractEventLoop | None, job: _SaveJob) -> None:
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._finish_save, job)
        except RuntimeError:
            pass  # the loop is gone; the next ack or release() collects the result

    def _run_inline(self, mark: int, above: list[int], doomed: list[Path]) -> _SaveJob:
        job: _SaveJob = concurrent.futures.Future()
        try:
            job.set_result(self._save_job_run(mark, above, doomed))
        except Exception as e:
            job.set_exception(e)
        return job

    def _finish_save(self, job: _SaveJob) -> bool:
        """On the loop thread: take in the result of a save. Returns whether it worked."""
        if job is not self._save_job:
            return job.done() and job.exception() is None  # already taken in
        self._save_job = None
        try:
            _, deleted = job.result()
        except Exception as e:
            # Keep the state in memory; deleted nothing. Retried by the next ack or the timer.
            self._ack_dirty = True
            telemetry.spool_write_errors.labels(self.destination).inc()
            if not self._save_failing:
                log.error("spool %s: cannot save the acknowledged mark (%s); keeping it in memory and retrying",
                          self.destination, e.strerror if isinstance(e, OSError) and e.strerror else repr(e))
            self._save_failing = True
            if not self._released:
                self._schedule_save(max(self.ack_interval, 0.05))
            return False
        if self._save_failing:
            log.info("spool %s: the acknowledged mark is saved again", self.destination)
            self._save_failing = False
        gone = set(deleted)
        while len(self._segments) > 1 and self._segments[0][1] in gone:
            self._segments.pop(0)
        if self._ack_dirty and not self._released:
            self._maybe_save()
        return True

    def save_acked(self) -> bool:
        """Save the acknowledged mark now and delete the segments it frees.

        Blocks on fsync: for shutdown and tests; `ack()` saves on the spool
        executor by itself. Never raises; False (logged, counted) if the disk
        refused."""
        while self._save_job is not None:
            job = self._save_job
            concurrent.futures.wait([job])
            self._finish_save(job)
        snapshot = self._save_now()
        if snapshot is None:
            return False
        self._save_job = self._run_inline(*snapshot)
        return self._finish_save(self._save_job)

    def _save_now(self) -> tuple[int, list[int], list[Path]] | None:
        """What a save started now writes and deletes; None once the spool is released."""
        if self._lock_fd < 0 or self._released:
            return None
        self._cancel_save_timer()
        self._last_save = time.monotonic()
        return self._snapshot()

    async def flush_acks(self) -> bool:
        """Save the acknowledged mark now on the spool executor, delete the
        segments it frees, and wait for it. Never raises; False (logged,
        counted, retried later) if the disk refused. E.g. before `release()`."""
        while self._save_job is not None:  # one save at a time
            job = self._save_job
            await self._wait(job)
            self._finish_save(job)
        snapshot = self._save_now()
        if snapshot is None:
            return False
        try:
            job = self._executor.submit(self._save_job_run, *snapshot)
        except RuntimeError:  # the executor is shutting down
            job = self._run_inline(*snapshot)
        self._save_job = job
        await self._wait(job)
        return self._finish_save(job)

    @staticmethod
    async def _wait(job: concurrent.futures.Future) -> None:
        wrapped = asyncio.wrap_future(job)
        try:
            await asyncio.shield(wrapped)  # a cancelled caller must not cancel the save
        except asyncio.CancelledError:
            raise
        except Exception:
            pass  # the outcome is taken in by _finish_save

    def _deletable(self, mark: int) -> list[Path]:
        """Segments all of whose records are at or below `mark` (the next one
        starts at or below mark + 1); never the current one."""
        out = []
        for i in range(len(self._segments) - 1):
            if self._segments[i + 1][0] > mark + 1:
                break
            out.append(self._segments[i][1])
        return out

    def _save_job_run(self, mark: int, above: list[int], doomed: list[Path]) -> tuple[int, list[Path]]:
        """On the spool executor: save the mark, then (only then) delete the
        segments it covers. Returns the mark and the segments deleted."""
        with self._save_lock:
            if self._lock_fd < 0:
                raise OSError(errno.EBADF, "the spool is released")
            self._write_acked(mark, above)
            if self.fault is not None:
                self.fault("ack.after_save")
            deleted = self._delete_segments(doomed)
            if deleted:
                self._ensure_reserve()  # space came back: take the reserve again if it was used
            return mark, deleted

    def _write_acked(self, mark: int, above: list[int]) -> None:
        data = " ".join(map(str, [mark, *above])).encode()
        tmp = self.dir / "acked.tmp"
        try:
            self._write_file(tmp, data, "ack.save")
        except OSError as e:
            # A full disk: give up the reserve so the mark (which frees the
            # delivered segments) can still be saved.
            if e.errno != errno.ENOSPC or not (self._drop_free() | self._drop_reserve()):
                raise
            self._write_file(tmp, data, "ack.save")
        os.replace(tmp, self.dir / "acked")
        if self._durable_io:
            fsync_dir(self.dir)

    def _write_file(self, path: Path, data: bytes, point: str) -> None:
        if self.fault is not None:
            self.fault(point)
        write_whole(path, data, sync=self._durable_io)

    def _delete_segments(self, doomed: list[Path]) -> list[Path]:
        deleted = []
        try:
            for path in doomed:
                if self.fault is not None:
                    self.fault("segment.delete")
                if not self._keep_free(path):
                    path.unlink(missing_ok=True)
                deleted.append(path)
        except OSError as e:
            log.warning("spool %s: cannot delete an acknowledged segment (%s); trying again later",
                        self.destination, e.strerror or e)
        if deleted and self._durable_io:
            try:
                fsync_dir(self.dir)
            except OSError:
                pass  # a deletion coming back after a crash only holds acknowledged records
        return deleted

    # -- the reserve ------------------------------------------------------

    def _ensure_reserve(self) -> None:
        if self.reserve_bytes <= 0 or self._reserve_present:
            return
        path = self.dir / "reserve"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                os.pwrite(fd, bytes(self.reserve_bytes), 0)
            self._reserve_present = True
        except OSError:
            path.unlink(missing_ok=True)  # no room for it now; taken again after the next deletion
        finally:
            os.close(fd)

    def _drop_reserve(self) -> bool:
        if not self._reserve_present:
            return False
        self._reserve_present = False
        try:
            (self.dir / "reserve").unlink()
        except OSError:
            return False
        log.warning("spool %s: the disk is full; used the reserve to save the acknowledged mark", self.destination)
        return True

    # -- shutting down ----------------------------------------------------

    def release(self) -> None:
        """Save the mark, sync and close files, drop the lock (after the delivery stopped). Never raises."""
        if self._released:
            return
        self._cancel_save_timer()
        if self._lock_fd >= 0:
            self.save_acked()
        self._released = True
        concurrent.futures.wait(list(self._jobs))
        with self._fd_lock:
            for f in [*self._unsynced, self._file]:
                if f is None or f.closed:
                    continue
                try:
                    if self._durable_io:
                        os.fsync(f.fd)
                except OSError as e:
                    log.error("spool %s: cannot sync at close: %s", self.destination, e.strerror or e)
                self._close(f)
            self._unsynced = []
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _abandon(self) -> None:
        """Drop the spool as kill -9 would: descriptors and lock closed, nothing
        more synced, saved or deleted. For tests (and a failed open)."""
        self._released = True
        self._cancel_save_timer()
        # Work already on the executor finishes first (as if the crash came just after it).
        pending = [j for j in (*self._jobs, self._save_job) if j is not None]
        concurrent.futures.wait(pending)
        with self._save_lock, self._fd_lock:
            for f in [*self._unsynced, self._file]:
                if f is not None:
                    self._close(f)
            self._unsynced = []
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
