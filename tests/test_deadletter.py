"""Dead letters: private files, whole or absent (also on a full disk), synced, writable off the loop."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading

import pytest

from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.spool.deadletter import DeadLetters
from tests.support import make_request


def _batch(seed: int) -> Batch:
    request = make_request(spans=2, seed=seed)
    return Batch(TRACES, request, 2, request.SerializeToString(), api_key_name=f"key-{seed}")


def _enospc(point: str):
    def hook(at: str) -> None:
        if at == point:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return hook


def test_a_dead_letter_round_trips_and_is_private(tmp_path) -> None:
    dead = DeadLetters(tmp_path / "dead", ttl=60)
    path = dead.put([_batch(1), _batch(2)], "HTTP 400: unknown dataset")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (letter,) = dead.list()
    assert letter.path == path and letter.reason == "HTTP 400: unknown dataset"
    assert [b.api_key_name for b in letter.batches] == ["key-1", "key-2"]
    assert letter.batches[0].message == make_request(spans=2, seed=1)
    assert not list((tmp_path / "dead").glob("*.tmp"))


@pytest.mark.parametrize("point", ["deadletter.write", "deadletter.rename"])
def test_enospc_raises_and_leaves_nothing_behind(tmp_path, point) -> None:
    dead = DeadLetters(tmp_path / "dead", ttl=60)
    dead.fault = _enospc(point)
    with pytest.raises(OSError) as err:
        dead.put([_batch(1)], "HTTP 400")
    assert err.value.errno == errno.ENOSPC
    assert list((tmp_path / "dead").iterdir()) == []


def test_a_disk_filling_up_half_way_through_leaves_no_tmp(tmp_path, monkeypatch) -> None:
    real = os.write
    calls = [0]

    def write(fd, data):
        calls[0] += 1
        if calls[0] == 1:
            return real(fd, bytes(data)[:10])  # a short write, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    dead = DeadLetters(tmp_path / "dead", ttl=60)
    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OSError):
        dead.put([_batch(1)], "HTTP 400")
    monkeypatch.undo()
    assert list((tmp_path / "dead").iterdir()) == []


def test_put_syncs_the_directory_after_the_rename(tmp_path, monkeypatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        return real_fsync(fd)

    def replace(a, b):
        events.append("rename")
        return real_replace(a, b)
    (tmp_path / "dead").mkdir()
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    DeadLetters(tmp_path / "dead", ttl=60).put([_batch(1)], "HTTP 400")
    assert events == ["fsync file", "rename", "fsync dir"]


def test_put_async_runs_on_the_spool_executor(tmp_path) -> None:
    threads: list[str] = []
    dead = DeadLetters(tmp_path / "dead", ttl=60)
    dead.fault = lambda point: threads.append(threading.current_thread().name)

    async def go():
        return await dead.put_async([_batch(1)], "HTTP 400")
    path = asyncio.run(go())
    assert path.exists() and threads and all(t.startswith("otlp-spool-io") for t in threads)


def test_expire_removes_old_letters_and_stale_tmp_files(tmp_path) -> None:
    dead = DeadLetters(tmp_path / "dead", ttl=60)
    old = dead.put([_batch(1)], "old")
    stale = tmp_path / "dead" / "1-abc.tmp"
    stale.write_bytes(b"half")
    assert dead.expire(now=os.stat(old).st_mtime + 3600) == 1
    assert list((tmp_path / "dead").iterdir()) == []
