"""A local directory as an object store: keys are paths under `dir`."""

from __future__ import annotations

import asyncio
import errno
import os
import uuid
from pathlib import Path

from otlp_router.destinations.base import CheckResult
from otlp_router.destinations.stores.base import Store, StoreError
from otlp_router.spool.disk import fsync_dir


# A directory that is not writable as configured; a full disk or an I/O error may pass.
NEEDS_AN_OPERATOR = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR,
                                errno.ENAMETOOLONG, errno.EINVAL, errno.ELOOP})


class LocalStore(Store):
    def __init__(self, directory: str) -> None:
        self.dir = Path(directory)

    def location(self, key: str) -> str:
        return str(self.dir / key)

    def _put(self, key: str, data: bytes, if_absent: bool) -> bool:
        path = self.dir / key
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            fsync_dir(path.parent.parent)
        # Written whole under a temporary name, then linked into place: readers
        # never see half an object, and a link cannot replace an existing one.
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            if if_absent:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
            else:
                os.replace(tmp, path)
                tmp = None  # type: ignore[assignment]
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)  # acknowledged only once the name is on disk too
        return True

    async def put(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        try:
            return await asyncio.to_thread(self._put, key, data, if_absent)
        except OSError as e:
            raise StoreError(f"cannot write {self.location(key)}: {e.strerror or e}",
                             permanent=e.errno in NEEDS_AN_OPERATOR) from None

    async def get(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread((self.dir / key).read_bytes)
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
