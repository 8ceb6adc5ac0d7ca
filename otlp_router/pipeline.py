"""The middle of the data path: an accepted batch is mapped, routed, shaped per
destination, then appended to the spool of every destination it goes to,
before the client hears back."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from otlp_router import telemetry
from otlp_router.destinations.delivery import Delivery
from otlp_router.model.batch import Batch
from otlp_router.routing.openrouter import OpenRouterMapping
from otlp_router.routing.shaping import Shaping, shape
from otlp_router.routing.table import Route, RoutingTable
from otlp_router.spool.base import Spool, SpoolFull

if TYPE_CHECKING:
    from otlp_router.peers import Peers

__all__ = ["Pipeline", "SpoolFull"]


class Pipeline:
    def __init__(self, routing: RoutingTable, deliveries: dict[str, Delivery],
                 shaping: dict[str, Shaping] | None = None, openrouter: OpenRouterMapping | None = None,
                 peers: Peers | None = None) -> None:
        self.routing = routing
        self.deliveries = deliveries
        self.shaping = shaping or {}
        self.openrouter = openrouter
        self.peers = peers  # other workers, for destinations that need whole traces

    def prepare(self, batch: Batch) -> list[tuple[str, Batch]]:
        """Map, route and shape: what each destination would receive (also `explain`)."""
        if self.openrouter is not None and self.openrouter.wanted(batch):
            if self.openrouter.apply(batch.message, batch.signal):
                batch.modified()
        batch.json_body = None
        routed = self.routing.route(batch)
        uses: dict[int, int] = {}
        for _, b, _ in routed:
            uses[id(b)] = uses.get(id(b), 0) + 1
        out = []
        for dest, b, via in routed:
            shapings = self._shapings(dest, via)
            if shapings:
                b, sampled = shape(b, shapings, shared=uses[id(b)] > 1)
                if sampled:
                    telemetry.sampled_out.labels(dest, b.signal.name).inc(sampled)
            if b.items:
                out.append((dest, b))
        return out

    def _shapings(self, dest: str, via: tuple[Route, ...]) -> list[Shaping]:
        shapings = [r.shaping for r in via if r.shaping is not None]
        own = self.shaping.get(dest)
        if own:
            shapings.append(own)
        return shapings

    async def accept(self, batch: Batch) -> None:
        """Prepare and spool a batch. Raises `SpoolFull` when a destination it goes
        to cannot take it now: before anything is spooled for a local spool; after
        the local appends when another worker refuses its part (the client's
        retry then duplicates those, never loses them)."""
        if not batch.items:
            return
        local: list[tuple[Spool, Batch]] = []
        handovers: list[tuple[int, str, Batch]] = []
        for dest, b in self.prepare(batch):
            if self.peers is not None and dest in self.peers.destinations:
                for owner, part in self.peers.split(b).items():
                    if owner == self.peers.index:
                        local.append((self.deliveries[dest].spool, part))
                    else:
                        handovers.append((owner, dest, part))
            else:
                local.append((self.deliveries[dest].spool, b))
        for spool, b in local:
            spool.check_room(b.size)
        for spool, b in local:
            await spool.append(b)
            b.compact()
        if handovers:
            assert self.peers is not None
            await asyncio.gather(*(self.peers.hand_over(*h) for h in handovers))
