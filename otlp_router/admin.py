"""The admin endpoint, apart from the OTLP ports: /metrics (Prometheus),
/healthz, /readyz, /api/status, and a live status page at /."""

from __future__ import annotations

import collections
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from otlp_router import telemetry
from otlp_router.receivers.listen import AsgiServer, ServerTls
from otlp_router.settings import Section, parse_endpoint

if TYPE_CHECKING:
    from otlp_router.server import Router

STATUS_PAGE = Path(__file__).with_name("status.html")


@dataclass(frozen=True)
class AdminSettings:
    host: str = "127.0.0.1"
    port: int = 8888
    tls: ServerTls | None = None

    @classmethod
    def read(cls, section: Section) -> "AdminSettings":
        host, port = parse_endpoint(section, "endpoint", f"{cls.host}:{cls.port}")
        tls = ServerTls.read(section.section("tls"))
        section.done()
        return cls(host, port, tls)


class RecentProblems(logging.Handler):
    """The last warnings and errors, for the status page."""

    def __init__(self, size: int = 50) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append({"time": record.created, "level": record.levelname, "logger": record.name,
                                 "message": record.getMessage()})
        except Exception:  # a broken log call must not break the router
            pass


def _counter_total(counter: Any, **match: str) -> float:
    total = 0.0
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in match.items()):
                total += sample.value
    return total


class Admin:
    def __init__(self, settings: AdminSettings, router: "Router", uds: Path | None = None,
                 extra_routes: list[Route] | None = None) -> None:
        self.settings = settings
        self.router = router
        self.problems = RecentProblems()
        self.started = time.time()
        self._rate: collections.deque[tuple[float, float]] = collections.deque(maxlen=30)
        self.app = Starlette(routes=[
            Route("/", self.page), Route("/metrics", self.metrics), Route("/healthz", self.healthz),
            Route("/readyz", self.readyz), Route("/api/status", self.status), *(extra_routes or [])])
        self.server = AsgiServer(self.app, "admin endpoint", settings.host, settings.port, http="h11",
                                 tls=settings.tls, uds=uds)

    async def page(self, request: Request) -> Response:
        return HTMLResponse(STATUS_PAGE.read_text(encoding="utf-8"))

    async def metrics(self, request: Request) -> Response:
        self.router.update_gauges()
        return Response(generate_latest(telemetry.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "pid": os.getpid(), "uptime_seconds": round(time.time() - self.started, 1)})

    def _readiness(self) -> dict[str, Any]:
        router = self.router
        receivers = {name: receiver is not None and receiver.bound
                     for name, receiver in (("http", router.http), ("grpc", router.grpc)) if receiver is not None}
        spools = {}
        for name, delivery in router.deliveries.items():
            directory = getattr(delivery.spool, "dir", None)
            spools[name] = directory is None or os.access(directory, os.W_OK)
        destinations = {name: {"ok": d.last_error is None, "last_error": d.last_error}
                        for name, d in router.deliveries.items()}
        ready = all(receivers.values()) and all(spools.values()) and not router.draining
        return {"ready": ready, "receivers": receivers, "spools_writable": spools, "destinations": destinations}

    async def readyz(self, request: Request) -> Response:
        body = self._readiness()
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    def _throughput(self) -> float:
        """Accepted items per second over the last polls."""
        now = time.monotonic()
        total = _counter_total(telemetry.receiver_accepted)
        self._rate.append((now, total))
        first_t, first_v = self._rate[0]
        return 0.0 if now - first_t < 0.5 else (total - first_v) / (now - first_t)

    async def status(self, request: Request) -> Response:
        router = self.router
        router.update_gauges()
        destinations = []
        for name, d in router.deliveries.items():
            destinations.append({
                "name": name, "type": d.destination.type_name,
                "state": "ok" if d.last_error is None else "failing", "last_error": d.last_error,
                "spool_items": d.spool.pending_items, "spool_bytes": d.spool.pending_bytes,
                "durable": d.spool.durable,
                "sent": _counter_total(telemetry.exporter_sent, destination=name),
                "dropped": _counter_total(telemetry.exporter_dropped, destination=name),
                "dead_lettered": d.dead_lettered, "last_dead_letter": d.last_dead_letter,
            })
        routes = [{"name": r.name, "destinations": list(r.destinations), "stop": r.stop, "default": r.default,
                   "match": r.match is not None, "routed": _counter_total(telemetry.routed, route=r.name)}
                  for r in [*router.config.routing.routes, *([router.config.routing.default]
                                                                if router.config.routing.default else [])]]
        return JSONResponse({
            "version": telemetry.VERSION, "pid": os.getpid(), "uptime_seconds": round(time.time() - self.started, 1),
            "accepted": _counter_total(telemetry.receiver_accepted),
            "refused": _counter_total(telemetry.receiver_refused),
            "unrouted": _counter_total(telemetry.unrouted),
            "throughput": round(self._throughput(), 1),
            "routes": routes, "destinations": destinations,
            "problems": list(self.problems.records)[::-1],
            "ready": self._readiness()["ready"],
        })

    async def start(self) -> None:
        logging.getLogger("otlp_router").addHandler(self.problems)
        await self.server.start()

    async def stop(self) -> None:
        logging.getLogger("otlp_router").removeHandler(self.problems)
        await self.server.stop()
