"""`type: s3` (and `type: file` with a stored format): a format over a store.

    format: json        per-trace JSON documents {path}/{traceId}-{timestamp}.json
    format: cbor_zstd   Aperture batches [{prefix}/]ts-aperture-export-<unix-timestamp>.cbor.zstd
    format: otlp_json   OTLP JSON lines, [{prefix}/]{signal}/{date}/{signal}-{time}.jsonl[.gz|.zst]

Objects are written by a background loop as groups come due, each retried
until the store takes it; spool entries are acknowledged once written."""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from typing import Any, Callable

import zstandard

from otlp_router.destinations.assembly import (Group, Holds, LineBatcher, LineGroup, OpenTrace, RecordBatcher,
                                               RecordGroup, TraceAssembler)
from otlp_router.destinations.base import CheckResult, Gatherer
from otlp_router.destinations.formats.aperture import encode_records
from otlp_router.destinations.formats.trace_json import encode_document, trace_document
from otlp_router.destinations.stores.base import Store, StoreError
from otlp_router.destinations.stores.local import LocalStore
from otlp_router.destinations.stores.s3 import S3Settings, S3Store
from otlp_router.settings import Section
from otlp_router.spool.base import Entry

log = logging.getLogger("otlp_router.destinations.storage")

FORMATS = ("json", "cbor_zstd", "otlp_json")
_TEMPLATE_VARIABLES = ("prefix", "date", "year", "month", "day", "apiKeyName")
APERTURE_LIMIT_CAP = 10_000


def _path_template(section: Section) -> str:
    template = section.str("path_template", "openrouter-traces/{date}")
    try:
        template.format(**{v: "x" for v in _TEMPLATE_VARIABLES})
    except (KeyError, IndexError, ValueError) as e:
        section.fail(f"unknown variable or bad braces in {template!r} ({e}); "
                     f"variables: {', '.join('{' + v + '}' for v in _TEMPLATE_VARIABLES)}", "path_template")
    return template.strip("/")


class StorageDestination(Gatherer):
    def __init__(self, name: str, settings: Section, store: Store) -> None:
        super().__init__(name, settings)
        self.store = store
        self.format = settings.str("format", "json", choices=FORMATS)
        self.prefix = settings.str("prefix", "")
        if self.prefix.endswith("/"):
            settings.fail("must not end with /", "prefix")
        # Aperture records leave out the capture in privacy mode; the rest of
        # privacy happens upstream, in the destination's shaping.
        privacy = settings.data.get("privacy") is True
        self.assembler: Any
        if self.format != "otlp_json":
            self.accepts = frozenset({"traces"})  # per-trace JSON and Aperture records are trace formats
        if self.format == "json":
            self.whole_traces = True
            self.path_template = _path_template(settings)
            self.assembler = TraceAssembler(
                settings.duration("trace_idle", 5.0, minimum=0.001),
                settings.duration("trace_max_age", 300.0, minimum=0.001),
                settings.int("max_open_traces", 100_000, minimum=1),
                settings.size("max_open_bytes", 256 * 1024 * 1024, minimum=1024))
        elif self.format == "cbor_zstd":
            self.assembler = RecordBatcher(
                settings.duration("every", 3600.0, minimum=0.001),
                settings.int("limit", 1000, minimum=1, maximum=APERTURE_LIMIT_CAP), privacy)
        else:
            rotate = settings.section("rotate")
            self.assembler = LineBatcher(rotate.size("max_bytes", 64 * 1024 * 1024, minimum=1),
                                         rotate.duration("max_age", 300.0, minimum=0.001))
            rotate.done()
            self.compression = settings.str("compression", "gzip", choices=("gzip", "zstd", "none"))
        self._holds: Holds | None = None
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.int("write_concurrency", 16, minimum=1))
        self._writer: asyncio.Task[None] | None = None
        self._last_names: dict[str, int] = {}
        self._failing = False

    def bind(self, ack: Callable[[list[Entry]], None]) -> None:
        self._holds = Holds(ack)

    async def start(self) -> None:
        await self.store.start()
        self._writer = asyncio.create_task(self._write_loop(), name=f"storage:{self.name}")

    async def take(self, entries: list[Entry]) -> None:
        assert self._holds is not None, "bind() before take()"
        now = time.monotonic()
        for entry in entries:
            self._holds.hold(entry, self.assembler.add(entry, now))
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            due_at = self.assembler.next_due()
            timeout = None if due_at is None else max(0.0, due_at - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            due = self.assembler.due(time.monotonic())
            if due:
                # Many small objects (a document per trace): write them side by side.
                async def write(group: Group) -> None:
                    async with self._slots:
                        await self._write(group)
                await asyncio.gather(*(write(g) for g in due))

    async def _write(self, group: Group) -> None:
        """Write one group, retrying until the store takes it."""
        delay = 0.5
        while True:
            try:
                await self._put(group)
                break
            except StoreError as e:
                if not self._failing:
                    log.error("destination %s: cannot write (%s); retrying until it works", self.name, e)
                self._failing = True
                await asyncio.sleep(delay * (4 if e.throttled else 1))
                delay = min(delay * 2, 30.0)
        if self._failing:
            log.info("destination %s: writing again", self.name)
            self._failing = False
        assert self._holds is not None
        self._holds.release(group.entries.values())

    async def _put(self, group: Group) -> None:
        if isinstance(group, OpenTrace):
            data = await asyncio.to_thread(lambda: encode_document(trace_document(group.trace_id, group.spans)))
            await self._put_unique(group, lambda ts: self._trace_key(group, ts), data)
        elif isinstance(group, RecordGroup):
            data = await asyncio.to_thread(encode_records, group.records)
            base = f"{self.prefix}/" if self.prefix else ""
            await self._put_unique(group, lambda ts: f"{base}ts-aperture-export-{ts}.cbor.zstd", data)
        else:
            assert isinstance(group, LineGroup)
            data, suffix = self._compress(b"".join(group.lines))
            await self._put_unique(group, lambda ts: self._lines_key(group.signal, ts, suffix), data)

    async def _put_unique(self, group: Group, key_for: Any, data: bytes) -> None:
        """Objects are named by the unix second their first item arrived, which a
        replay after a crash gives again: written only if absent, an existing
        object with the same bytes is that earlier write, and one with other
        bytes (two objects in one second) moves this one to the next second."""
        ts = int(group.first_received)
        for _ in range(3600):
            key = key_for(ts)
            if await self.store.put(key, data, if_absent=True):
                return
            if await self.store.get(key) == data:
                log.info("destination %s: %s was already written (replayed after a restart)", self.name,
                         self.store.location(key))
                return
            ts += 1
        raise StoreError(f"no free object name near {key_for(int(group.first_received))}")

    def _variables(self, api_key_name: str | None, when: float) -> dict[str, str]:
        t = time.gmtime(when)
        return {"prefix": self.prefix, "date": time.strftime("%Y-%m-%d", t), "year": f"{t.tm_year:04d}",
                "month": f"{t.tm_mon:02d}", "day": f"{t.tm_mday:02d}", "apiKeyName": api_key_name or "default"}

    def _trace_key(self, trace: OpenTrace, ts: int) -> str:
        key_name = trace.api_key_name
        if key_name is None:
            for ref in trace.spans:
                for kv in ref.span.attributes:
                    if kv.key == "trace.metadata.openrouter.api_key_name":
                        key_name = kv.value.string_value or None
                        break
                if key_name:
                    break
        path = self.path_template.format(**self._variables(key_name, ts)).strip("/")
        # A template without {prefix} still lands under the destination's prefix.
        if self.prefix and "{prefix}" not in self.path_template:
            path = f"{self.prefix}/{path}"
        return f"{path}/{trace.trace_id.hex()}-{ts}.json" if path else f"{trace.trace_id.hex()}-{ts}.json"

    def _lines_key(self, signal: str, ts: int, suffix: str) -> str:
        v = self._variables(None, ts)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))
        base = f"{self.prefix}/" if self.prefix else ""
        return f"{base}{signal}/{v['date']}/{signal}-{stamp}.jsonl{suffix}"

    def _compress(self, data: bytes) -> tuple[bytes, str]:
        if self.compression == "gzip":
            return gzip.compress(data, compresslevel=6), ".gz"
        if self.compression == "zstd":
            return zstandard.ZstdCompressor().compress(data), ".zst"
        return data, ""

    async def check(self) -> CheckResult:
        return await self.store.check(self.prefix)

    async def stop(self) -> None:
        """Write everything still gathering: open traces and part-filled batches."""
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        for group in self.assembler.due(time.monotonic(), everything=True):
            await self._write(group)
        await self.store.stop()


class S3Destination(StorageDestination):
    type_name = "s3"

    def __init__(self, name: str, settings: Section) -> None:
        s3 = S3Settings.read(settings)
        super().__init__(name, settings, S3Store(s3))
        settings.done()


class LocalStorageDestination(StorageDestination):
    """`type: file` with `format: json` or `cbor_zstd`: the S3 key layout under a directory."""

    type_name = "file"

    def __init__(self, name: str, settings: Section) -> None:
        super().__init__(name, settings, LocalStore(settings.str("dir")))
        settings.done()
