"""The durable spool: append, read, acknowledge, restart, recover torn and corrupt segments,
write over delivered segments."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from otlp_router import telemetry
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.spool.base import FAULT_POINTS, SpoolFull
from otlp_router.spool.disk import POOL_SEGMENTS, DiskSpool, encode_record, missing_ranges, read_acked
from tests.support import make_request


def _batch(seed: int, spans: int = 3) -> Batch:
    request = make_request(spans=spans, seed=seed)
    return Batch(TRACES, request, spans, request.SerializeToString(), api_key_name=f"key-{seed}")


def _spool(directory: Path, **kwargs) -> DiskSpool:
    spool = DiskSpool("dest", directory, kwargs.pop("max_bytes", 10 * 1024 * 1024), **kwargs)
    spool.open()
    return spool


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("fsync", ["always", "batch", "never"])
def test_appended_batches_come_back_in_order_with_their_origin(tmp_path, fsync) -> None:
    async def go():
        spool = _spool(tmp_path, fsync=fsync)
        for seed in (1, 2, 3):
            await spool.append(_batch(seed))
        entries = await spool.read(100, 1 << 30)
        spool.release()
        return entries
    entries = run(go())
    assert [e.batch.api_key_name for e in entries] == ["key-1", "key-2", "key-3"]
    assert entries[0].batch.message == make_request(spans=3, seed=1)


def test_unacknowledged_records_survive_a_restart_and_acknowledged_ones_do_not(tmp_path) -> None:
    async def first():
        spool = _spool(tmp_path)
        for seed in (1, 2, 3, 4):
            await spool.append(_batch(seed))
        entries = await spool.read(6, 1 << 30)  # two batches of three spans
        spool.ack(entries)
        spool.release()  # as if the process died here
    run(first())
    spool = _spool(tmp_path)
    assert spool.recovery.records == 2

    async def rest():
        return await spool.read(100, 1 << 30)
    entries = run(rest())
    assert [e.batch.api_key_name for e in entries] == ["key-3", "key-4"]
    assert entries[0].batch.message == make_request(spans=3, seed=3)
    spool.release()


def test_out_of_order_acks_keep_the_oldest_unacknowledged(tmp_path) -> None:
    async def go():
        spool = _spool(tmp_path)
        for seed in (1, 2, 3):
            await spool.append(_batch(seed))
        entries = [*(await spool.read(3, 1 << 30)), *(await spool.read(3, 1 << 30)), *(await spool.read(3, 1 << 30))]
        spool.ack([entries[1], entries[2]])  # the first is still in flight
        spool.release()
    run(go())
    spool = _spool(tmp_path)
    assert spool.recovery.records == 1
    spool.release()


def test_segments_roll_over_and_are_deleted_once_acknowledged(tmp_path) -> None:
    async def go():
        spool = _spool(tmp_path, segment_bytes=4096)
        for seed in range(1, 30):
            await spool.append(_batch(seed, spans=5))
        assert len(list(tmp_path.glob("*.seg"))) > 3
        while spool.pending_items:
            spool.ack(await spool.read(1000, 1 << 30))
        spool.release()
    run(go())
    assert len(list(tmp_path.glob("*.seg"))) == 1


def test_a_torn_final_record_is_cut_and_reported(tmp_path) -> None:
    async def go():
        spool = _spool(tmp_path)
        for seed in (1, 2, 3):
            await spool.append(_batch(seed))
        spool.release()
    run(go())
    (segment,) = tmp_path.glob("*.seg")
    data = segment.read_bytes()
    segment.write_bytes(data[:-20])  # the last write was torn by a crash
    spool = _spool(tmp_path)
    assert spool.recovery.records == 2 and spool.recovery.torn_bytes > 0
    entries = run(spool.read(100, 1 << 30))
    assert [e.batch.api_key_name for e in entries] == ["key-1", "key-2"]
    spool.release()


def test_a_corrupt_byte_mid_log_is_counted_and_good_records_delivered(tmp_path) -> None:
    async def go():
        spool = _spool(tmp_path, segment_bytes=1500)
        for seed in range(1, 9):
            await spool.append(_batch(seed))
        spool.release()
    run(go())
    segments = sorted(tmp_path.glob("*.seg"))
    assert len(segments) >= 3
    victim = segments[0]
    data = bytearray(victim.read_bytes())
    data[40] ^= 0xFF
    victim.write_bytes(bytes(data))
    spool = _spool(tmp_path)
    assert spool.recovery.corrupt_records == 1 and spool.recovery.skipped_bytes > 0
    entries = run(spool.read(1000, 1 << 30))
    keys = [e.batch.api_key_name for e in entries]
    assert keys and keys == sorted(keys, key=lambda k: int(k.split("-")[1]))  # order kept, the rest delivered
    assert "key-8" in keys
    spool.release()


def test_a_full_spool_refuses_with_a_retry_hint(tmp_path) -> None:
    spool = _spool(tmp_path, max_bytes=2048)

    async def go():
        await spool.append(_batch(1, spans=10))
        spool.check_room(_batch(2, spans=10).size)
    with pytest.raises(SpoolFull) as err:
        run(go())
    assert err.value.retry_after > 0 and "spool is full" in str(err.value)
    spool.release()


def test_a_write_error_is_a_refusal_not_a_crash(tmp_path) -> None:
    spool = _spool(tmp_path)
    os.close(spool._file.fd)
    spool._file.fd = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC

    async def go():
        await spool.append(_batch(1))
    with pytest.raises(SpoolFull) as err:
        run(go())
    assert "No space left" in str(err.value)
    assert spool.pending_items == 0
    spool.release()


def test_one_directory_one_router(tmp_path) -> None:
    spool = _spool(tmp_path)
    with pytest.raises(RuntimeError, match="in use by another router"):
        _spool(tmp_path)
    spool.release()


# -- helpers for the findings below ------------------------------------------

class Inline(concurrent.futures.Executor):
    """Runs spool I/O at once on the calling thread: deterministic saves and commits."""

    def submit(self, fn, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:
            future.set_exception(e)
        return future


def crash(spool: DiskSpool) -> None:
    """kill -9: descriptors closed, nothing saved, synced or deleted, the object dropped."""
    spool._abandon()


def _keys(entries) -> list[str]:
    return [e.batch.api_key_name for e in entries]


def _counter(metric, *labels) -> float:
    return metric.labels(*labels)._value.get()


def _enospc(*points: str, times: int = 1 << 30):
    """A fault hook failing the given steps with ENOSPC (`times` times)."""
    left = [times]

    def hook(point: str) -> None:
        if point in points and left[0] > 0:
            left[0] -= 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return hook


def _drain(spool: DiskSpool) -> list:
    async def go():
        out = []
        while spool._queue:
            out.extend(await spool.read(1000, 1 << 30))
        return out
    return run(go())


# -- 1. sequence numbers are never reused, whatever the crash order ------------

def test_acknowledged_records_survive_two_crashes(tmp_path) -> None:
    """append A B C, ack B, then A and C (their segments deleted, the mark not
    yet saved), crash, append D E, crash: D and E must both come back."""
    async def first():
        spool = _spool(tmp_path, segment_bytes=1)  # a segment per record
        for seed in (1, 2, 3):
            await spool.append(_batch(seed))
        a, b, c = [*(await spool.read(3, 1 << 30)), *(await spool.read(3, 1 << 30)),
                   *(await spool.read(3, 1 << 30))]
        spool.ack_interval = 0
        spool.ack([b])                              # saved: "0 2"
        spool.ack_interval = 3600
        spool.ack([a, c])                           # not saved before the crash
        await asyncio.sleep(0)
        crash(spool)
    run(first())

    async def second():
        spool = _spool(tmp_path, segment_bytes=1)
        spool.ack_interval = 3600
        while spool._queue:  # A and C again (their acknowledgement was not saved): fine, duplicates
            spool.ack(await spool.read(100, 1 << 30))
        for seed in (4, 5):
            await spool.append(_batch(seed))
        crash(spool)
    run(second())
    spool = _spool(tmp_path)
    keys = _keys(_drain(spool))
    spool.release()
    assert {"key-4", "key-5"} <= set(keys)


def test_numbering_goes_on_past_every_number_on_disk(tmp_path) -> None:
    (tmp_path / "acked").write_text("0 7 9")          # acknowledged out of order, no segment holds them
    (tmp_path / f"{12:020d}.seg").write_bytes(b"")    # an empty current segment of a crashed router
    spool = _spool(tmp_path)
    run(spool.append(_batch(1)))
    (entry,) = _drain(spool)
    assert entry.seq == 12                               # past 9 and the segment named 12
    assert sorted(p.name for p in tmp_path.glob("*.seg")) == [f"{12:020d}.seg"]
    spool.release()


def test_a_segment_is_deleted_only_once_a_saved_mark_covers_it(tmp_path) -> None:
    spool = _spool(tmp_path, segment_bytes=1, executor=Inline())
    spool.fault = _enospc("ack.save")

    async def go():
        for seed in (1, 2, 3):
            await spool.append(_batch(seed))
        spool.ack(await spool.read(100, 1 << 30))
    run(go())
    assert len(list(tmp_path.glob("*.seg"))) == 4        # the mark is not on disk: all kept
    crash(spool)
    spool = _spool(tmp_path)
    assert spool.recovery.records == 3 and spool.recovery.missing_records == 0  # duplicates, no gap
    spool.release()


# -- 2. durability: the directory is synced, fsync on the spool executor -------

@pytest.fixture
def syncs(monkeypatch):
    """Every fsync and fdatasync: (thread name, 'dir' | 'file', path)."""
    calls: list[tuple[str, str, str]] = []

    def recorded(real):
        def sync(fd):
            kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
            calls.append((threading.current_thread().name, kind, os.readlink(f"/proc/self/fd/{fd}")))
            return real(fd)
        return sync
    monkeypatch.setattr(os, "fsync", recorded(os.fsync))
    monkeypatch.setattr(os, "fdatasync", recorded(os.fdatasync))
    return calls


@pytest.mark.parametrize("fsync", ["always", "batch"])
def test_appends_sync_on_the_spool_executor_and_sync_the_directory_after_a_new_segment(tmp_path, syncs,
                                                                                   fsync) -> None:
    spool = _spool(tmp_path, fsync=fsync, segment_bytes=1)
    syncs.clear()

    async def go():
        await spool.append(_batch(1))  # rotates: a new segment file
    run(go())
    assert syncs and all(name.startswith("otlp-spool-io") for name, _, _ in syncs)
    assert ("dir", str(tmp_path)) in {(kind, path) for _, kind, path in syncs}
    assert any(kind == "file" and path.endswith(".seg") for _, kind, path in syncs)
    spool.release()


def test_an_ack_save_syncs_the_file_and_the_directory_off_the_event_loop(tmp_path, syncs) -> None:
    spool = _spool(tmp_path, segment_bytes=1)
    syncs.clear()

    async def go():
        await spool.append(_batch(1))
        await spool.append(_batch(2))
        syncs.clear()
        spool.ack(await spool.read(100, 1 << 30))
        assert await spool.flush_acks()
    run(go())
    saved = [(name, kind, path) for name, kind, path in syncs]
    assert ("file", str(tmp_path / "acked.tmp")) in {(k, p) for _, k, p in saved}
    assert sum(1 for _, k, p in saved if k == "dir") >= 2       # after the rename, after the deletions
    assert all(name.startswith("otlp-spool-io") for name, _, _ in saved)
    assert len(list(tmp_path.glob("*.seg"))) == 1
    spool.release()


def test_appends_do_not_wait_for_a_busy_default_executor(tmp_path) -> None:
    """S3 uploads fill the loop's default pool; an fsync must not queue behind them."""
    gate = threading.Event()

    async def go():
        loop = asyncio.get_running_loop()
        busy = concurrent.futures.ThreadPoolExecutor(1)
        loop.set_default_executor(busy)
        blocker = loop.run_in_executor(None, gate.wait, 10)
        spool = _spool(tmp_path)
        try:
            await asyncio.wait_for(spool.append(_batch(1)), 5)
        finally:
            gate.set()
            await blocker
            spool.release()
    run(go())


def test_release_while_a_commit_runs_closes_each_descriptor_once(tmp_path, monkeypatch) -> None:
    closed: list[int] = []
    bad: list[str] = []
    real_close, real_fsync = os.close, os.fsync

    def checked(fd, what):
        try:
            os.fstat(fd)
        except OSError:
            bad.append(f"{what} of a closed descriptor {fd}")

    def close(fd):
        checked(fd, "close")
        closed.append(fd)
        return real_close(fd)

    def fsync(fd):
        checked(fd, "fsync")
        return real_fsync(fd)
    monkeypatch.setattr(os, "close", close)
    monkeypatch.setattr(os, "fsync", fsync)
    entered, gate = threading.Event(), threading.Event()

    def hook(point: str) -> None:
        if point == "commit.fsync":
            entered.set()
            gate.wait(5)

    async def go():
        spool = _spool(tmp_path, segment_bytes=1)  # every append rotates: commits own the old segments
        await spool.append(_batch(1))
        spool.fault = hook
        tasks = [asyncio.ensure_future(spool.append(_batch(seed))) for seed in (2, 3, 4)]
        for _ in range(1000):
            if entered.is_set():
                break
            await asyncio.sleep(0.005)
        assert entered.is_set(), "no commit ran"
        threading.Timer(0.1, gate.set).start()
        spool.release()  # waits for the commit in flight, then closes what is left
        await asyncio.gather(*tasks)
    run(go())
    assert not bad
    spool = _spool(tmp_path)
    assert _keys(_drain(spool)) == ["key-1", "key-2", "key-3", "key-4"]
    spool.release()


# -- 3. a full disk never fails an acknowledgement -----------------------------

def test_ack_never_raises_when_the_mark_cannot_be_saved_and_retries(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, "otlp_router.spool")
    spool = _spool(tmp_path, segment_bytes=1, executor=Inline())
    spool.ack_interval = 0
    spool.fault = _enospc("ack.save")
    errors = _counter(telemetry.spool_write_errors, "dest")

    async def go():
        for seed in range(1, 5):
            await spool.append(_batch(seed))
        a, b, c, d = [(await spool.read(3, 1 << 30))[0] for _ in range(4)]
        spool.ack([a])
        spool.ack([c])
        assert spool.pending_items == 6 and spool.pending_bytes == b.size + d.size
        assert len(list(tmp_path.glob("*.seg"))) == 5          # nothing deleted yet
        spool.fault = None                                       # space is back
        spool.ack([b])
        assert len(list(tmp_path.glob("*.seg"))) == 2          # c's and d's... d's and the current one
        return d
    d = run(go())
    assert _counter(telemetry.spool_write_errors, "dest") - errors == 2
    logged = [r for r in caplog.records if "cannot save the acknowledged mark" in r.getMessage()]
    assert len(logged) == 1                                      # once per episode
    assert any("saved again" in r.getMessage() for r in caplog.records)
    spool.release()
    spool = _spool(tmp_path)
    assert [e.seq for e in _drain(spool)] == [d.seq]
    spool.release()


def test_a_failed_save_is_retried_without_another_ack(tmp_path) -> None:
    spool = _spool(tmp_path, segment_bytes=1)
    spool.ack_interval = 0.05
    spool.fault = _enospc("ack.save", times=1)
    spool.reserve_bytes = 0

    async def go():
        for seed in (1, 2):
            await spool.append(_batch(seed))
        spool.ack(await spool.read(100, 1 << 30))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(list(tmp_path.glob("*.seg"))) == 1:
                return
        raise AssertionError("the mark was not saved again")
    run(go())
    assert read_acked(tmp_path)[0] == 2
    spool.release()


def test_the_reserve_lets_the_mark_be_saved_on_a_full_disk(tmp_path, caplog) -> None:
    spool = _spool(tmp_path, segment_bytes=1, executor=Inline())
    assert (tmp_path / "reserve").stat().st_size == 64 * 1024
    spool.fault = _enospc("ack.save", times=1)  # the first write of the mark: disk full

    async def go():
        await spool.append(_batch(1))
        spool.ack(await spool.read(100, 1 << 30))
    run(go())
    assert read_acked(tmp_path)[0] == 1 and len(list(tmp_path.glob("*.seg"))) == 1
    assert any("used the reserve" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "reserve").exists()       # taken again once the deletion gave space back
    spool.release()


def test_ack_saves_without_blocking_the_loop(tmp_path) -> None:
    """The save (and its fsyncs) run on the spool executor: the loop goes on meanwhile."""
    gate = threading.Event()
    threads: list[str] = []

    def hook(point: str) -> None:
        if point == "ack.save":
            threads.append(threading.current_thread().name)
            gate.wait(5)

    async def go():
        spool = _spool(tmp_path)
        await spool.append(_batch(1))
        spool.fault = hook
        spool.ack(await spool.read(100, 1 << 30))  # returns while the save waits on the gate
        gate.set()
        assert await spool.flush_acks()
        spool.release()
    run(go())
    assert threads and threads[0].startswith("otlp-spool-io")


# -- 4. gaps and torn records are reported and counted -------------------------

def test_a_missing_segment_is_reported_with_its_range(tmp_path, caplog) -> None:
    async def go():
        spool = _spool(tmp_path, segment_bytes=1)
        for seed in range(1, 6):
            await spool.append(_batch(seed))
        spool.release()
    run(go())
    (tmp_path / f"{3:020d}.seg").unlink()  # lost outside the router
    before = _counter(telemetry.spool_lost_records, "dest", "missing")
    spool = _spool(tmp_path)
    assert spool.recovery.missing == [(3, 3)] and spool.recovery.missing_records == 1
    assert _counter(telemetry.spool_lost_records, "dest", "missing") - before == 1
    assert any(r.levelname == "ERROR" and "3..3" in r.getMessage() for r in caplog.records)
    assert _keys(_drain(spool)) == ["key-1", "key-2", "key-4", "key-5"]
    spool.release()


def test_missing_ranges_leave_out_acknowledged_numbers() -> None:
    assert missing_ranges(2, {5, 6}, [(3, 1), (9, 2)], 12) == [(4, 4), (7, 8), (11, 12)]
    assert missing_ranges(0, set(), [(1, 3), (4, 2)], 5) == []


def test_a_torn_final_record_is_counted(tmp_path) -> None:
    async def go():
        spool = _spool(tmp_path)
        for seed in (1, 2):
            await spool.append(_batch(seed))
        spool.release()
    run(go())
    (segment,) = tmp_path.glob("*.seg")
    segment.write_bytes(segment.read_bytes()[:-13])  # the end marker (8 bytes) and 5 of the record's
    before = _counter(telemetry.spool_lost_records, "dest", "torn")
    spool = _spool(tmp_path)
    assert spool.recovery.torn_records == 1 and spool.recovery.missing_records == 0
    assert _counter(telemetry.spool_lost_records, "dest", "torn") - before == 1
    spool.release()


# -- 5/6. fault points ---------------------------------------------------------

def test_every_fault_point_is_reached(tmp_path) -> None:
    from otlp_router.spool.deadletter import DeadLetters
    seen: set[str] = set()
    spool = _spool(tmp_path, segment_bytes=1)
    spool.fault = seen.add

    async def go():
        await spool.append(_batch(1))
        spool.ack(await spool.read(100, 1 << 30))
        assert await spool.flush_acks()
        dead = DeadLetters(tmp_path / "dead", 60)
        dead.fault = seen.add
        await dead.put_async([_batch(2)], "HTTP 400")
    run(go())
    spool.release()
    assert seen == set(FAULT_POINTS)


@pytest.mark.parametrize("point", ["append.write", "append.after_write"])
def test_a_failed_write_leaves_no_partial_record(tmp_path, point) -> None:
    spool = _spool(tmp_path)
    run(spool.append(_batch(1)))
    spool.fault = _enospc(point, times=1)
    with pytest.raises(SpoolFull):
        run(spool.append(_batch(2)))
    spool.fault = None
    run(spool.append(_batch(3)))
    spool.release()
    spool = _spool(tmp_path)
    assert _keys(_drain(spool)) == ["key-1", "key-3"]
    assert spool.recovery.corrupt_records == 0 and spool.recovery.torn_bytes == 0
    spool.release()


def test_a_failed_rotation_keeps_the_record_and_the_segment(tmp_path) -> None:
    spool = _spool(tmp_path, segment_bytes=1)
    spool.fault = _enospc("segment.create", times=1)
    run(spool.append(_batch(1)))          # written; the next segment could not be made
    run(spool.append(_batch(2)))          # goes on in the same segment, then rotates
    spool.release()
    spool = _spool(tmp_path)
    assert _keys(_drain(spool)) == ["key-1", "key-2"]
    spool.release()


def test_a_failed_commit_is_a_refusal(tmp_path) -> None:
    spool = _spool(tmp_path, fsync="always")
    spool.fault = _enospc("commit.fsync", times=1)
    with pytest.raises(SpoolFull, match="cannot sync"):
        run(spool.append(_batch(1)))
    spool.release()


# -- a backlog costs disk, not memory ----------------------------------------------

def _resident(spool: DiskSpool) -> list[bool]:
    return [e.on_disk is None for e in spool._queue]


def test_past_the_resident_budget_payloads_wait_on_disk_and_come_back_whole(tmp_path) -> None:
    one = len(_batch(1).wire) + 64
    async def go():
        spool = _spool(tmp_path, resident_bytes=2 * one)
        for seed in range(1, 6):
            await spool.append(_batch(seed))
        resident = _resident(spool)
        entries = await spool.read(100, 1 << 30)
        spool.release()
        return resident, entries
    resident, entries = run(go())
    assert resident == [True, True, False, False, False]   # the oldest (read next) stay in memory
    assert _keys(entries) == [f"key-{n}" for n in range(1, 6)]
    assert [e.batch.message for e in entries] == [make_request(spans=3, seed=n) for n in range(1, 6)]
    assert all(e.on_disk is None for e in entries)


def test_a_payload_with_a_long_api_key_name_comes_back_whole(tmp_path) -> None:
    """The header is read apart from the payload: one longer than the first read still checks out."""
    long_name = "k" * 600
    async def go():
        spool = _spool(tmp_path, resident_bytes=1)
        await spool.append(Batch(TRACES, make_request(spans=2, seed=9), 2, api_key_name=long_name))
        entries = await spool.read(100, 1 << 30)
        spool.release()
        return entries
    [entry] = run(go())
    assert entry.batch.api_key_name == long_name and entry.batch.message == make_request(spans=2, seed=9)


@pytest.mark.parametrize("damage", ["header lengths", "cut short"])
def test_a_record_whose_header_or_end_is_damaged_is_reported_lost(tmp_path, caplog, damage) -> None:
    async def go():
        spool = _spool(tmp_path, resident_bytes=1)
        for seed in (1, 2):
            await spool.append(_batch(seed))
        path, offset = spool._queue[1].on_disk
        with open(path, "r+b") as f:
            if damage == "header lengths":   # the signal name's length byte: a header past the record
                f.seek(offset + 8 + 1 + 8 + 4)
                f.write(b"\xff")
            else:
                f.truncate(offset + 40)
        entries = await spool.read(100, 1 << 30)
        spool.release()
        return entries
    with caplog.at_level(logging.ERROR):
        entries = run(go())
    assert _keys(entries) == ["key-1"]
    assert "cannot read back record 2" in caplog.text


def test_a_batch_two_destinations_share_keeps_its_payload_for_the_one_that_did_not_evict_it(tmp_path) -> None:
    # Routed to two destinations without shaping, one Batch goes into both spools: the one past its
    # budget must let go of its own copy only.
    async def go():
        full = _spool(tmp_path / "full", resident_bytes=1)
        roomy = _spool(tmp_path / "roomy")
        shared = _batch(1)
        await full.append(shared)
        await roomy.append(shared)
        [kept] = await roomy.read(100, 1 << 30)
        [read_back] = await full.read(100, 1 << 30)
        full.release()
        roomy.release()
        return shared, kept, read_back
    shared, kept, read_back = run(go())
    assert kept.batch is shared and shared.wire == _batch(1).wire
    assert read_back.batch is not shared and read_back.batch.message == make_request(spans=3, seed=1)
    assert read_back.batch.api_key_name == "key-1" and read_back.batch.received == shared.received


def test_a_payload_let_go_of_after_reading_is_read_back_when_wanted(tmp_path) -> None:
    async def go():
        spool = _spool(tmp_path)
        await spool.append(_batch(1))
        await spool.append(_batch(2))
        entries = await spool.read(100, 1 << 30)
        before = [e.batch for e in entries]
        assert all(spool.let_go(e) for e in entries)
        assert all(e.on_disk is not None for e in entries)
        assert await spool.reload(entries) == []
        spool.release()
        return before, entries
    before, entries = run(go())
    assert [e.batch.message for e in entries] == [make_request(spans=3, seed=n) for n in (1, 2)]
    assert all(e.on_disk is None for e in entries)
    assert [b.wire for b in before] == [_batch(n).wire for n in (1, 2)], "the batch read out is left whole"


def test_a_payload_that_cannot_be_read_back_is_reported_not_handed_on_empty(tmp_path) -> None:
    async def go():
        spool = _spool(tmp_path)
        await spool.append(_batch(1))
        [entry] = await spool.read(100, 1 << 30)
        spool.let_go(entry)
        path, offset = entry.on_disk
        with open(path, "r+b") as f:
            f.seek(offset + 20)
            f.write(b"\xff\xff\xff")
        lost = await spool.reload([entry])
        spool.release()
        return entry, lost
    entry, lost = run(go())
    assert lost == [entry]


def test_entries_recovered_after_a_restart_respect_the_budget_too(tmp_path) -> None:
    async def first():
        spool = _spool(tmp_path)
        for seed in range(1, 5):
            await spool.append(_batch(seed))
        crash(spool)
    run(first())
    spool = _spool(tmp_path, resident_bytes=1)
    assert _resident(spool) == [False] * 4
    entries = _drain(spool)
    spool.release()
    assert [e.batch.message for e in entries] == [make_request(spans=3, seed=n) for n in range(1, 5)]


def test_a_requeued_entry_is_handed_out_again_with_its_payload(tmp_path) -> None:
    async def go():
        spool = _spool(tmp_path, resident_bytes=1)
        await spool.append(_batch(1))
        [entry] = await spool.read(100, 1 << 30)
        spool.requeue([entry])
        [again] = await spool.read(100, 1 << 30)
        spool.release()
        return again
    assert run(go()).batch.message == make_request(spans=3, seed=1)


def test_a_payload_that_cannot_be_read_back_is_counted_and_the_rest_delivered(tmp_path, caplog) -> None:
    before = _counter(telemetry.spool_lost_records, "dest", "unreadable")
    async def go():
        spool = _spool(tmp_path, resident_bytes=1)
        for seed in (1, 2, 3):
            await spool.append(_batch(seed))
        path, offset = spool._queue[1].on_disk
        with open(path, "r+b") as f:   # a byte of the second record's payload flipped on disk
            f.seek(offset + 40)
            byte = f.read(1)
            f.seek(offset + 40)
            f.write(bytes([byte[0] ^ 0xFF]))
        entries = await spool.read(100, 1 << 30)
        pending = spool.pending_items
        spool.release()
        return entries, pending
    with caplog.at_level(logging.ERROR):
        entries, pending = run(go())
    assert _keys(entries) == ["key-1", "key-3"] and pending == 6   # the lost one is no longer pending
    assert _counter(telemetry.spool_lost_records, "dest", "unreadable") == before + 1
    assert "cannot read back record 2" in caplog.text


# -- 7. delivered segments are written over --------------------------------------

def _same_size(n: int) -> Batch:
    """Batches whose records are all one size (1 <= n <= 9), so record boundaries
    in a segment written over fall where the old ones were."""
    request = make_request(spans=3, seed=1)
    return Batch(TRACES, request, 3, request.SerializeToString(), api_key_name=f"key-{n}")


_RECORD = len(encode_record(_same_size(1)))
_HEAD = 16  # a segment's header: magic and first number


def _deliver_two_segments(tmp_path: Path) -> tuple[DiskSpool, dict[int, bytes]]:
    """Records 1..6 in two segments of three, both delivered and kept as .free:
    returns the spool and the kept files' bytes by inode."""
    spool = _spool(tmp_path, segment_bytes=3 * _RECORD, resident_bytes=0)

    async def go():
        for n in range(1, 7):
            await spool.append(_same_size(n))
        spool.ack(await spool.read(1000, 1 << 30))
        assert await spool.flush_acks()
    run(go())
    kept = {p.stat().st_ino: p.read_bytes() for p in tmp_path.glob("*.free")}
    assert len(kept) == 2 and [p.name for p in tmp_path.glob("*.seg")] == [f"{7:020d}.seg"]
    return spool, kept


def test_a_delivered_segment_is_written_over_and_only_new_records_come_back(tmp_path) -> None:
    spool, kept = _deliver_two_segments(tmp_path)

    async def go():
        for n in (7, 8, 9, 1):  # the fourth goes into the next segment: a kept file
            await spool.append(_same_size(n))
    run(go())
    reused = tmp_path / f"{10:020d}.seg"
    assert reused.stat().st_ino in kept and len(list(tmp_path.glob("*.free"))) == 1
    crash(spool)
    spool = _spool(tmp_path, resident_bytes=0)  # every payload is read back from its segment
    assert spool.recovery.records == 4
    assert (spool.recovery.torn_records, spool.recovery.corrupt_records) == (0, 0)
    entries = _drain(spool)
    assert _keys(entries) == ["key-7", "key-8", "key-9", "key-1"]
    assert all(e.batch.message == make_request(spans=3, seed=1) for e in entries)
    spool.release()


def test_an_old_record_uncovered_by_a_lost_end_marker_is_not_read_as_new(tmp_path) -> None:
    """The crash took the end marker after the last record but not the record: the
    bytes there are the old use's, a whole record of the same size whose crc was
    good under the old segment's seed."""
    spool, kept = _deliver_two_segments(tmp_path)

    async def go():
        for n in (7, 8, 9, 1):
            await spool.append(_same_size(n))
    run(go())
    reused = tmp_path / f"{10:020d}.seg"
    old = kept[reused.stat().st_ino]
    crash(spool)
    data = bytearray(reused.read_bytes())
    marker = _HEAD + _RECORD
    assert data[marker:marker + 8] == bytes(8)
    data[marker:marker + 8] = old[marker:marker + 8]
    reused.write_bytes(bytes(data))
    spool = _spool(tmp_path)
    assert _keys(_drain(spool)) == ["key-7", "key-8", "key-9", "key-1"]  # not key-2 or key-5 again
    assert spool.recovery.torn_records == 1  # it cannot tell a lost marker from a torn record
    spool.release()


def test_a_reused_segment_whose_header_never_reached_the_disk_holds_no_record(tmp_path) -> None:
    spool, kept = _deliver_two_segments(tmp_path)

    async def go():
        for n in (7, 8, 9):  # the third rotates: the next segment is a kept file, not written yet
            await spool.append(_same_size(n))
    run(go())
    reused = tmp_path / f"{10:020d}.seg"
    assert reused.read_bytes() == kept[reused.stat().st_ino]  # the old header names another segment
    crash(spool)
    spool = _spool(tmp_path)
    assert spool.recovery.records == 3 and spool.recovery.torn_records == 0
    run(spool.append(_same_size(4)))
    assert [e.seq for e in _drain(spool)] == [7, 8, 9, 10]
    spool.release()


def test_a_segment_of_an_older_router_reads_back(tmp_path) -> None:
    # No header, crc unseeded, no end marker: what routers before segment reuse wrote.
    (tmp_path / f"{1:020d}.seg").write_bytes(b"".join(encode_record(_same_size(n)) for n in (1, 2)))
    spool = _spool(tmp_path)
    run(spool.append(_same_size(3)))
    crash(spool)
    spool = _spool(tmp_path, resident_bytes=0)
    entries = _drain(spool)
    assert _keys(entries) == ["key-1", "key-2", "key-3"] and [e.seq for e in entries] == [1, 2, 3]
    assert spool.recovery.torn_records == spool.recovery.corrupt_records == 0
    spool.release()


def test_at_most_pool_segments_are_kept_and_a_full_disk_takes_them_back(tmp_path) -> None:
    spool = _spool(tmp_path, segment_bytes=_RECORD)

    async def go():
        for n in range(1, 9):  # a segment each
            await spool.append(_same_size(n))
        spool.ack(await spool.read(1000, 1 << 30))
        assert await spool.flush_acks()
        assert len(list(tmp_path.glob("*.free"))) == POOL_SEGMENTS  # the other delivered ones are deleted
        assert len(list(tmp_path.glob("*.seg"))) == 1
        spool.fault = _enospc("append.write")
        with pytest.raises(SpoolFull):
            await spool.append(_same_size(9))
        assert not list(tmp_path.glob("*.free"))  # the space they held is the disk's again
    run(go())
    spool.release()
