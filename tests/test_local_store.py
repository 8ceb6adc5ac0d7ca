"""The local directory store: an object is on disk, bytes and name, before `put`
returns; the directory syncs of the puts in flight are shared (group commit); a
failed sync fails every put that shared it and leaves nothing behind."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import threading
from pathlib import Path
from typing import Callable

import pytest

from otlp_router.destinations.stores import local
from otlp_router.destinations.stores.base import StoreError
from otlp_router.destinations.stores.local import FAULT_POINTS, LocalStore


def _data(n: int) -> bytes:
    return f"object {n}\n".encode() * (1 + n * 7 % 3000)   # up to ~40 KB


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root`, temporary ones too, by path relative to it."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


class Commits:
    """A fault hook that holds the first commit at `commit.sync` until `release()`
    (so the puts made meanwhile all join the second commit), then fails the
    second commit's sync with `second` if one is given."""

    def __init__(self, second: OSError | None = None) -> None:
        self.held = threading.Event()
        self._go = threading.Event()
        self._second = second
        self._commits = 0

    def __call__(self, point: str) -> None:
        if point != "commit.sync":
            return
        self._commits += 1
        if self._commits == 1:
            self.held.set()
            assert self._go.wait(10)
        elif self._commits == 2 and self._second is not None:
            raise self._second

    def release(self) -> None:
        self._go.set()


def test_concurrent_puts_land_whole_and_each_returns_only_once_bytes_and_name_are_synced(tmp_path,
                                                                                          monkeypatch) -> None:
    synced: set[Path] = set()       # names that were in a directory when a sync of it began, once it ended
    synced_files: set[int] = set()  # inodes of files synced (a link keeps the inode)
    real_fsync_dir, real_fdatasync = local.fsync_dir, os.fdatasync

    def spy_dir(directory: Path) -> None:
        there = set(directory.iterdir())
        real_fsync_dir(directory)
        synced.update(there)

    def spy_file(fd: int) -> None:
        real_fdatasync(fd)
        synced_files.add(os.fstat(fd).st_ino)
    monkeypatch.setattr(local, "fsync_dir", spy_dir)
    monkeypatch.setattr(os, "fdatasync", spy_file)
    store = LocalStore(str(tmp_path / "store"))
    keys = {n: f"2026-01-0{n % 3 + 1}/key-{n % 2}/{n:04d}.json" for n in range(300)}
    returned_early = []

    async def put(n: int) -> None:
        assert await store.put(keys[n], _data(n), if_absent=True)
        path = store.dir / keys[n]
        if path not in synced or path.stat().st_ino not in synced_files:
            returned_early.append(keys[n])

    async def main() -> None:
        await asyncio.gather(*(put(n) for n in keys))
    asyncio.run(main())
    assert returned_early == []
    assert _files(store.dir) == {keys[n]: _data(n) for n in keys}   # whole, and no temporary file left
    assert 1 <= store.group_commit.started < len(keys) / 2       # the puts in flight shared their syncs


def test_the_puts_made_while_a_commit_runs_all_share_the_next_one(tmp_path) -> None:
    store = LocalStore(str(tmp_path))
    store.fault = commits = Commits()

    async def main() -> list[bool]:
        first = asyncio.create_task(store.put("first.json", b"1", if_absent=True))
        await _until(commits.held.is_set)
        rest = [asyncio.create_task(store.put(f"{n}.json", _data(n), if_absent=True)) for n in range(20)]
        await _until(lambda: store.group_commit.waiting == 20)
        commits.release()
        return await asyncio.gather(first, *rest)
    assert all(asyncio.run(main()))
    assert store.group_commit.started == 2
    assert _files(tmp_path) == {"first.json": b"1", **{f"{n}.json": _data(n) for n in range(20)}}


def test_if_absent_two_puts_of_one_key_in_one_commit_exactly_one_wins(tmp_path) -> None:
    store = LocalStore(str(tmp_path))
    store.fault = commits = Commits()

    async def main() -> list[bool]:
        first = asyncio.create_task(store.put("first.json", b"1", if_absent=True))
        await _until(commits.held.is_set)
        a = asyncio.create_task(store.put("same.json", b"from a", if_absent=True))
        b = asyncio.create_task(store.put("same.json", b"from b", if_absent=True))
        await _until(lambda: store.group_commit.waiting == 2)
        commits.release()
        return await asyncio.gather(first, a, b)
    first, a, b = asyncio.run(main())
    assert store.group_commit.started == 2   # the two in one commit
    assert first and sorted([a, b]) == [False, True]
    assert _files(tmp_path) == {"first.json": b"1", "same.json": b"from a" if a else b"from b"}
    # An existing object is never replaced, in a later commit either.
    assert asyncio.run(store.put("same.json", b"from c", if_absent=True)) is False
    assert (tmp_path / "same.json").read_bytes() == (b"from a" if a else b"from b")


def test_a_failed_sync_fails_every_put_that_shared_it_and_leaves_nothing_behind(tmp_path) -> None:
    store = LocalStore(str(tmp_path / "store"))
    store.fault = commits = Commits(second=OSError(errno.EIO, os.strerror(errno.EIO)))
    keys = [f"2026-01-01/{n}.json" for n in range(10)]

    async def main() -> list:
        first = asyncio.create_task(store.put("first.json", b"1", if_absent=True))
        await _until(commits.held.is_set)
        rest = [asyncio.create_task(store.put(key, _data(n), if_absent=True)) for n, key in enumerate(keys)]
        await _until(lambda: store.group_commit.waiting == len(keys))
        commits.release()
        return await asyncio.gather(first, *rest, return_exceptions=True)
    first, *failed = asyncio.run(main())
    assert first is True
    assert all(isinstance(e, StoreError) and not e.permanent and "Input/output error" in str(e) for e in failed)
    assert _files(store.dir) == {"first.json": b"1"}   # no object under its name, no temporary file

    async def retry() -> list[bool]:   # as the engine does
        return await asyncio.gather(*(store.put(key, _data(n), if_absent=True) for n, key in enumerate(keys)))
    assert all(asyncio.run(retry()))
    assert _files(store.dir) == {"first.json": b"1", **{key: _data(n) for n, key in enumerate(keys)}}


def test_a_failed_file_sync_fails_that_put_alone(tmp_path) -> None:
    store = LocalStore(str(tmp_path))
    failures = [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))]

    def hook(point: str) -> None:
        if point == "put.sync" and failures:
            raise failures.pop()
    store.fault = hook

    async def main() -> list:
        return await asyncio.gather(*(store.put(f"{n}.json", _data(n), if_absent=True) for n in range(8)),
                                    return_exceptions=True)
    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, StoreError)]
    assert len(errors) == 1 and not errors[0].permanent and "No space left" in str(errors[0])
    assert _files(tmp_path) == {f"{n}.json": _data(n) for n, r in enumerate(results) if r is True}


def test_a_new_directory_is_made_and_its_parent_synced_once(tmp_path, monkeypatch) -> None:
    synced: list[Path] = []
    real = local.fsync_dir
    monkeypatch.setattr(local, "fsync_dir", lambda directory: (real(directory), synced.append(directory)))
    store = LocalStore(str(tmp_path / "store"))   # not there yet either
    day = store.dir / "2026-01-01"

    async def main() -> None:
        await asyncio.gather(*(store.put(f"2026-01-01/key-a/{n}.json", _data(n), if_absent=True)
                               for n in range(50)))
        for n in range(50, 55):
            await store.put(f"2026-01-01/key-a/{n}.json", _data(n), if_absent=True)
    asyncio.run(main())
    assert len(_files(day / "key-a")) == 55
    assert synced.count(tmp_path) == 1     # the store's directory made
    assert synced.count(store.dir) == 1    # 2026-01-01 made
    assert synced.count(day) == 1          # key-a made
    assert synced.count(day / "key-a") == store.group_commit.started   # its objects' names: once a commit


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nothing can be written to: mode 0555, or for root a read-only tmpfs."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(directory)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {result.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("key", ["a.json", "2026-01-01/a.json"])
def test_a_directory_that_cannot_be_written_is_permanent(read_only_dir, key) -> None:
    store = LocalStore(str(read_only_dir))
    with pytest.raises(StoreError) as failed:
        asyncio.run(store.put(key, b"x", if_absent=True))
    assert failed.value.permanent
    assert "Read-only file system" in str(failed.value) or "Permission denied" in str(failed.value)


def test_every_fault_point_is_reached(tmp_path) -> None:
    seen: set[str] = set()
    store = LocalStore(str(tmp_path))
    store.fault = seen.add
    assert asyncio.run(store.put("a/b.json", b"x", if_absent=True))
    assert seen == set(FAULT_POINTS)
