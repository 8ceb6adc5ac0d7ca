"""`workers: N`: a supervisor process and N router processes sharing the ports.

The supervisor reserves the listening ports (SO_REUSEPORT) so every worker
binds the same ones and the kernel spreads connections over them; each worker
has its own spool partition (`spool.dir/worker-<i>`). The supervisor serves
the admin endpoint, adding up the workers' metrics and status read over their
local sockets; it passes SIGHUP on, restarts a worker that dies, and on
SIGTERM stops them all, each draining as a single router does.

The admin token (`admin.auth`) guards the supervisor's admin endpoint as it
does a single router's. The workers' sockets take only this start's internal
token, drawn here and passed to the workers in their environment.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from otlp_router import logs
from otlp_router.admin import STATUS_PAGE, guard
from otlp_router.config import RouterConfig
from otlp_router.peers import INTERNAL_TOKEN_ENV, internal_headers, socket_path
from otlp_router.receivers.listen import AsgiServer, StartupError
from otlp_router.server import WorkerRole
from otlp_router.spool.disk import pending_records

log = logging.getLogger("otlp_router.workers")


def _die_with_parent() -> None:
    """In the child: get SIGTERM (and drain) if the supervisor dies, even by SIGKILL (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def reserve_port(what: str, host: str, port: int) -> socket.socket:
    """Bind (without listening) so the port is ours to share among the workers."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise StartupError(f"{what}: {host}:{port} is already in use by another process"
                           if e.errno == 98 else f"{what}: cannot bind {host}:{port}: {e.strerror}") from None
    return sock


def orphaned_partitions(spool_dir: Path, workers: int) -> list[Path]:
    """Spool partitions of workers that no longer exist and still hold data."""
    out = []
    for path in sorted(spool_dir.glob("worker-*")):
        if path.is_dir() and path.name.split("-")[1].isdigit() and int(path.name.split("-")[1]) >= workers:
            if any(pending_records(d) for d in path.iterdir() if d.is_dir()):
                out.append(path)
    return out


def merge_metrics(texts: list[str]) -> str:
    """Prometheus text of several processes, samples with the same name and labels added up."""
    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            _, _, samples = families.setdefault(family.name, (family.type, family.documentation, {}))
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                samples[key] = samples.get(key, 0.0) + s.value
    lines = []
    for name, (kind, doc, samples) in families.items():
        lines.append(f"# HELP {name} {doc}")
        lines.append(f"# TYPE {name} {kind}")
        for (sample, labels), value in samples.items():
            rendered = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{sample}{{{rendered}}} {value!r}" if rendered else f"{sample} {value!r}")
    return "\n".join(lines) + "\n"


def merge_status(statuses: list[dict[str, Any]], workers: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"version": statuses[0]["version"] if statuses else "", "pid": os.getpid(),
                              "workers": workers, "ready": bool(statuses) and all(s["ready"] for s in statuses),
                              "uptime_seconds": max((s["uptime_seconds"] for s in statuses), default=0)}
    for key in ("accepted", "refused", "unrouted", "throughput"):
        merged[key] = sum(s[key] for s in statuses)
    destinations: dict[str, dict[str, Any]] = {}
    for s in statuses:
        for d in s["destinations"]:
            m = destinations.setdefault(d["name"], {**d, "spool_items": 0, "spool_bytes": 0, "sent": 0, "dropped": 0,
                                                    "dead_lettered": 0})
            for key in ("spool_items", "spool_bytes", "sent", "dropped", "dead_lettered"):
                m[key] += d[key]
            m["last_dead_letter"] = d["last_dead_letter"] or m["last_dead_letter"]
            if d["state"] != "ok":
                m["state"], m["last_error"] = d["state"], d["last_error"]
    routes: dict[str, dict[str, Any]] = {}
    for s in statuses:
        for r in s["routes"]:
            routes.setdefault(r["name"], {**r, "routed": 0})["routed"] += r["routed"]
    merged["destinations"] = list(destinations.values())
    merged["routes"] = list(routes.values())
    merged["problems"] = sorted((p for s in statuses for p in s["problems"]), key=lambda p: -p["time"])[:50]
    return merged


class Worker:
    def __init__(self, role: WorkerRole) -> None:
        self.role = role
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()


class Supervisor:
    def __init__(self, config: RouterConfig, argv: list[str]) -> None:
        self.config = config
        self.argv = argv            # how to start one router process
        self.workers: list[Worker] = []
        self.stopping = False
        self.started = time.time()
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.admin: AsgiServer | None = None
        # New at every start: a worker's socket answers only its own supervisor and siblings.
        self.internal_token = secrets.token_urlsafe(32)
        logs.hide([self.internal_token])

    # -- admin, added up over the workers ------------------------------------

    async def _from_workers(self, path: str) -> list[httpx.Response]:
        async def get(worker: Worker) -> httpx.Response | None:
            transport = httpx.AsyncHTTPTransport(uds=str(socket_path(self.config.spool.dir, worker.role.index)))
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://worker", timeout=5,
                                             headers=internal_headers(self.internal_token)) as client:
                    return await client.get(path)
            except httpx.HTTPError:
                return None
        results = await asyncio.gather(*(get(w) for w in self.workers))
        return [r for r in results if r is not None]

    def _worker_list(self) -> list[dict[str, Any]]:
        return [{"index": w.role.index, "pid": w.proc.pid if w.proc else None,
                 "alive": w.proc is not None and w.proc.returncode is None} for w in self.workers]

    async def metrics(self, request: Request) -> Response:
        texts = [r.text for r in await self._from_workers("/metrics") if r.status_code == 200]
        return Response(merge_metrics(texts), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def status(self, request: Request) -> Response:
        statuses = [r.json() for r in await self._from_workers("/api/status") if r.status_code == 200]
        workers = self._worker_list()
        accepted = {s["pid"]: s["accepted"] for s in statuses}
        for w in workers:
            w["accepted"] = accepted.get(w["pid"], 0)
        return JSONResponse(merge_status(statuses, workers))

    async def readyz(self, request: Request) -> Response:
        answers = await self._from_workers("/readyz")
        workers = self._worker_list()
        ready = len(answers) == len(self.workers) and all(r.status_code == 200 for r in answers) \
            and all(w["alive"] for w in workers) and not self.stopping
        return JSONResponse({"ready": ready, "workers": workers}, status_code=200 if ready else 503)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "pid": os.getpid(), "workers": self._worker_list(),
                             "uptime_seconds": round(time.time() - self.started, 1)})

    async def page(self, request: Request) -> Response:
        return HTMLResponse(STATUS_PAGE.read_text(encoding="utf-8"))

    # -- processes ----------------------------------------------------------

    async def _spawn(self, worker: Worker) -> None:
        env = {**os.environ, WorkerRole.ENV: worker.role.to_env(), INTERNAL_TOKEN_ENV: self.internal_token}
        worker.ready.clear()
        worker.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=env, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent)
        task = asyncio.create_task(self._watch(worker, worker.proc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, worker: Worker, proc: asyncio.subprocess.Process) -> None:
        """Pass the worker's log lines on; note when it is ready; restart it if it dies."""
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            if line.startswith("otlp-router ready"):
                worker.ready.set()
            else:
                sys.stderr.write(line)
        code = await proc.wait()
        if not self.stopping:
            log.error("worker %d (pid %d) exited with %d; starting it again", worker.role.index, proc.pid, code)
            await asyncio.sleep(1.0)
            if not self.stopping:
                await self._spawn(worker)

    async def start(self) -> None:
        c = self.config
        orphans = orphaned_partitions(c.spool.dir, c.workers)
        if orphans:
            raise StartupError(f"spool partitions {', '.join(str(p) for p in orphans)} hold data of workers that "
                               f"`workers: {c.workers}` would not start; run with more workers until they drain")
        http_port = grpc_port = None
        if c.http:
            self._sockets.append(reserve_port("OTLP/HTTP receiver", c.http.host, c.http.port))
            http_port = self._sockets[-1].getsockname()[1]
        if c.grpc:
            self._sockets.append(reserve_port("OTLP/gRPC receiver", c.grpc.host, c.grpc.port))
            grpc_port = self._sockets[-1].getsockname()[1]
        c.spool.dir.mkdir(parents=True, exist_ok=True)
        self.workers = [Worker(WorkerRole(i, c.workers, http_port, grpc_port)) for i in range(c.workers)]
        for worker in self.workers:
            await self._spawn(worker)
        try:
            await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in self.workers)), 60)
        except asyncio.TimeoutError:
            await self.stop()
            raise StartupError("the workers did not all start within 60 s (see their messages above)") from None
        parts = []
        if http_port:
            parts.append(f"http={c.http.host}:{http_port}")  # type: ignore[union-attr]
        if grpc_port:
            parts.append(f"grpc={c.grpc.host}:{grpc_port}")  # type: ignore[union-attr]
        if c.admin:
            app = Starlette(routes=[Route("/", self.page), Route("/metrics", self.metrics),
                                    Route("/healthz", self.healthz), Route("/readyz", self.readyz),
                                    Route("/api/status", self.status)])
            self.admin = AsgiServer(guard(app, c.admin.auth), "admin endpoint", c.admin.host, c.admin.port,
                                    http="h11", tls=c.admin.tls)
            await self.admin.start()
            parts.append("admin=%s:%d" % self.admin.address)
        (c.spool.dir / "otlp-router.pid").write_text(f"{os.getpid()}\n")
        print(f"otlp-router ready {' '.join(parts)} workers={c.workers}", file=sys.stderr, flush=True)

    def signal_workers(self, sig: int) -> None:
        for worker in self.workers:
            if worker.proc is not None and worker.proc.returncode is None:
                worker.proc.send_signal(sig)

    async def stop(self) -> None:
        self.stopping = True
        self.signal_workers(signal.SIGTERM)
        procs = [w.proc for w in self.workers if w.proc is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), self.config.shutdown_timeout + 10)
        except asyncio.TimeoutError:
            for p in procs:
                if p.returncode is None:
                    p.kill()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.admin is not None:
            await self.admin.stop()
        for sock in self._sockets:
            sock.close()
        (self.config.spool.dir / "otlp-router.pid").unlink(missing_ok=True)


async def supervise(config: RouterConfig, argv: list[str]) -> None:
    supervisor = Supervisor(config, argv)
    await supervisor.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: supervisor.signal_workers(signal.SIGHUP))
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await supervisor.stop()
