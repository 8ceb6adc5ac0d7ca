"""`loadbalance:` on an otlp_http / otlp_grpc destination: spread items over
several endpoints with a consistent-hash ring, so every span of a trace (or
every item of a service) reaches the same next-tier router, as the
Collector's loadbalancing exporter does.

    tier2: {type: otlp_grpc, insecure: true,
            loadbalance: {by: trace_id, endpoints: ["10.0.0.1:4317", "10.0.0.2:4317"]}}

Adding or removing an endpoint moves only about 1/N of the keys."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
from typing import Any, Callable

from otlp_router.destinations.base import COMMON_KEYS, CheckResult, Destination, ExportError, Exporter
from otlp_router.model.batch import Batch, partition
from otlp_router.settings import Section

_VIRTUAL_NODES = 128


def _hash(key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


class HashRing:
    def __init__(self, endpoints: list[str], virtual_nodes: int = _VIRTUAL_NODES) -> None:
        points = sorted((_hash(f"{endpoint}#{i}".encode()), n)
                        for n, endpoint in enumerate(endpoints) for i in range(virtual_nodes))
        self._hashes = [h for h, _ in points]
        self._owners = [n for _, n in points]

    def owner(self, key: bytes) -> int:
        i = bisect.bisect(self._hashes, _hash(key)) % len(self._hashes)
        return self._owners[i]


def _service_of(resource: Any) -> bytes:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value.encode()
    return b""


class LoadBalancedDestination(Exporter):
    BY = ("trace_id", "service")

    def __init__(self, name: str, settings: Section, make: Callable[[str, Section], Destination]) -> None:
        super().__init__(name, settings)
        self.type_name = settings.str("type")
        lb = settings.section("loadbalance", required=True)
        self.by = lb.str("by", "trace_id", choices=self.BY)
        endpoints = lb.list("endpoints")
        if not endpoints or not all(isinstance(e, str) for e in endpoints):
            lb.fail("expected a list of endpoints", "endpoints")
        lb.done()
        if settings.has("endpoint"):
            settings.fail("give the endpoints under loadbalance.endpoints instead", "endpoint")
        base = {k: v for k, v in settings.data.items() if k not in COMMON_KEYS and k != "loadbalance"}
        self.endpoints = list(dict.fromkeys(endpoints))
        self.children = [make(f"{name}[{e}]", Section({**base, "endpoint": e}, settings.file, settings.path))
                         for e in self.endpoints]
        settings.mark_read(*base)
        self.accepts = self.children[0].accepts
        self.default_flush_interval = self.children[0].default_flush_interval
        self.default_max_in_flight = self.children[0].default_max_in_flight
        self.ring = HashRing(self.endpoints)

    def _key(self, resource: Any, item: Any) -> bytes:
        # Metrics have no trace, nor do some logs: those go by service.
        if self.by == "service":
            return _service_of(resource)
        return getattr(item, "trace_id", b"") or _service_of(resource)

    def _split(self, batch: Batch) -> dict[int, Batch]:
        return partition(batch, self._key, self.ring.owner)

    async def start(self) -> None:
        await asyncio.gather(*(c.start() for c in self.children))

    async def export(self, batches: list[Batch]) -> None:
        per_child: dict[int, list[Batch]] = {}
        for batch in batches:
            for child, part in self._split(batch).items():
                per_child.setdefault(child, []).append(part)
        results = await asyncio.gather(*(self.children[c].export(parts) for c, parts in per_child.items()),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, ExportError):
                raise error
        if errors:
            # Retrying resends to the endpoints that took their part (at-least-once);
            # the retry waits as long as the slowest hint asks.
            permanent = all(e.permanent for e in errors)
            hints = [e.retry_after for e in errors if e.retry_after is not None]
            raise ExportError("; ".join(str(e) for e in errors), permanent=permanent,
                              retry_after=max(hints) if hints else None)

    async def check(self) -> CheckResult:
        results = await asyncio.gather(*(c.check() for c in self.children))
        return CheckResult(all(r.ok for r in results),
                           "; ".join(f"{e}: {'ok' if r.ok else 'FAILED'} ({r.detail})"
                                     for e, r in zip(self.endpoints, results)))

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.children))
