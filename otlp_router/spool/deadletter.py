"""A destination's dead letter: batches it rejected for good (a 4xx, INVALID_ARGUMENT),
kept with the reason for `dead_letter_ttl`, and re-playable with `otlp-router replay`.

One file per rejected export, ``<unix ms>-<n>.dead``: a JSON line with the
reason, then the spool records of the batches."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from otlp_router.model.batch import Batch
from otlp_router.spool.disk import _FRAME, decode_payload, encode_record


@dataclass
class DeadLetter:
    path: Path
    reason: str
    at: float
    batches: list[Batch]


class DeadLetters:
    def __init__(self, directory: Path, ttl: float) -> None:
        self.dir = Path(directory)
        self.ttl = ttl

    def put(self, batches: list[Batch], reason: str) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        path = self.dir / f"{int(now * 1000)}-{uuid.uuid4().hex[:8]}.dead"
        header = orjson.dumps({"reason": reason, "at": now}) + b"\n"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(header + b"".join(encode_record(b) for b in batches))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def expire(self, now: float | None = None) -> int:
        """Remove dead letters older than the TTL; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for letter in self.list():
            if now - letter.at > self.ttl:
                letter.path.unlink(missing_ok=True)
                removed += 1
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
