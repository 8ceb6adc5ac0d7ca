"""`loadbalance:` on an otlp_http / otlp_grpc destination: spread items over
several endpoints with a consistent-hash ring, so every span of a trace (or
every item of a service) reaches the same next-tier router, as the
Collector's loadbalancing exporter does.

    tier2: {type: otlp_grpc, insecure: true,
            loadbalance: {by: trace_id, endpoints: ["10.0.0.1:4317", "10.0.0.2:4317"]}}

Adding or removing an endpoint moves only about 1/N of the keys. As in the
Collector, each endpoint has its own queue and its own retries: the
destination's delivery only splits what it reads into those queues, so one
endpoint's outage neither resends nor holds up the others' parts."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
from typing import Callable

from otlp_router.destinations.assembly import Group
from otlp_router.destinations.base import COMMON_KEYS, CheckResult, Destination, ExportError
from otlp_router.model.batch import Batch, partition
from otlp_router.settings import Section
from otlp_router.spool.base import Spool, SpoolFull

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


class LoadBalancedDestination(Destination):
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
        self.ring = HashRing(self.endpoints)
        # Each endpoint's queue (a spool of its own), attached by the delivery engine.
        self.queues: list[Spool] = []

    def split(self, batch: Batch) -> dict[int, Batch]:
        """A batch's items by endpoint (an index into `endpoints`)."""
        # Metrics have no trace, nor do some logs: those go by service.
        return partition(batch, "service" if self.by == "service" else "trace_id_or_service", self.ring.owner)

    async def export(self, group: Group) -> None:
        """Hand each endpoint its part: into that endpoint's own queue, which its
        own delivery drains. All parts or none, so a retry never repeats one."""
        if len(self.queues) != len(self.children):
            raise ExportError("endpoint queues are not attached", permanent=False)
        per_child: dict[int, list[Batch]] = {}
        for batch in group.batches():
            for child, part in self.split(batch).items():
                per_child.setdefault(child, []).append(part)
        try:
            for child, parts in per_child.items():
                self.queues[child].check_room(sum(p.size for p in parts))
        except SpoolFull as e:
            raise ExportError(f"endpoint {self.endpoints[child]}: {e.reason}", retry_after=e.retry_after) from None
        for child, parts in per_child.items():
            for part in parts:
                try:
                    await self.queues[child].append(part)
                except SpoolFull as e:  # the disk failed: parts already queued are repeated by the retry
                    raise ExportError(f"endpoint {self.endpoints[child]}: {e.reason}",
                                      retry_after=e.retry_after) from None

    async def check(self) -> CheckResult:
        results = await asyncio.gather(*(c.check() for c in self.children))
        return CheckResult(all(r.ok for r in results),
                           "; ".join(f"{e}: {'ok' if r.ok else 'FAILED'} ({r.detail})"
                                     for e, r in zip(self.endpoints, results)))

