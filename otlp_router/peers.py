"""Workers of one router and the traces they share.

With `workers: N`, the kernel spreads connections over N processes, so the
spans of one trace can arrive at different workers. A destination that
gathers whole traces (per-trace JSON) must see all of them in one place: each
trace has an owner worker, chosen by trace id on a consistent-hash ring, and
a worker hands the spans it does not own to their owner over a local socket
before it answers the client. The owner acknowledges once they are in its
spool, so durability is the same as for spans received directly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from otlp_router.destinations.loadbalance import HashRing
from otlp_router.model.batch import Batch, partition
from otlp_router.model.signals import SIGNALS
from otlp_router.spool.base import SpoolFull


def socket_path(spool_dir: Path, index: int) -> Path:
    return spool_dir / f"worker-{index}.sock"


class Peers:
    """This worker's view of the others, for the destinations that need whole traces."""

    def __init__(self, index: int, count: int, spool_dir: Path, destinations: set[str]) -> None:
        self.index, self.count = index, count
        self.destinations = destinations
        self.ring = HashRing([f"worker-{k}" for k in range(count)])
        self._clients = {k: httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(socket_path(spool_dir, k))),
                                              base_url="http://worker", timeout=30)
                         for k in range(count) if k != index}

    def split(self, batch: Batch) -> dict[int, Batch]:
        """The batch's spans by owner worker."""
        return partition(batch, lambda resource, span: span.trace_id, self.ring.owner)

    async def hand_over(self, owner: int, destination: str, batch: Batch) -> None:
        """Append a batch to the owner's spool of `destination`; raises SpoolFull when it cannot take it."""
        headers = {"x-signal": batch.signal.name, "x-items": str(batch.items), "x-received": repr(batch.received)}
        if batch.api_key_name:
            headers["x-api-key-name"] = batch.api_key_name
        try:
            response = await self._clients[owner].post(f"/internal/append/{destination}", content=batch.wire,
                                                       headers=headers)
        except httpx.HTTPError as e:
            raise SpoolFull(destination, f"worker {owner} cannot be reached: {e or type(e).__name__}", 1.0) from None
        if response.status_code != 200:
            raise SpoolFull(destination, f"worker {owner}: {response.text}",
                            float(response.headers.get("retry-after", "1")))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def internal_routes(deliveries: Any) -> list[Route]:
    """The owner's side: take a handed-over batch into a destination's spool.
    `deliveries` is read at each call, so a reload's swap is seen."""

    async def append(request: Request) -> Response:
        name = request.path_params["destination"]
        delivery = deliveries().get(name)
        if delivery is None:
            return Response(f"no destination {name}", status_code=404)
        signal = SIGNALS[request.headers["x-signal"]]
        batch = Batch(signal, None, int(request.headers["x-items"]), await request.body(),
                      api_key_name=request.headers.get("x-api-key-name"),
                      received=float(request.headers["x-received"]))
        try:
            delivery.spool.check_room(batch.size)
            await delivery.spool.append(batch)
        except SpoolFull as e:
            return Response(str(e), status_code=429, headers={"retry-after": str(max(1, math.ceil(e.retry_after)))})
        return Response(b"", status_code=200)

    return [Route("/internal/append/{destination}", append, methods=["POST"])]
