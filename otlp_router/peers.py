"""Workers of one router and the traces they share.

With `workers: N`, the kernel spreads connections over N processes, so the
spans of one trace can arrive at different workers. A destination that
gathers whole traces (per-trace JSON) must see all of them in one place: each
trace has an owner worker, chosen by trace id on a consistent-hash ring, and
a worker hands the spans it does not own to their owner over a local socket
before it answers the client. The owner acknowledges once they are in its
spool, so durability is the same as for spans received directly.

The local sockets (mode 0600) take only requests that carry this start's
internal token (`x-otlp-router-internal`), which the supervisor draws at
random and gives its workers in the environment: another local user, or a
process that found the socket, can neither read the status nor append to a
spool.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import os
import time
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from otlp_router.destinations.loadbalance import HashRing
from otlp_router.model.batch import Batch, partition
from otlp_router.model.signals import SIGNALS
from otlp_router.spool.base import SpoolFull


INTERNAL_TOKEN_ENV = "OTLP_ROUTER_INTERNAL_TOKEN"
INTERNAL_HEADER = "x-otlp-router-internal"
# How long a hand-over waits for an owner whose socket does not accept connections yet.
HAND_OVER_CONNECT_WAIT = 3.0


def socket_path(spool_dir: Path, index: int) -> Path:
    return spool_dir / f"worker-{index}.sock"


def internal_token() -> str | None:
    """This start's token for the workers' sockets (set by the supervisor), if any."""
    return os.environ.get(INTERNAL_TOKEN_ENV) or None


def internal_headers(token: str | None = None) -> dict[str, str]:
    """The header every request to a worker's socket carries."""
    token = token or internal_token()
    return {INTERNAL_HEADER: token} if token else {}


class RequireInternalToken:
    """ASGI middleware for a worker's socket: 403 unless the request carries the
    internal token (constant-time compare); without a token, nothing passes."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            presented = dict(scope["headers"]).get(INTERNAL_HEADER.encode(), b"")
            if self.token is None or not hmac.compare_digest(presented, self.token):
                await Response(b"forbidden\n", status_code=403, media_type="text/plain")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Peers:
    """This worker's view of the others, for the destinations that need whole traces."""

    def __init__(self, index: int, count: int, spool_dir: Path, destinations: set[str]) -> None:
        self.index, self.count = index, count
        self.destinations = destinations
        self.ring = HashRing([f"worker-{k}" for k in range(count)])
        self._clients = {k: httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(socket_path(spool_dir, k))),
                                              base_url="http://worker", timeout=30, headers=internal_headers())
                         for k in range(count) if k != index}

    def split(self, batch: Batch) -> dict[int, Batch]:
        """The batch's spans by owner worker."""
        return partition(batch, "trace_id", self.ring.owner)

    async def hand_over(self, owner: int, destination: str, batch: Batch) -> None:
        """Append a batch to the owner's spool of `destination`; raises SpoolFull when it cannot take it."""
        headers = {"x-signal": batch.signal.name, "x-items": str(batch.items), "x-received": repr(batch.received)}
        if batch.api_key_name:
            headers["x-api-key-name"] = batch.api_key_name
        deadline = time.monotonic() + HAND_OVER_CONNECT_WAIT
        delay = 0.02
        while True:
            try:
                response = await self._clients[owner].post(f"/internal/append/{destination}", content=batch.wire,
                                                           headers=headers)
                break
            except httpx.ConnectError as e:
                # Nothing was sent: the owner is starting (or being restarted by the
                # supervisor). Wait for it briefly rather than answer the client 429.
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SpoolFull(destination, f"worker {owner} cannot be reached: {e or type(e).__name__}",
                                    1.0) from None
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 0.25)
            except httpx.HTTPError as e:
                raise SpoolFull(destination, f"worker {owner} cannot be reached: {e or type(e).__name__}",
                                1.0) from None
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
