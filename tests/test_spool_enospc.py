"""The disk spool on a real, small, full filesystem (a 1 MiB tmpfs; a loop-mounted
ext4 image where tmpfs cannot be mounted): appends are refused with SpoolFull
(429 upstream), acknowledgements never fail, and once space comes back
everything works again and a restart recovers exactly what was not acknowledged."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from otlp_router import telemetry
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.spool.base import SpoolFull
from otlp_router.spool.deadletter import DeadLetters
from otlp_router.spool.disk import DiskSpool, read_acked
from tests.support import make_request


def _mount(mnt: Path, image: Path) -> str | None:
    """Mount a small filesystem on `mnt`; None, or why it could not be done."""
    tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)],
                           capture_output=True, text=True)
    if tmpfs.returncode == 0:
        return None
    # Some sandboxes refuse tmpfs but allow a loop device.
    steps = [["truncate", "-s", "2M", str(image)], ["mkfs.ext4", "-q", "-F", "-m", "0", str(image)],
             ["mount", "-o", "loop", str(image), str(mnt)]]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            return (f"cannot mount a small filesystem: tmpfs: {tmpfs.stderr.strip()}; "
                    f"loop image ({step[0]}): {result.stderr.strip()}")
    return None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    problem = _mount(mnt, tmp_path / "disk.img")
    if problem:
        pytest.skip(problem)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _batch(n: int) -> Batch:
    request = make_request(spans=10, seed=1 + n % 200)  # ~1.7 KiB
    return Batch(TRACES, request, 10, request.SerializeToString(), api_key_name=f"id-{n}")


def _fill(path: Path) -> None:
    """Write until the filesystem has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            block = bytes(chunk)
            try:
                while True:
                    os.write(fd, block)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _ids(entries) -> list[int]:
    return [int(e.batch.api_key_name.split("-")[1]) for e in entries]


def _errors() -> float:
    return telemetry.spool_write_errors.labels("full")._value.get()


async def _read_all(spool: DiskSpool) -> list:
    out = []
    while spool._queue:
        out.extend(await spool.read(1000, 1 << 30))
    return out


async def _until(check, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("reserve", [0, 64 * 1024], ids=["no-reserve", "reserve"])
def test_a_full_disk_refuses_appends_never_fails_acks_and_recovers(small_disk, reserve, caplog) -> None:
    directory = small_disk / "spool"

    def spool() -> DiskSpool:
        s = DiskSpool("full", directory, 64 << 20, fsync="batch", segment_bytes=16 * 1024, reserve_bytes=reserve)
        s.open()
        return s

    async def go() -> tuple[set[int], set[int]]:
        s = spool()
        appended: list[int] = []
        for n in range(30):
            await s.append(_batch(n))
            appended.append(n)
        _fill(small_disk / "filler")
        # The disk is full: within a few appends (the last page may have room) they are refused.
        errors = _errors()
        refused = False
        for n in range(100, 110):
            try:
                await s.append(_batch(n))
            except SpoolFull as e:
                assert "No space left" in str(e) and e.retry_after > 0
                refused = True
                break
            appended.append(n)
        assert refused and _errors() > errors
        # Acknowledging on a full disk never raises.
        entries = await _read_all(s)
        assert _ids(entries) == appended
        acked = set(_ids(entries[:20]))
        for entry in entries[:20]:
            s.ack([entry])
        saved = await s.flush_acks()
        if reserve:
            # The reserve was given up for the mark, so the delivered segments could go.
            assert saved and read_acked(directory)[0] == 20
            assert any("used the reserve" in r.getMessage() for r in caplog.records)
        else:
            assert not saved and not (directory / "acked").exists()
            assert any("cannot save the acknowledged mark" in r.getMessage() for r in caplog.records)
            assert len(list(directory.glob("*.seg"))) > 2  # nothing deleted before the mark is on disk
        s.requeue(entries[20:])
        # Space comes back: the mark is saved without another ack (the retry timer),
        # appends and acks work again.
        (small_disk / "filler").unlink()
        s.ack_interval = 0.05
        await _until(lambda: read_acked(directory)[0] == 20)
        for n in range(200, 210):
            await s.append(_batch(n))
            appended.append(n)
        more = await _read_all(s)
        assert _ids(more) == [n for n in appended if n not in acked]
        for entry in more[:5]:
            s.ack([entry])
            acked.add(_ids([entry])[0])
        s.release()
        return set(appended), acked

    caplog.set_level(logging.INFO, "otlp_router.spool")
    appended, acked = asyncio.run(go())
    s = spool()
    try:
        assert s.recovery.missing_records == 0 and s.recovery.corrupt_records == 0
        recovered = _ids(asyncio.run(_read_all(s)))
        assert recovered == sorted(appended - acked)
    finally:
        s.release()


def test_release_and_open_on_a_full_disk_do_not_raise(small_disk) -> None:
    directory = small_disk / "spool"

    async def go() -> None:
        s = DiskSpool("full", directory, 64 << 20, reserve_bytes=0)
        s.open()
        for n in range(5):
            await s.append(_batch(n))
        _fill(small_disk / "filler")
        s.ack(await s.read(2, 1 << 30))  # two batches of ten
        s.release()                      # the mark cannot be saved: logged, not raised
    asyncio.run(go())
    s = DiskSpool("full", directory, 64 << 20, reserve_bytes=0)
    s.open()
    try:
        assert s.recovery.records == 5   # duplicates, never a loss
    finally:
        s.release()


def test_a_dead_letter_on_a_full_disk_raises_and_leaves_nothing(small_disk) -> None:
    dead = DeadLetters(small_disk / "dead", ttl=60)
    dead.put([_batch(1)], "HTTP 400")
    _fill(small_disk / "filler")
    with pytest.raises(OSError) as err:
        dead.put([_batch(n) for n in range(20)], "HTTP 400")
    assert err.value.errno == errno.ENOSPC
    assert not list((small_disk / "dead").glob("*.tmp"))
    assert len(dead.list()) == 1
