"""A local directory as an object store: keys are paths under `dir`.

An object is written whole under a temporary name, synced (fdatasync) and
linked into place, so a reader never sees half of one and `if_absent` can never
replace one; then its directory is synced. `put` returns only once both the
bytes and the name are on disk.

The directory syncs are shared (group commit, `GroupCommit`): one runs at a
time, and every put that linked its object while one ran shares the next, which
syncs each directory those puts wrote into once, and the parent of each new
directory once. Each put syncs its own file in its own thread: concurrent
fdatasyncs share the filesystem's journal commits, where one thread syncing a
commit's files one after another waits for a journal commit per file. A failed
directory sync fails every put that shared it, and removes the names those puts
created (the engine retries them); none is reported done unsynced.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from otlp_router.destinations import paths
from otlp_router.destinations.base import CheckResult
from otlp_router.destinations.stores.base import Store, StoreError
from otlp_router.groupcommit import GroupCommit
from otlp_router.spool.base import FaultHook
from otlp_router.spool.disk import fsync_dir, write_all
from otlp_router.threads import Workers

T = TypeVar("T")

# A directory that is not writable as configured; a full disk or an I/O error may pass.
NEEDS_AN_OPERATOR = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR,
                                errno.ENAMETOOLONG, errno.EINVAL, errno.ELOOP})

# Fault injection for tests, as in the spool (spool/base.py): a store with `fault`
# set calls it with the name of each step below just before taking it; an OSError
# it raises fails that step. Unset (None) it costs one attribute test per step.
FAULT_POINTS = (
    "put.sync",           # before a put syncs its temporary file (in the store's threads)
    "commit.sync",        # before a commit syncs the directories of its puts (in the store's commit thread)
    "commit.after_sync",  # the directories are synced, the puts not yet told
)

THREADS = 16   # the default `write_concurrency`: every put in flight syncs at once

# Temporary names: unique in the process without a syscall per put, and across processes.
_TMP_PREFIX = uuid.uuid4().hex[:12]
_tmp_numbers = itertools.count()


@dataclass(slots=True)
class _Put:
    parent: str               # the directory the object went into
    created: str | None       # the name this put linked (removed again if the commit fails)


class LocalStore(Store):
    fault: FaultHook | None = None   # see FAULT_POINTS; None in production

    def __init__(self, directory: str, threads: int = THREADS) -> None:
        self.dir = Path(directory)
        # Names as strings on the way of a put: pathlib's operations cost more than the system
        # calls of a small object.
        self._dir_name = os.fspath(self.dir)
        self._thread_count = threads
        self._threads, self._committer = self._executors()
        # The directory syncs, shared by the puts in flight (`started` counts them, for tests).
        self.group_commit: GroupCommit[_Put, None] = GroupCommit(self._commit)
        # Directories under `dir` whose own name is known to be on disk (their parent
        # synced since they were seen); `dir` itself is made (if need be) once, up front.
        self._durable: set[str] = set()
        self._root: asyncio.Future[None] | None = None
        self._root_ready = False

    def location(self, key: str) -> str:
        return str(self.dir / key)

    def _executors(self) -> tuple[Workers, Workers]:
        # Its own threads, as S3's: the file syncs of every put in flight wait side by side,
        # never queued behind the encoders (or queueing them) in the shared pool (`offload`);
        # and one for the directory syncs, which never wait behind the puts they serve.
        return Workers(self._thread_count, "local-store"), Workers(1, "local-store-commit")

    async def _in_thread(self, call: Callable[..., T], *args: Any) -> T:
        return await self._threads.run(call, *args)

    # -- put --------------------------------------------------------------

    async def put(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        path = os.path.join(self._dir_name, key)
        parent = os.path.dirname(path)
        try:
            if not self._root_ready:
                await self._make_root_once()
            try:
                created = await self._in_thread(self._write, key, path, data, if_absent, not self._known(parent))
            except FileNotFoundError:
                if not self._known(parent):
                    raise
                # Removed under us: made again, and synced again.
                self._forget(parent)
                await self._make_root_once()
                created = await self._in_thread(self._write, key, path, data, if_absent, True)
            # Only now: the commit joined is one that starts after the name was linked.
            # A put that found the name taken waits too, so the object it found is on disk.
            await self.group_commit.join(_Put(parent, path if created and if_absent else None))
        except OSError as e:
            raise StoreError(f"cannot write {self.location(key)}: {e.strerror or e}",
                             permanent=e.errno in NEEDS_AN_OPERATOR) from None
        except paths.UnsafeKey as e:
            raise StoreError(f"refusing to write the object: {e}", permanent=True) from None
        return created

    async def _make_root_once(self) -> None:
        """`dir` exists and, if the store made it, its name is on disk: once, shared by the
        puts that come meanwhile (a put seeing `dir` made must not return before it is synced)."""
        if self._root is None or self._root.done():   # not yet, or the last attempt failed
            self._root = asyncio.ensure_future(self._in_thread(self._make_root))
        await asyncio.shield(self._root)
        self._root_ready = True

    def _make_root(self) -> None:
        missing = []
        directory = self.dir
        while not directory.is_dir() and directory.parent != directory:
            missing.append(directory)
            directory = directory.parent
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
        for directory in missing:
            fsync_dir(directory.parent)

    def _write(self, key: str, target: str, data: bytes, if_absent: bool, make_parent: bool) -> bool:
        """In the store's threads: the object written, synced and linked into place
        (not yet its directory); False if `if_absent` and the name is taken."""
        # A safe key can still leave the directory through a symbolic link in it: checked
        # here, next to the write (and without a thread hand-off of its own).
        paths.resolve_under(self.dir, key)
        parent, name = os.path.split(target)
        if make_parent:
            os.makedirs(parent, exist_ok=True)   # the commit syncs their parents
        tmp: str | None = f"{parent}/.{name}.{_TMP_PREFIX}{next(_tmp_numbers)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            try:
                write_all(fd, data)
                if self.fault is not None:
                    self.fault("put.sync")
                # The bytes and the size that reaches them; the name is the directory sync's.
                os.fdatasync(fd)
            finally:
                os.close(fd)
            if if_absent:
                try:
                    os.link(tmp, target)   # never replaces an existing object
                except FileExistsError:
                    return False
            else:
                os.replace(tmp, target)
                tmp = None
            return True
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass

    # -- the commit -------------------------------------------------------

    async def _commit(self, puts: list[_Put]) -> list[None]:
        """Sync each directory these puts wrote into, and the parent of each directory
        not yet known to be on disk, once; on the loop, the syncs in a thread."""
        new: set[str] = set()
        parents = {p.parent for p in puts}
        for parent in parents:
            directory = parent
            while directory != self._dir_name and directory not in self._durable and directory not in new:
                new.add(directory)
                directory = os.path.dirname(directory)
        directories = {Path(d) for d in parents | {os.path.dirname(d) for d in new}}
        created = [p.created for p in puts if p.created is not None]
        await self._committer.run(self._sync, directories, created)
        if len(self._durable) > 10_000:
            self._durable.clear()   # dated directories accumulate; forgetting one costs a sync
        self._durable |= new
        return [None] * len(puts)

    def _sync(self, directories: set[Path], created: list[str]) -> None:
        """In the store's commit thread."""
        try:
            if self.fault is not None:
                self.fault("commit.sync")
            for directory in directories:
                fsync_dir(directory)
            if self.fault is not None:
                self.fault("commit.after_sync")
        except BaseException:
            # Not on disk for sure: take the names back, so the retry writes them again
            # rather than finding them and taking them for written. (A replaced object
            # is left: its bytes are synced, and the one it replaced is gone either way.)
            for path in created:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise

    def _known(self, directory: str) -> bool:
        return directory == self._dir_name or directory in self._durable

    def _forget(self, directory: str) -> None:
        while directory != self._dir_name:
            self._durable.discard(directory)
            directory = os.path.dirname(directory)

    # -- the rest ---------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        try:
            return await self._in_thread((self.dir / key).read_bytes)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"cannot read {self.location(key)}: {e.strerror or e}") from None

    async def check(self, prefix: str) -> CheckResult:
        key = f"{prefix.rstrip('/')}/.otlp-router-check-{uuid.uuid4().hex}" if prefix else \
            f".otlp-router-check-{uuid.uuid4().hex}"
        try:
            await self.put(key, b"ok")
            (self.dir / key).unlink()
        except (StoreError, OSError) as e:
            return CheckResult(False, str(e))
        return CheckResult(True, f"{self.dir} is writable")

    async def stop(self) -> None:
        # As S3's: nothing waits for its threads here; a restart gets fresh ones.
        for workers in (self._threads, self._committer):
            workers.shutdown()
        self._threads, self._committer = self._executors()


