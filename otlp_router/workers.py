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
from typing import Any, Callable

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from otlp_router import logs, telemetry
from otlp_router.admin import guard, merge_problems, render_page
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


# Gauges whose sum over workers means nothing: the oldest pending item is the
# oldest of any worker's; build info is 1 in every process.
MAX_GAUGES = frozenset({"otlp_router_spool_oldest_pending_age_seconds", "otlp_router_build_info"})
# prometheus_client's ProcessCollector: one series per process (labelled with
# its worker and pid), since a sum of start times or fd limits is meaningless.
PER_PROCESS_PREFIX = "process_"


def merge_metrics(texts: list[str], sources: list[dict[str, str]] | None = None) -> str:
    """Prometheus text of several processes as one: counters, histograms and
    most gauges added up, `MAX_GAUGES` as their maximum, and process metrics
    kept apart, each sample labelled with `sources[i]` of the text it came from."""
    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for i, text in enumerate(texts):
        source = sorted((sources[i] if sources else {}).items())
        for family in text_string_to_metric_families(text):
            _, _, samples = families.setdefault(family.name, (family.type, family.documentation, {}))
            per_process = family.name.startswith(PER_PROCESS_PREFIX)
            for s in family.samples:
                labels = sorted({**s.labels, **dict(source)}.items()) if per_process else sorted(s.labels.items())
                key = (s.name, tuple(labels))
                if family.name in MAX_GAUGES:
                    samples[key] = max(samples.get(key, s.value), s.value)
                else:
                    samples[key] = samples.get(key, 0.0) + s.value
    lines = []
    for name, (kind, doc, samples) in families.items():
        if not samples:
            continue
        exposed = f"{name}_total" if kind == "counter" else name   # as prometheus_client writes it
        lines.append(f"# HELP {exposed} {doc}")
        lines.append(f"# TYPE {exposed} {kind}")
        for (sample, labels), value in samples.items():
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{sample}{{{rendered}}} {value!r}" if rendered else f"{sample} {value!r}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _sum_rows(rows: Any, key: Callable[[dict[str, Any]], Any], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    merged: dict[Any, dict[str, Any]] = {}
    for row in rows:
        m = merged.get(key(row))
        if m is None:
            merged[key(row)] = {**row}
        else:
            for f in fields:
                m[f] += row[f]
    return list(merged.values())


def merge_status(statuses: list[dict[str, Any]], workers: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' /api/status documents as one; `workers` are the supervisor's
    rows (index, pid, alive), filled in here from each worker's own status."""
    merged: dict[str, Any] = {"version": statuses[0]["version"] if statuses else "", "pid": os.getpid(),
                              "ready": bool(statuses) and len(statuses) == len(workers)
                              and all(s["ready"] for s in statuses),
                              "uptime_seconds": max((s["uptime_seconds"] for s in statuses), default=0),
                              "generated_at": time.time(),
                              "throughput_window": statuses[0].get("throughput_window", 10.0) if statuses else 10.0}
    for key in ("accepted", "refused", "refused_items", "unrouted", "throughput"):
        merged[key] = sum(s.get(key, 0) for s in statuses)
    merged["throughput"] = round(merged["throughput"], 1)
    by_signal: dict[str, float] = {}
    for s in statuses:
        for kind, n in (s.get("accepted_by_signal") or {}).items():
            by_signal[kind] = by_signal.get(kind, 0) + n
    merged["accepted_by_signal"] = by_signal
    destinations: dict[str, dict[str, Any]] = {}
    for s in statuses:
        for d in s["destinations"]:
            m = destinations.setdefault(d["name"], {**d, "spool_items": 0, "spool_bytes": 0, "sent": 0, "dropped": 0,
                                                    "dead_lettered": 0, "dead_letter_reasons": {}})
            for key in ("spool_items", "spool_bytes", "sent", "dropped", "dead_lettered"):
                m[key] += d[key]
            for reason, n in (d.get("dead_letter_reasons") or {}).items():
                m["dead_letter_reasons"][reason] = m["dead_letter_reasons"].get(reason, 0) + n
            m["last_dead_letter"] = d["last_dead_letter"] or m["last_dead_letter"]
            if d["state"] != "ok":
                m["state"], m["last_error"] = d["state"], d["last_error"]
    merged["destinations"] = list(destinations.values())
    merged["routes"] = _sum_rows((r for s in statuses for r in s["routes"]), lambda r: r["name"], ("routed",))
    merged["refused_requests"] = sorted(
        _sum_rows((r for s in statuses for r in s.get("refused_requests") or []),
                  lambda r: (r["status"], r["transport"], r["signal"]), ("count",)),
        key=lambda r: (-r["count"], r["status"]))
    # Every worker listens on the same ports: the first one's list, listening only if all are.
    receivers = [dict(r) for r in (statuses[0].get("receivers") or [])] if statuses else []
    for r in receivers:
        r["bound"] = all(any(o["transport"] == r["transport"] and o["bound"] for o in s.get("receivers") or [])
                         for s in statuses)
    merged["receivers"] = receivers
    # A refused reload is logged by every worker: shown once, with the workers it came from.
    merged["problems"] = merge_problems(
        {**p, "workers": [s.get("worker", i)]} for i, s in enumerate(statuses) for p in s["problems"])
    reloads = [s["last_reload"] for s in statuses if s.get("last_reload")]
    merged["last_reload"] = max(reloads, key=lambda r: r["time"]) if reloads else None
    by_pid = {s["pid"]: s for s in statuses}
    rows = []
    for w in workers:
        s = by_pid.get(w["pid"])
        own = s["workers"][0] if s and s.get("workers") else {}
        rows.append({**w, "ready": bool(s and s["ready"]), "reachable": s is not None,
                     "accepted": s["accepted"] if s else 0, "throughput": s["throughput"] if s else 0,
                     "spool_items": own.get("spool_items", 0), "uptime_seconds": s["uptime_seconds"] if s else 0})
    merged["workers"] = rows
    return merged


def merge_readiness(answers: list[dict[str, Any] | None], workers: list[dict[str, Any]], stopping: bool
                    ) -> dict[str, Any]:
    """The workers' /readyz as one, with the receiver, spool and destination
    details a single router gives: a receiver is bound and a spool writable only
    if so in every worker; a destination is ok only if ok in every worker."""
    given = [a for a in answers if a is not None]
    receivers: dict[str, bool] = {}
    spools: dict[str, bool] = {}
    destinations: dict[str, dict[str, Any]] = {}
    for a in given:
        for name, bound in (a.get("receivers") or {}).items():
            receivers[name] = receivers.get(name, True) and bound
        for name, writable in (a.get("spools_writable") or {}).items():
            spools[name] = spools.get(name, True) and writable
        for name, d in (a.get("destinations") or {}).items():
            m = destinations.setdefault(name, {"ok": True, "last_error": None})
            if not d["ok"]:
                m["ok"], m["last_error"] = False, d["last_error"]
    rows = [{**w, "ready": bool(a and a.get("ready"))} for w, a in zip(workers, answers)]
    ready = bool(workers) and len(given) == len(workers) and all(r["ready"] and r["alive"] for r in rows) \
        and not stopping
    return {"ready": ready, "receivers": receivers, "spools_writable": spools, "destinations": destinations,
            "workers": rows}


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

    async def _ask_workers(self, path: str) -> list[httpx.Response | None]:
        """GET `path` from every worker's socket; None for a worker that did not answer."""
        async def get(worker: Worker) -> httpx.Response | None:
            transport = httpx.AsyncHTTPTransport(uds=str(socket_path(self.config.spool.dir, worker.role.index)))
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://worker", timeout=5,
                                             headers=internal_headers(self.internal_token)) as client:
                    return await client.get(path)
            except httpx.HTTPError:
                return None
        return list(await asyncio.gather(*(get(w) for w in self.workers)))

    async def _from_workers(self, path: str) -> list[httpx.Response]:
        return [r for r in await self._ask_workers(path) if r is not None]

    def _worker_list(self) -> list[dict[str, Any]]:
        return [{"index": w.role.index, "pid": w.proc.pid if w.proc else None,
                 "alive": w.proc is not None and w.proc.returncode is None} for w in self.workers]

    async def metrics(self, request: Request) -> Response:
        answers = await self._ask_workers("/metrics")
        texts, sources = [], []
        for worker, answer in zip(self._worker_list(), answers):
            if answer is not None and answer.status_code == 200:
                texts.append(answer.text)
                sources.append({"worker": str(worker["index"]), "pid": str(worker["pid"])})
        # The supervisor's own process metrics and build info beside its workers'.
        texts.append(generate_latest(telemetry.REGISTRY).decode())
        sources.append({"worker": "supervisor", "pid": str(os.getpid())})
        return Response(merge_metrics(texts, sources), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def _status(self) -> dict[str, Any]:
        statuses = []
        for worker, answer in zip(self.workers, await self._ask_workers("/api/status")):
            if answer is not None and answer.status_code == 200:
                statuses.append({**answer.json(), "worker": worker.role.index})
        merged = merge_status(statuses, self._worker_list())
        merged["config_file"] = os.path.abspath(self.config.file)
        merged["uptime_seconds"] = round(time.time() - self.started, 1)
        return merged

    async def status(self, request: Request) -> Response:
        return JSONResponse(await self._status())

    async def readyz(self, request: Request) -> Response:
        answers = []
        for answer in await self._ask_workers("/readyz"):
            try:
                answers.append(answer.json() if answer is not None and answer.status_code in (200, 503) else None)
            except ValueError:
                answers.append(None)
        body = merge_readiness(answers, self._worker_list(), self.stopping)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "pid": os.getpid(), "workers": self._worker_list(),
                             "uptime_seconds": round(time.time() - self.started, 1)})

    async def page(self, request: Request) -> Response:
        return HTMLResponse(render_page(await self._status()), headers={"Cache-Control": "no-store"})

    async def _until_sockets_answer(self, deadline: float) -> None:
        """Wait until every worker's internal socket answers. A worker prints its
        ready line once its own sockets are up; checking here as well means the
        supervisor's ready line is printed only when a hand-over to any worker
        can succeed (no 429 "worker N cannot be reached" for the first requests)."""
        pending = list(self.workers)
        while pending:
            answers = await asyncio.gather(*(self._probe(w) for w in pending))
            pending = [w for w, ok in zip(pending, answers) if not ok]
            if pending:
                if time.monotonic() > deadline:
                    raise StartupError("the internal sockets of worker(s) "
                                       f"{', '.join(str(w.role.index) for w in pending)} do not answer")
                await asyncio.sleep(0.05)

    async def _probe(self, worker: Worker) -> bool:
        transport = httpx.AsyncHTTPTransport(uds=str(socket_path(self.config.spool.dir, worker.role.index)))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://worker", timeout=2,
                                         headers=internal_headers(self.internal_token)) as client:
                return (await client.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

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
        deadline = time.monotonic() + 60
        try:
            await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in self.workers)), 60)
            await self._until_sockets_answer(deadline)
        except asyncio.TimeoutError:
            await self.stop()
            raise StartupError("the workers did not all start within 60 s (see their messages above)") from None
        except StartupError:
            await self.stop()
            raise
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
        # The workers are gone: their sockets too, also those of a worker that was killed.
        for worker in self.workers:
            socket_path(self.config.spool.dir, worker.role.index).unlink(missing_ok=True)
        (self.config.spool.dir / "otlp-router.pid").unlink(missing_ok=True)


async def supervise(config: RouterConfig, argv: list[str]) -> None:
    supervisor = Supervisor(config, argv)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Handlers before the ready line (SIGHUP's default action ends the process);
    # a reload asked for while the workers start is passed on once they run.
    hup_pending = False

    def on_hup() -> None:
        nonlocal hup_pending
        if started:
            supervisor.signal_workers(signal.SIGHUP)
        else:
            hup_pending = True
    started = False
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await supervisor.start()
    started = True
    if hup_pending:
        supervisor.signal_workers(signal.SIGHUP)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await supervisor.stop()
