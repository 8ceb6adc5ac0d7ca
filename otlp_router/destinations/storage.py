"""`type: s3` (and `type: file` with a stored format): a format over a store.

    format: json        per-trace JSON documents {path}/{traceId}-{timestamp}.json
    format: cbor_zstd   Aperture batches [{prefix}/]ts-aperture-export-<unix-timestamp>.cbor.zstd
    format: otlp_json   OTLP JSON lines, [{prefix}/]{signal}/{date}/{signal}-{time}.jsonl[.gz|.zst]

The delivery engine gathers items with the format's assembler and exports each
group that comes due: the format encodes it (a pure function), the store puts
the bytes."""

from __future__ import annotations

import logging
import time
from typing import Callable

import zstandard

from otlp_router import _native
from otlp_router.destinations import paths
from otlp_router.destinations.assembly import (Assembler, Group, LineBatcher, LineGroup, OpenTrace, RecordBatcher,
                                               RecordGroup, TraceAssembler)
from otlp_router.destinations.base import CheckResult, Destination, ExportError
from otlp_router.destinations.formats.trace_json import encode_trace
from otlp_router.destinations.stores.base import Store, StoreError
from otlp_router.destinations.stores.local import LocalStore
from otlp_router.settings import Section
from otlp_router.threads import offload

log = logging.getLogger("otlp_router.destinations.storage")

# A trace encoded on the loop: at most ~0.2 ms of the core's work (bench/formats_inprocess.py).
INLINE_TRACE_SPANS = 32
INLINE_TRACE_BYTES = 128 * 1024

FORMATS = ("json", "cbor_zstd", "otlp_json")
_TEMPLATE_VARIABLES = ("prefix", "date", "year", "month", "day", "apiKeyName")
APERTURE_LIMIT_CAP = 10_000
# Names a put reads at most before it gives up (those this process knows are passed unread).
MAX_NAME_READS = 3600
AHEAD_WARNING = 60   # seconds a name may run ahead of its data before the log says so


def _path_template(section: Section) -> str:
    template = section.str("path_template", "openrouter-traces/{date}")
    variables = ', '.join('{' + v + '}' for v in _TEMPLATE_VARIABLES)
    try:
        unknown = [f for f in paths.template_fields(template) if f not in _TEMPLATE_VARIABLES]
        if unknown:
            raise paths.UnsafeKey(f"unknown variable {{{unknown[0]}}}")
        # The operator's literal parts must make a safe key too ("../x", "a b" would not).
        sample = paths.render(template, {v: "x" for v in _TEMPLATE_VARIABLES if v != "prefix"}, {"prefix": "x"})
        paths.check_key(f"{sample}/x.json" if sample else "x.json")
    except paths.UnsafeKey as e:
        section.fail(f"{e} in {template!r}; variables: {variables}; literal parts: A-Z a-z 0-9 . _ - "
                     "and / between segments", "path_template")
    return template.strip("/")


def _prefix(section: Section) -> str:
    prefix = section.str("prefix", "")
    if prefix.endswith("/"):
        section.fail("must not end with /", "prefix")
    try:
        return paths.check_prefix(prefix)
    except paths.UnsafeKey as e:
        section.fail(f"{e}; a prefix is segments of A-Z a-z 0-9 . _ - joined by /", "prefix")


class StorageDestination(Destination):
    default_max_in_flight = 16     # objects written side by side
    per_trace_max_in_flight = 16   # for `format: json`: many small objects, a document per trace

    def __init__(self, name: str, settings: Section, store: Store) -> None:
        super().__init__(name, settings)
        self.store = store
        self._taken = TakenNames()
        self._warned_ahead = -60.0
        self.format = settings.str("format", "json", choices=FORMATS)
        self.prefix = _prefix(settings)
        # Aperture records leave out the capture in privacy mode; the rest of
        # privacy happens upstream, in the destination's shaping.
        self.privacy = settings.data.get("privacy") is True
        if self.format != "otlp_json":
            # Trace formats: spans, and log records when a route sends them (`signals: [traces,
            # logs]`): GenAI events join their spans (assembly.py).
            self.accepts, self.implied = frozenset({"traces", "logs"}), frozenset({"traces"})
        if self.format == "json":
            self.whole_traces = True
            self.path_template = _path_template(settings)
            self._trace_dirs: dict[tuple[str | None, int], str] = {}
            self._trace_settings = (settings.duration("trace_idle", 5.0, minimum=0.001),
                                    settings.duration("trace_max_age", 300.0, minimum=0.001),
                                    settings.int("max_open_traces", 100_000, minimum=1),
                                    settings.size("max_open_bytes", 64 * 1024 * 1024, minimum=1024))
        elif self.format == "cbor_zstd":
            self._record_settings = (settings.duration("every", 3600.0, minimum=0.001),
                                     settings.int("limit", 1000, minimum=1, maximum=APERTURE_LIMIT_CAP))
        else:
            rotate = settings.section("rotate")
            self._line_settings = (rotate.size("max_bytes", 64 * 1024 * 1024, minimum=1),
                                   rotate.duration("max_age", 300.0, minimum=0.001))
            rotate.done()
            self.compression = settings.str("compression", "gzip", choices=("gzip", "zstd", "none"))
        default = self.per_trace_max_in_flight if self.format == "json" else self.default_max_in_flight
        self.default_max_in_flight = settings.int("write_concurrency", default, minimum=1)

    def assembler(self, max_items: int, max_bytes: int, flush_interval: float) -> Assembler:
        if self.format == "json":
            return TraceAssembler(*self._trace_settings)
        if self.format == "cbor_zstd":
            return RecordBatcher(*self._record_settings, self.privacy)
        return LineBatcher(*self._line_settings)

    async def start(self) -> None:
        await self.store.start()

    async def export(self, group: Group) -> None:
        try:
            # A small trace is encoded sooner than a thread takes it (per-trace JSON to a local
            # directory: 405 -> 350 us of CPU a trace, bench/trace_files.py): on the loop.
            small = isinstance(group, OpenTrace) and not group.logs and len(group.parts) <= INLINE_TRACE_SPANS \
                and sum(len(part[0]) for part in group.parts) <= INLINE_TRACE_BYTES
            key_for, data, digest = self._encode(group) if small else await offload(self._encode, group)
        except Exception as e:  # noqa: BLE001 - formats are pure: what fails once fails every time
            raise ExportError(f"cannot encode the {self.format} object: {e!r}", permanent=True) from e
        await self._put_unique(group, key_for, data, digest)

    def _encode(self, group: Group) -> tuple[Callable[[int], str], bytes, tuple[int, int]]:
        """The object's key for a given second, its bytes and their digest (pure; off the event
        loop but for a small trace)."""
        if isinstance(group, OpenTrace):
            data = encode_trace(group.trace_id, group.parts, group.logs)
            key_name = _key_name(group)
            return (lambda ts: self._trace_key(group.trace_id, key_name, ts)), data, _digest(data)
        if isinstance(group, RecordGroup):
            base = f"{self.prefix}/" if self.prefix else ""
            data = group.records.finish()
            return (lambda ts: f"{base}ts-aperture-export-{ts}.cbor.zstd"), data, _digest(data)
        assert isinstance(group, LineGroup)
        data, suffix = self._compress(b"".join(group.lines))
        return (lambda ts: self._lines_key(group.signal, ts, suffix)), data, _digest(data)

    async def _put_unique(self, group: Group, key_for: Callable[[int], str], data: bytes,
                          digest: tuple[int, int]) -> None:
        """Objects are named by the unix second their first item arrived, which a
        replay after a crash gives again: written only if absent, an existing
        object with the same bytes is that earlier write, and one with other
        bytes (two objects in one second) moves this one to the next second.
        Names this process knows to hold other bytes are passed without a read."""
        first = ts = int(group.first_received)
        reads = 0
        while reads < MAX_NAME_READS:
            key = key_for(ts)
            ts += 1
            if self._taken.holds_other(key, digest):
                continue
            reads += 1
            key = await self._checked(key)
            if await self.store.put(key, data, if_absent=True):
                self._taken.add(key, digest)
                self._note_ahead(ts - 1 - first)
                return
            existing = await self.store.get(key)
            if existing == data:
                log.info("destination %s: %s was already written (replayed after a restart)", self.name,
                         self.store.location(key))
                self._taken.add(key, digest)
                return
            if existing is not None:
                self._taken.add(key, _digest(existing))
        raise StoreError(f"no free object name near {key_for(first)} ({MAX_NAME_READS} names read, all taken)")

    def _note_ahead(self, seconds: int) -> None:
        """Names that run ahead of their data: more than one object a second, for a while."""
        now = time.monotonic()
        if seconds >= AHEAD_WARNING and now - self._warned_ahead >= 60.0:
            self._warned_ahead = now
            log.warning("destination %s: objects are named %d s past the second their first item arrived: "
                        "more than one object a second is written (a larger `limit` or rotation size makes "
                        "fewer)", self.name, seconds)

    async def _checked(self, key: str) -> str:
        """The key, if it is safe to write; a permanent error otherwise: retrying
        cannot make it safe, and it must never be written elsewhere instead."""
        try:
            return paths.check_key(key)
        except paths.UnsafeKey as e:
            raise ExportError(f"refusing to write the object: {e}", permanent=True) from None

    def _variables(self, api_key_name: str | None, when: float) -> dict[str, str]:
        """The template's values but `prefix` (the operator's, put in as it is);
        `paths.render` makes each one a single safe segment."""
        t = time.gmtime(when)
        return {"date": time.strftime("%Y-%m-%d", t), "year": f"{t.tm_year:04d}",
                "month": f"{t.tm_mon:02d}", "day": f"{t.tm_mday:02d}", "apiKeyName": api_key_name or "default"}

    def _trace_key(self, trace_id: bytes, key_name: str | None, ts: int) -> str:
        path = self._trace_dirs.get((key_name, ts))
        if path is None:
            # The traces of a second and an API key share their directory: rendered once.
            if len(self._trace_dirs) >= 1024:
                self._trace_dirs.clear()
            path = paths.render(self.path_template, self._variables(key_name, ts), {"prefix": self.prefix})
            # A template without {prefix} still lands under the destination's prefix.
            if self.prefix and "{prefix}" not in self.path_template:
                path = f"{self.prefix}/{path}" if path else self.prefix
            self._trace_dirs[(key_name, ts)] = path
        return f"{path}/{trace_id.hex()}-{ts}.json" if path else f"{trace_id.hex()}-{ts}.json"

    def _lines_key(self, signal: str, ts: int, suffix: str) -> str:
        v = self._variables(None, ts)   # date only: nothing from clients in these keys
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))
        base = f"{self.prefix}/" if self.prefix else ""
        return f"{base}{signal}/{v['date']}/{signal}-{stamp}.jsonl{suffix}"

    def _compress(self, data: bytes) -> tuple[bytes, str]:
        if self.compression == "gzip":
            return _native.gzip(data, 6), ".gz"
        if self.compression == "zstd":
            return zstandard.ZstdCompressor().compress(data), ".zst"
        return data, ""

    async def check(self) -> CheckResult:
        return await self.store.check(self.prefix)

    async def stop(self) -> None:
        await self.store.stop()


class S3Destination(StorageDestination):
    type_name = "s3"

    def __init__(self, name: str, settings: Section) -> None:
        # boto3 only once a destination writes to S3: 14 MB of RSS and 90 ms of start-up otherwise.
        from otlp_router.destinations.stores.s3 import S3Settings, S3Store
        super().__init__(name, settings, S3Store(S3Settings.read(settings)))
        settings.done()


class LocalStorageDestination(StorageDestination):
    """`type: file` with `format: json` or `cbor_zstd`: the S3 key layout under a directory."""

    type_name = "file"
    # Per-trace documents: more puts in flight than the store has threads, as a put waits for
    # its directory's sync after its thread is free, so the threads sync the next files
    # meanwhile. Under ingest on one core (bench/peers.py genai-json) 64 wrote 2.3x the traces
    # 16 did; 128 no more. Not for batches (Aperture, OTLP JSON): each holds its requests.
    per_trace_max_in_flight = 64

    def __init__(self, name: str, settings: Section) -> None:
        super().__init__(name, settings, LocalStore(settings.str("dir")))
        settings.done()


def _digest(data: bytes) -> tuple[int, int]:
    return len(data), _native.crc32(data, 0)


class TakenNames:
    """Object names this process has seen taken, with the length and CRC-32 of the bytes there.

    Under sustained load an object a second is not enough: the objects of a busy second take
    the seconds after it, and every later object would read each of those back to learn it
    holds other bytes (a read per object already written, and `MAX_NAME_READS` reached in
    minutes). A name known here with another digest surely holds other bytes and is passed
    unread; one with the same digest is still compared byte for byte (a replay finds its
    earlier write). The newest `LIMIT` names are kept (a few hours of one object a second)."""

    LIMIT = 8192

    def __init__(self) -> None:
        self._digests: dict[str, tuple[int, int]] = {}

    def holds_other(self, key: str, digest: tuple[int, int]) -> bool:
        known = self._digests.get(key)
        return known is not None and known != digest

    def add(self, key: str, digest: tuple[int, int]) -> None:
        self._digests.pop(key, None)
        self._digests[key] = digest
        if len(self._digests) > self.LIMIT:
            del self._digests[next(iter(self._digests))]


def _key_name(trace: OpenTrace) -> str | None:
    """The API key name a trace's objects are written under. With auth on, every item carries the
    authenticated key's name and the assembler never mixes keys in a trace: that name alone. Only
    without one (auth off) is the client-supplied attribute used (`paths.render` sanitises it)."""
    if trace.api_key_name is not None:
        return trace.api_key_name
    if not any(_KEY_NAME_ATTRIBUTE in wire for wire, *_ in trace.parts):
        return None
    for ref in trace.spans():
        for kv in ref.span.attributes:
            if kv.key == "trace.metadata.openrouter.api_key_name" and kv.value.string_value:
                return kv.value.string_value
    return None


_KEY_NAME_ATTRIBUTE = b"trace.metadata.openrouter.api_key_name"   # a span without these bytes has no such attribute
