"""The router's lifecycle: start destinations, then receivers; on SIGTERM/SIGINT
stop receiving, finish the requests in flight, drain the spools, stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from otlp_router import telemetry
from otlp_router.admin import Admin, AdminSettings
from otlp_router.peers import Peers, internal_routes, socket_path
from otlp_router import config as config_module
from otlp_router.config import DestinationConfig, RouterConfig
from otlp_router.settings import ConfigError
from otlp_router.destinations.base import Destination
from otlp_router.destinations.delivery import Delivery
from otlp_router.model import conventions, prices
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


@dataclass(frozen=True)
class WorkerRole:
    """One of `workers: N` processes (see workers.py): its index, and the ports
    the supervisor reserved for all of them to share."""

    index: int
    count: int
    http_port: int | None
    grpc_port: int | None

    ENV = "OTLP_ROUTER_WORKER"

    def to_env(self) -> str:
        return f"{self.index}/{self.count}/{self.http_port or 0}/{self.grpc_port or 0}"

    @classmethod
    def from_env(cls) -> "WorkerRole | None":
        value = os.environ.get(cls.ENV)
        if not value:
            return None
        index, count, http_port, grpc_port = (int(x) for x in value.split("/"))
        return cls(index, count, http_port or None, grpc_port or None)

    def adapt(self, config: RouterConfig) -> RouterConfig:
        """This worker's share: the shared ports, its own spool partition, no admin port of its own."""
        return replace(
            config,
            http=replace(config.http, port=self.http_port) if config.http else None,
            grpc=replace(config.grpc, port=self.grpc_port) if config.grpc else None,
            spool=replace(config.spool, dir=config.spool.dir / f"worker-{self.index}"),
            admin=None)


class Router:
    def __init__(self, config: RouterConfig, worker: WorkerRole | None = None) -> None:
        self.worker = worker
        self.root_spool_dir = config.spool.dir
        config = worker.adapt(config) if worker else config
        self.config = config
        conventions.install(config.genai or conventions.build())
        if conventions.active().estimate_cost:
            prices.warm()   # the price table loads before the first model call, not during it
        self.deliveries = {name: self._delivery(name, d) for name, d in config.destinations.items()}
        self.peers = None
        if worker is not None and worker.count > 1:
            self.peers = Peers(worker.index, worker.count, self.root_spool_dir,
                               {n for n, d in config.destinations.items() if d.destination.whole_traces})
        self.pipeline = Pipeline(config.routing, self.deliveries,
                                 {name: d.shaping for name, d in config.destinations.items()},
                                 OpenRouterMapping() if config.openrouter_mapping else None, self.peers)
        signals = list(SIGNALS.values())
        self.intake = Intake(self.pipeline, config.auth, config.limits)
        shared = worker is not None
        self.http = HttpReceiver(config.http, self.intake, signals, reuse_port=shared) if config.http else None
        self.grpc = GrpcReceiver(config.grpc, self.intake, signals, reuse_port=shared) if config.grpc else None
        self.admin = Admin(config.admin, self) if config.admin else None
        if worker is not None:
            # The supervisor reads this worker's status and metrics, and other
            # workers hand it the spans of the traces it owns, on a local socket.
            self.admin = Admin(AdminSettings(), self, uds=socket_path(self.root_spool_dir, worker.index),
                               extra_routes=internal_routes(lambda: self.deliveries))
        self.draining = False
        self._reloading = asyncio.Lock()

    def update_gauges(self) -> None:
        for name, delivery in self.deliveries.items():
            telemetry.spool_bytes.labels(name).set(delivery.spool.pending_bytes)
            telemetry.spool_items.labels(name).set(delivery.spool.pending_items)
            oldest = delivery.spool.oldest_pending
            telemetry.spool_oldest_age.labels(name).set(0.0 if oldest is None else max(0.0, time.time() - oldest))

    def _delivery(self, name: str, d: DestinationConfig, directory: Path | None = None) -> Delivery:
        """A destination's delivery, its spool under `directory` (default spool.dir/name)."""
        s = self.config.spool
        directory = directory or s.dir / name
        spool: Spool = DiskSpool(name, directory, s.max_bytes, s.fsync, s.segment_bytes) if s.durable \
            else MemorySpool(name, s.max_bytes)
        # A memory spool loses its queue with the process, but what a destination
        # refuses is still kept: dead letters are always on disk.
        dead = DeadLetters(directory / "dead", s.dead_letter_ttl)

        def endpoint_delivery(endpoint: str, child: Destination) -> Delivery:
            delivery = self._delivery(child.name, replace(d, destination=child),
                                      directory / "endpoints" / re.sub(r"[^A-Za-z0-9._-]", "_", endpoint))
            self._open_spool(delivery)
            return delivery
        return Delivery(d.destination, spool, d.retry, d.batch, dead, endpoint_delivery)

    @staticmethod
    def _open_spool(delivery: Delivery) -> None:
        if isinstance(delivery.spool, DiskSpool):
            try:
                delivery.spool.open()
            except (RuntimeError, OSError, ValueError) as e:
                raise StartupError(f"spool of destination {delivery.name}: {e}") from None
        if delivery.dead_letters is not None:
            delivery.dead_letters.expire()

    async def _start_delivery(self, delivery: Delivery) -> None:
        self._open_spool(delivery)
        await delivery.start()

    async def start(self) -> None:
        for delivery in self.deliveries.values():
            await self._start_delivery(delivery)
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
        self._write_pid()
        parts = []
        if self.http:
            parts.append("http=%s:%d" % self.http.address)
        if self.grpc:
            parts.append("grpc=%s:%d" % self.grpc.address)
        if self.admin and self.worker is None:
            parts.append("admin=%s:%d" % self.admin.server.address)
        # One stable line that scripts and tests wait for.
        print(f"otlp-router ready {' '.join(parts)}", file=sys.stderr, flush=True)

    @property
    def pid_file(self) -> Path:
        return self.config.spool.dir / "otlp-router.pid"

    def _write_pid(self) -> None:
        if self.worker is not None:
            return  # the supervisor's pid is the one `otlp-router reload` signals
        self.config.spool.dir.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{os.getpid()}\n")

    async def reload(self) -> bool:
        """Re-read the config file and swap routes and destinations in place.

        Receivers keep their sockets and connections; a destination whose
        settings did not change keeps running untouched; a changed one gets a
        new destination object on the same spool, so nothing spooled is lost.
        A config that does not load is refused and the running one stays."""
        async with self._reloading:
            try:
                # In a worker thread: reading and parsing a large file must not stall
                # the event loop (receivers, admin). Building the config touches no
                # loop; destinations open their connections in start().
                new = await asyncio.to_thread(config_module.load, self.config.file)
            except ConfigError as e:
                log.error("reload refused, the running config stays: %s", e)
                return False
            if self.worker is not None:
                new = self.worker.adapt(new)
            for part in ("http", "grpc", "admin", "spool", "auth", "limits"):
                if repr(getattr(new, part)) != repr(getattr(self.config, part)):
                    log.warning("reload: %s settings changed; they take effect at the next restart", part)
            old_raw, new_raw = self.config.raw_destinations, new.raw_destinations
            added = [n for n in new_raw if n not in old_raw]
            removed = [n for n in old_raw if n not in new_raw]
            changed = [n for n in new_raw if n in old_raw and new_raw[n] != old_raw[n]]
            started = {}
            for name in added:
                started[name] = self._delivery(name, new.destinations[name])
                await self._start_delivery(started[name])
            for name in changed:
                d = new.destinations[name]
                await self.deliveries[name].replace(d.destination, d.retry, d.batch, new.shutdown_timeout)
            deliveries = {name: started.get(name) or self.deliveries[name] for name in new.destinations}
            # One synchronous swap: every request after it sees the new table.
            self.pipeline.routing = new.routing
            self.pipeline.shaping = {name: d.shaping for name, d in new.destinations.items()}
            self.pipeline.deliveries = deliveries
            self.pipeline.openrouter = OpenRouterMapping() if new.openrouter_mapping else None
            conventions.install(new.genai or conventions.build())
            gone = [self.deliveries[name] for name in removed]
            self.deliveries = deliveries
            self.config = new
            await asyncio.gather(*(d.stop(new.shutdown_timeout) for d in gone))
            log.info("reloaded %s: %d route(s); destinations added %s, changed %s, removed %s, kept %d",
                     new.file, len(new.routing.routes) + bool(new.routing.default), added or "none",
                     changed or "none", removed or "none", len(new_raw) - len(added) - len(changed))
            return True

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
            if self.admin.uds is not None:  # a worker's socket: nothing will listen on it again
                self.admin.uds.unlink(missing_ok=True)
        if self.peers is not None:
            await self.peers.close()
        try:
            if self.pid_file.read_text().strip() == str(os.getpid()):
                self.pid_file.unlink()
        except OSError:
            pass


async def serve(config: RouterConfig) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the config."""
    router = Router(config, WorkerRole.from_env())
    stop = asyncio.Event()
    started = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Handlers before the ready line: a SIGHUP sent as soon as it appears would
    # otherwise find the default action, which ends the process.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reloaded(task: asyncio.Task[bool]) -> None:
        reloads.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("reload failed: %r; the destinations it had not reached yet keep their old settings",
                      task.exception(), exc_info=task.exception())

    async def reload_once_started() -> bool:
        await started.wait()
        return await router.reload()

    def on_hup() -> None:
        task = asyncio.ensure_future(reload_once_started())
        reloads.add(task)
        task.add_done_callback(reloaded)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await router.start()
    except BaseException:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for task in reloads:
            task.cancel()
        raise
    started.set()
    # What start-up made (the config, the conventions and price tables, the imported modules)
    # lives as long as the process: out of the collector's sight, a full collection does not
    # walk it again and again under load.
    gc.collect()
    gc.freeze()
    try:
        await stop.wait()
        log.info("shutting down: draining receivers and destinations")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await asyncio.gather(*reloads, return_exceptions=True)
        await router.stop()


def run(config: RouterConfig, worker_argv: list[str] | None = None) -> None:
    """Serve; with `workers: N` > 1, supervise N router processes started with `worker_argv`."""
    if config.workers > 1 and WorkerRole.from_env() is None:
        from otlp_router.workers import supervise
        main = supervise(config, worker_argv or [])
    else:
        main = serve(config)
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows); asyncio's loop works too
        asyncio.run(main)
    else:
        uvloop.run(main)
