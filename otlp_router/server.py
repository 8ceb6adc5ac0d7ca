"""The router's lifecycle: start destinations, then receivers; on SIGTERM/SIGINT
stop receiving, finish the requests in flight, drain the spools, stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from otlp_router import telemetry
from otlp_router.admin import Admin
from otlp_router.config import RouterConfig
from otlp_router.destinations.delivery import Delivery
from otlp_router.model.signals import SIGNALS
from otlp_router.pipeline import Pipeline
from otlp_router.receivers.grpc import GrpcReceiver
from otlp_router.receivers.http import HttpReceiver
from otlp_router.receivers.intake import Intake
from otlp_router.routing.openrouter import OpenRouterMapping
from otlp_router.receivers.listen import StartupError
from otlp_router.spool import DiskSpool, MemorySpool, Spool
from otlp_router.spool.deadletter import DeadLetters

log = logging.getLogger("otlp_router")


class Router:
    def __init__(self, config: RouterConfig) -> None:
        self.config = config
        self.deliveries = {
            name: Delivery(d.destination, self._spool(name), d.retry, d.batch,
                           DeadLetters(config.spool.dir / name / "dead", config.spool.dead_letter_ttl)
                           if config.spool.durable else None)
            for name, d in config.destinations.items()
        }
        self.pipeline = Pipeline(config.routing, self.deliveries,
                                 {name: d.shaping for name, d in config.destinations.items()},
                                 OpenRouterMapping() if config.openrouter_mapping else None)
        signals = list(SIGNALS.values())
        self.intake = Intake(self.pipeline, config.auth, config.limits)
        self.http = HttpReceiver(config.http, self.intake, signals) if config.http else None
        self.grpc = GrpcReceiver(config.grpc, self.intake, signals) if config.grpc else None
        self.admin = Admin(config.admin, self) if config.admin else None
        self.draining = False

    def update_gauges(self) -> None:
        for name, delivery in self.deliveries.items():
            telemetry.spool_bytes.labels(name).set(delivery.spool.pending_bytes)
            telemetry.spool_items.labels(name).set(delivery.spool.pending_items)

    def _spool(self, name: str) -> Spool:
        s = self.config.spool
        if s.durable:
            return DiskSpool(name, s.dir / name, s.max_bytes, s.fsync, s.segment_bytes)
        return MemorySpool(name, s.max_bytes)

    async def start(self) -> None:
        for delivery in self.deliveries.values():
            if isinstance(delivery.spool, DiskSpool):
                try:
                    delivery.spool.open()
                except (RuntimeError, OSError, ValueError) as e:
                    raise StartupError(f"spool of destination {delivery.name}: {e}") from None
            if delivery.dead_letters is not None:
                delivery.dead_letters.expire()
        for delivery in self.deliveries.values():
            await delivery.start()
        try:
            if self.admin:
                await self.admin.start()
            if self.http:
                await self.http.start()
            if self.grpc:
                await self.grpc.start()
        except Exception:
            await self.stop()
            raise
        parts = []
        if self.http:
            parts.append("http=%s:%d" % self.http.address)
        if self.grpc:
            parts.append("grpc=%s:%d" % self.grpc.address)
        if self.admin:
            parts.append("admin=%s:%d" % self.admin.server.address)
        # One stable line that scripts and tests wait for.
        print(f"otlp-router ready {' '.join(parts)}", file=sys.stderr, flush=True)

    async def stop(self) -> None:
        timeout = self.config.shutdown_timeout
        self.draining = True
        self.intake.draining = True
        if self.grpc:
            await self.grpc.stop(grace=timeout / 2)
        if self.http:
            await self.http.stop()
        await asyncio.gather(*(d.stop(timeout) for d in self.deliveries.values()))
        if self.admin:
            await self.admin.stop()


async def serve(config: RouterConfig) -> None:
    """Run until SIGTERM or SIGINT."""
    router = Router(config)
    await router.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down: draining receivers and destinations")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await router.stop()


def run(config: RouterConfig) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows); asyncio's loop works too
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
