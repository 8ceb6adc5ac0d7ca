"""`type: file`: write to a local directory.

`format: otlp_json` appends one OTLP JSON export request per line to
``{dir}/{signal}/{date}/{signal}-{time}.jsonl``, starting a new file past
`rotate.max_bytes` or `rotate.max_age`, so files can be tailed while written
and shipped once closed."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import IO

from otlp_router.destinations.assembly import Group
from otlp_router.destinations.base import CheckResult, Destination, ExportError
from otlp_router.destinations.stores.local import NEEDS_AN_OPERATOR, fsync_dir
from otlp_router.model import otlp_json
from otlp_router.model.batch import Batch
from otlp_router.settings import Section
from otlp_router.threads import offload

FORMATS = ("otlp_json", "json", "cbor_zstd")  # the last two: storage.LocalStorageDestination


class _RotatingFile:
    def __init__(self, root: Path, signal: str, max_bytes: int, max_age: float) -> None:
        self.root, self.signal = root, signal
        self.max_bytes, self.max_age = max_bytes, max_age
        self._file: IO[bytes] | None = None
        self._opened = 0.0
        self._written = 0

    def write(self, data: bytes) -> None:
        if self._file is not None and (self._written + len(data) > self.max_bytes
                                       or time.monotonic() - self._opened > self.max_age):
            self.close()
        if self._file is None:
            self._open()
        assert self._file is not None
        rest = memoryview(data)  # unbuffered: a short write is followed up, or raises
        while rest:
            n = self._file.write(rest)
            if not n:
                raise OSError(errno.ENOSPC, "no progress writing")
            rest = rest[n:]
            self._written += n

    def mark(self) -> tuple[object, int]:
        return self._file, self._written

    def rewind(self, mark: tuple[object, int]) -> None:
        """Undo what an export wrote (its retry writes it again): no half lines, no repeats."""
        file, written = mark
        if self._file is None:
            return
        if self._file is not file:
            written = 0          # opened during this export
        try:
            self._file.truncate(written)
            self._file.seek(written)   # truncate leaves the position where it was: a hole otherwise
            self._written = written
        except OSError:
            self.close()         # cannot cut: the next write starts a new file

    def sync(self) -> None:
        """An export is acknowledged only once it is on disk."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def _open(self) -> None:
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{now % 1:.6f}"[1:] + "Z"
        folder = self.root / self.signal / time.strftime("%Y-%m-%d", time.gmtime(now))
        folder.mkdir(parents=True, exist_ok=True)
        # Exclusive create: two routers or a restart within a microsecond never share a file.
        for n in range(1000):
            path = folder / f"{self.signal}-{stamp}{'-' + str(n) if n else ''}.jsonl"
            try:
                self._file = open(path, "xb", buffering=0)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"no free file name in {folder}")
        fsync_dir(folder)
        self._opened = time.monotonic()
        self._written = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class FileDestination(Destination):
    type_name = "file"

    def __init__(self, name: str, settings: Section) -> None:
        super().__init__(name, settings)
        self.dir = Path(settings.str("dir"))
        self.format = settings.str("format", "otlp_json", choices=FORMATS)
        rotate = settings.section("rotate")
        self.max_bytes = rotate.size("max_bytes", 64 * 1024 * 1024, minimum=1)
        self.max_age = rotate.duration("max_age", 3600.0, minimum=0.001)
        rotate.done()
        settings.done()
        self._files: dict[str, _RotatingFile] = {}

    def _file(self, signal: str) -> _RotatingFile:
        f = self._files.get(signal)
        if f is None:
            f = self._files[signal] = _RotatingFile(self.dir, signal, self.max_bytes, self.max_age)
        return f

    def _write(self, batches: list[Batch]) -> None:
        lines = [(batch.signal.name, otlp_json.encode(batch.message) + b"\n") for batch in batches]
        marks = [(f, f.mark()) for f in (self._file(signal) for signal in {s for s, _ in lines})]
        try:
            for signal, line in lines:
                self._file(signal).write(line)
            for f in self._files.values():
                f.sync()
        except OSError:
            for f, mark in marks:
                f.rewind(mark)
            raise

    async def export(self, group: Group) -> None:
        # Encoding and disk writes off the event loop keep receivers answering.
        try:
            await offload(self._write, group.batches())
        except OSError as e:
            # A full disk may recover: retry. A directory that cannot be written as
            # configured needs an operator: dead letter, replay once fixed.
            raise ExportError(f"cannot write under {self.dir}: {e.strerror or e}",
                              permanent=e.errno in NEEDS_AN_OPERATOR) from None

    async def check(self) -> CheckResult:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / f".otlp-router-check-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as e:
            return CheckResult(False, f"cannot write to {self.dir}: {e.strerror or e}")
        return CheckResult(True, f"{self.dir} is writable")

    async def stop(self) -> None:
        for f in self._files.values():
            f.close()
