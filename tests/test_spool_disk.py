"""The durable spool: append, read, acknowledge, restart, recover torn and corrupt segments."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.spool.base import SpoolFull
from otlp_router.spool.disk import DiskSpool
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
    os.close(spool._fd)
    spool._fd = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC

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
