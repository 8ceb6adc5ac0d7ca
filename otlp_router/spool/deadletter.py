"""A destination's dead letter: batches it rejected for good (a 4xx, INVALID_ARGUMENT),
kept with the reason for `dead_letter_ttl`, and re-playable with `otlp-router replay`.

One file per rejected export, ``<unix ms>-<n>.dead`` (mode 0600, like the
segments: it holds client data): a JSON line with the reason, then the spool
records of the batches. Written to a temporary file, synced, renamed into
place and the directory synced, so a dead letter is either whole or absent."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from otlp_router.model.batch import Batch
from otlp_router.spool.base import FaultHook
from otlp_router.spool.disk import _FRAME, decode_payload, encode_record, fsync_dir, spool_executor, write_whole

_STALE_TMP = 60.0  # a .tmp older than this is left by a crash in the middle of `put`


@dataclass
class DeadLetter:
    path: Path
    reason: str
    at: float
    batches: list[Batch]


class DeadLetters:
    fault: FaultHook | None = None   # see base.FAULT_POINTS ("deadletter.*"); None in production

    def __init__(self, directory: Path, ttl: float, executor: concurrent.futures.Executor | None = None) -> None:
        self.dir = Path(directory)
        self.ttl = ttl
        self._executor = executor

    def put(self, batches: list[Batch], reason: str) -> Path:
        """Keep these batches; when this returns the dead letter is on disk.

        Blocks on fsync: from async code use `put_async`. Raises OSError (disk
        full ...) and then leaves nothing behind."""
        if not self.dir.exists():
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fsync_dir(self.dir.parent)  # the new directory's own entry
        now = time.time()
        path = self.dir / f"{int(now * 1000)}-{uuid.uuid4().hex[:8]}.dead"
        data = orjson.dumps({"reason": reason, "at": now}) + b"\n" + b"".join(encode_record(b) for b in batches)
        tmp = path.with_suffix(".tmp")
        if self.fault is not None:
            self.fault("deadletter.write")
        write_whole(tmp, data, exclusive=True)
        try:
            if self.fault is not None:
                self.fault("deadletter.rename")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        try:
            fsync_dir(self.dir)
        except OSError:
            # Not known to be durable: report the failure and leave nothing, so a
            # caller that keeps the batches and tries again makes no duplicate.
            path.unlink(missing_ok=True)
            raise
        return path

    async def put_async(self, batches: list[Batch], reason: str) -> Path:
        """`put` on the spool executor, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor or spool_executor(), self.put, batches, reason)

    def expire(self, now: float | None = None) -> int:
        """Remove dead letters older than the TTL (and what a crash left half written); returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for letter in self.list():
            if now - letter.at > self.ttl:
                letter.path.unlink(missing_ok=True)
                removed += 1
        for tmp in self.dir.glob("*.tmp") if self.dir.exists() else []:
            try:
                if now - tmp.stat().st_mtime > _STALE_TMP:
                    tmp.unlink(missing_ok=True)
            except OSError:
                pass
        return removed

    def list(self) -> list[DeadLetter]:
        letters = []
        for path in sorted(self.dir.glob("*.dead")) if self.dir.exists() else []:
            data = path.read_bytes()
            line, _, rest = data.partition(b"\n")
            header = orjson.loads(line)
            batches = []
            at = 0
            while at < len(rest):
                length, _ = _FRAME.unpack_from(rest, at)
                start = at + _FRAME.size
                batches.append(decode_payload(rest[start:start + length]))
                at = start + length
            letters.append(DeadLetter(path, header["reason"], header["at"], batches))
        return letters
