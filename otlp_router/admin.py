"""The admin endpoint, apart from the OTLP ports: /metrics (Prometheus),
/healthz, /readyz, /api/status, and a live status page at /.

With `admin.auth`, every path but /healthz needs the admin token: as
`Authorization: Bearer <token>` (curl, Prometheus), or in a browser by opening
the status page once as `/?token=<token>`, which answers with a cookie and a
redirect to `/` (the token leaves the address bar and the history)."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import html
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from otlp_router import logs, telemetry
from otlp_router.model.signals import SIGNALS
from otlp_router.peers import INTERNAL_TOKEN_ENV, RequireInternalToken, internal_token
from otlp_router.receivers.listen import AsgiServer, ServerTls
from otlp_router.settings import Section, parse_endpoint

if TYPE_CHECKING:
    from otlp_router.server import Router

STATUS_PAGE = Path(__file__).with_name("status.html")


MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class AdminAuth:
    """`admin.auth`: the bearer token every admin path but /healthz needs.

    Only the token's SHA-256 is kept: presented tokens are hashed and compared
    in constant time (no timing hint on length or prefix), and the settings'
    repr, which a reload compares, holds no secret."""

    token_sha256: bytes

    @classmethod
    def read(cls, section: Section) -> "AdminAuth":
        if section.has("token") == section.has("token_file"):
            section.fail("expected exactly one of token, token_file")
        if section.has("token"):
            key, token = "token", section.str("token")   # `token` is among config.secrets already
        else:
            key, path = "token_file", section.str("token_file")
            try:
                token = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                section.fail(f"cannot read {path}: {getattr(e, 'strerror', None) or e}", key)
            logs.hide([token])  # read from a file, so not among config.secrets: never log it either
        if len(token) < MIN_TOKEN_LENGTH:
            section.fail(f"the admin token must be at least {MIN_TOKEN_LENGTH} characters", key)
        section.done()
        return cls(hashlib.sha256(token.encode()).digest())

    def allows(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self.token_sha256)

    @property
    def cookie_value(self) -> str:
        """What the status page's cookie holds: derived from the token, not the token
        itself (browsers send cookies to every port of the host); a new token
        invalidates it."""
        return hmac.new(self.token_sha256, b"otlp-router status page", hashlib.sha256).hexdigest()

    def allows_cookie(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.cookie_value.encode())


class RequireAdminToken:
    """ASGI middleware: the admin token on every path but /healthz (liveness
    probes carry no credentials), else 401 with `WWW-Authenticate: Bearer`."""

    def __init__(self, app: ASGIApp, auth: AdminAuth) -> None:
        self.app, self.auth = app, auth

    def _cookie_name(self, scope: Scope) -> str:
        # Cookies are not kept apart by port: one name per admin port, so two
        # routers on one host do not overwrite each other's.
        server = scope.get("server") or ("", 0)
        return f"otlp_router_admin_{server[1] or 0}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        cookie = self._cookie_name(scope)
        if (scheme.lower() == "bearer" and self.auth.allows(credentials.strip())) \
                or self.auth.allows_cookie(request.cookies.get(cookie)):
            await self.app(scope, receive, send)
            return
        response: Response
        if scope["path"] == "/" and self.auth.allows(request.query_params.get("token")):
            # The browser's way in: trade the token for a cookie, and drop it from the URL.
            response = RedirectResponse("./", status_code=303, headers={"Cache-Control": "no-store"})
            # No Path: the page's own directory, so also right behind a proxy's prefix.
            response.set_cookie(cookie, self.auth.cookie_value, httponly=True, samesite="strict",
                                secure=scope.get("scheme") == "https", path=None)
        else:
            response = PlainTextResponse(
                "unauthorized: send the admin token as `Authorization: Bearer <token>`, "
                "or open the status page once as /?token=<token>\n",
                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="otlp-router admin"'})
        await response(scope, receive, send)


def guard(app: ASGIApp, auth: "AdminAuth | None") -> ASGIApp:
    """`app` behind the admin token when one is configured."""
    return RequireAdminToken(app, auth) if auth is not None else app


@dataclass(frozen=True)
class AdminSettings:
    host: str = "127.0.0.1"
    port: int = 8888
    tls: ServerTls | None = None
    auth: AdminAuth | None = None

    @classmethod
    def read(cls, section: Section) -> "AdminSettings":
        host, port = parse_endpoint(section, "endpoint", f"{cls.host}:{cls.port}")
        tls = ServerTls.read(section.section("tls"))
        auth = AdminAuth.read(section.section("auth")) if section.has("auth") else None
        section.done()
        return cls(host, port, tls, auth)


class RecentProblems(logging.Handler):
    """The last warnings and errors, for the status page (refused requests are
    added from `telemetry.refusals`, which the transports feed)."""

    def __init__(self, size: int = 50) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self.last_reload_refused: tuple[float, str] | None = None   # (time, message)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Masked here: this handler sits on the router's logger and sees the
            # record before the stderr handler's MaskSecrets does.
            message = logs.mask(record.getMessage())
            self.records.append({"time": record.created, "level": record.levelname, "logger": record.name,
                                 "message": message})
            if message.startswith(_RELOAD_REFUSED):
                self.last_reload_refused = (record.created, message)
        except Exception:  # a broken log call must not break the router
            pass


# The start of server.py's messages for a reload that did not take (always ERROR,
# so seen at every log level); a reload that took is seen as a new config object.
_RELOAD_REFUSED = ("reload refused", "reload failed")


def _samples(counter: Any, **match: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in match.items()):
                out.append((sample.labels, sample.value))
    return out


def _counter_total(counter: Any, **match: str) -> float:
    return sum(value for _, value in _samples(counter, **match))


def _by(counter: Any, label: str, **match: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for labels, value in _samples(counter, **match):
        totals[labels.get(label, "")] = totals.get(labels.get(label, ""), 0.0) + value
    return totals


def refused_requests() -> list[dict[str, Any]]:
    """Refused requests by status, transport and signal, most first."""
    rows = [{"status": labels["status"], "transport": labels["transport"], "signal": labels["signal"],
             "count": value} for labels, value in _samples(telemetry.receiver_refused_requests) if value]
    return sorted(rows, key=lambda r: (-r["count"], r["status"]))


THROUGHPUT_WINDOW = 10.0   # seconds: "items / s" is the rate over this much time, by timestamps


class Throughput:
    """Accepted items per second over the last `window` seconds.

    Sampled once a second (and at each status call) with timestamps, so the
    rate falls to 0 one window after the load stops, however often (or
    seldom) the page polls."""

    def __init__(self, window: float = THROUGHPUT_WINDOW) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, now: float, total: float) -> None:
        self._samples.append((now, total))
        # Keep the newest sample at or before the window's start: the rate's base.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def rate(self, now: float, total: float) -> float:
        self.add(now, total)
        base_t, base_v = self._samples[0]
        return 0.0 if now - base_t < 0.5 else (total - base_v) / (now - base_t)


def _route_rule(route: Any) -> str:
    """How the page says which items a route takes: its `signals:` and its rule."""
    signals = ", ".join(s for s in SIGNALS if s in route.signals)
    if route.default:
        rule = f"what no other route took ({signals})"
    elif route.match is not None:
        rule = f"{signals} matching its rule"
    else:
        rule = f"all {signals}"
    return rule + ("; stop" if route.stop else "")


def _when(t: float | None) -> str:
    return "" if not t else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "Z"


def _num(x: Any) -> str:
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.1f}"
    return f"{int(x):,}"


# -- the status page: first view rendered here, then refreshed by its script ----
# Each table: (header, CSS class, cell text from a row). status.html's script
# renders the same columns from /api/status (keep the two in step).

def _yes(x: Any) -> str:
    return "yes" if x else "no"


_TABLES: dict[str, Any] = {
    "receivers": ("receivers", [
        ("transport", None, lambda r: r["transport"]), ("address", None, lambda r: r["address"]),
        ("TLS", None, lambda r: _yes(r["tls"])), ("listening", None, lambda r: _yes(r["bound"]))]),
    "workers": ("workers", [
        ("worker", None, lambda w: str(w["index"])), ("pid", "num", lambda w: str(w.get("pid") or "")),
        ("alive", None, lambda w: _yes(w.get("alive"))), ("ready", None, lambda w: _yes(w.get("ready"))),
        ("accepted", "num", lambda w: _num(w.get("accepted", 0))),
        ("items / s", "num", lambda w: _num(w.get("throughput", 0))),
        ("spool items", "num", lambda w: _num(w.get("spool_items", 0))),
        ("up", "num", lambda w: f"{round(w.get('uptime_seconds', 0))} s")]),
    "destinations": ("destinations", [
        ("name", None, lambda d: d["name"]), ("type", None, lambda d: d["type"]),
        ("state", "@state", lambda d: d["state"]),
        ("spool items", "num", lambda d: _num(d["spool_items"])), ("spool bytes", "num", lambda d: _num(d["spool_bytes"])),
        ("sent", "num", lambda d: _num(d["sent"])), ("dropped", "num", lambda d: _num(d["dropped"])),
        ("dead letter", "num", lambda d: _num(d["dead_lettered"])),
        ("last error", None, lambda d: d["last_error"] or "")]),
    "dead_letters": ("destinations", [
        ("destination", None, lambda d: d["name"]), ("items", "num", lambda d: _num(d["dead_lettered"])),
        ("rejected", "num", lambda d: _num(d["dead_letter_reasons"].get("rejected", 0))),
        ("exhausted", "num", lambda d: _num(d["dead_letter_reasons"].get("exhausted", 0))),
        ("poison", "num", lambda d: _num(d["dead_letter_reasons"].get("poison", 0))),
        ("last reason", None, lambda d: d["last_dead_letter"] or "")]),
    "routes": ("routes", [
        ("name", None, lambda r: r["name"]), ("takes", None, lambda r: r["rule"]),
        ("destinations", None, lambda r: ", ".join(r["destinations"])), ("routed", "num", lambda r: _num(r["routed"]))]),
    "refused_requests": ("refused_requests", [
        ("status", None, lambda r: r["status"]), ("transport", None, lambda r: r["transport"]),
        ("signal", None, lambda r: r["signal"]), ("requests", "num", lambda r: _num(r["count"]))]),
    "problems": ("problems", [
        ("time", None, lambda p: _when(p["time"])), ("level", "@level", lambda p: p["level"]),
        ("message", None, lambda p: p["message"]),
        ("count", "num", lambda p: _num(p.get("count", 1)))]),
}


def _rows(table: str, status: dict[str, Any]) -> str:
    key, columns = _TABLES[table]
    out = []
    for item in status.get(key) or []:
        cells = []
        for _, cls, text in columns:
            value = text(item)
            css = value if cls and cls.startswith("@") else cls   # the value itself: state ok/failing, level
            attr = f' class="{html.escape(css)}"' if css else ""
            cells.append(f"<td{attr}>{html.escape(value)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out)


def _headers(table: str) -> str:
    return "".join(f'<th class="num">{html.escape(h)}</th>' if cls == "num" else f"<th>{html.escape(h)}</th>"
                   for h, cls, _ in _TABLES[table][1])


def _reload_text(status: dict[str, Any]) -> str:
    last = status.get("last_reload")
    if not last:
        return "none since start"
    return f"{_when(last['time'])}: {last['result']}" + (f" ({last['message']})" if last.get("message") else "")


def _meta(status: dict[str, Any]) -> str:
    workers = status.get("workers") or []
    parts = [f"version {status['version']}", f"pid {status['pid']}", f"up {round(status['uptime_seconds'])} s",
             f"{len(workers)} worker{'s' if len(workers) != 1 else ''}"]
    return " · ".join(parts)


def render_page(status: dict[str, Any], template: str | None = None) -> str:
    """The status page with `status` (an /api/status document) in its HTML:
    readable without scripts; its script then refreshes it from /api/status."""
    page = template if template is not None else STATUS_PAGE.read_text(encoding="utf-8")
    values = {
        "meta": _meta(status), "updated": _when(status.get("generated_at")),
        "config_file": status.get("config_file") or "", "last_reload": _reload_text(status),
        "accepted": _num(status["accepted"]), "throughput": _num(status["throughput"]),
        "window": _num(status.get("throughput_window", THROUGHPUT_WINDOW)),
        "refused": _num(status["refused"]), "refused_items": _num(status.get("refused_items", 0)),
        "unrouted": _num(status["unrouted"]),
        "dead_lettered": _num(sum(d["dead_lettered"] for d in status["destinations"])),
        "ready": _yes(status["ready"]),
    }
    for table in _TABLES:
        values[f"{table}_head"] = _headers(table)
        values[f"{table}_rows"] = _rows(table, status)
    escaped = {k: v if k.endswith(("_head", "_rows")) else html.escape(v) for k, v in values.items()}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: escaped[m.group(1)], page)


def merge_problems(problems: Iterable[dict[str, Any]], limit: int = 50) -> list[dict[str, Any]]:
    """Newest first; the same message (a refused reload in every worker, a
    repeated refusal) once, with its count and the workers it came from."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for p in problems:
        key = (p["level"], p["message"])
        m = merged.get(key)
        if m is None:
            merged[key] = m = {**p, "count": 0, "workers": []}
        m["count"] += p.get("count", 1)
        m["time"] = max(m["time"], p["time"])
        for w in p.get("workers") or ([p["worker"]] if "worker" in p else []):
            if w not in m["workers"]:
                m["workers"].append(w)
    return sorted(merged.values(), key=lambda p: -p["time"])[:limit]


class Admin:
    def __init__(self, settings: AdminSettings, router: "Router", uds: Path | None = None,
                 extra_routes: list[Route] | None = None) -> None:
        self.settings = settings
        self.router = router
        self.problems = RecentProblems()
        self.started = time.time()
        self.throughput = Throughput()
        self._sampler: asyncio.Task[None] | None = None
        self._config = router.config
        self._reloaded: float | None = None      # when a reload last swapped the config in
        self.uds = uds
        self.app = Starlette(routes=[
            Route("/", self.page), Route("/metrics", self.metrics), Route("/healthz", self.healthz),
            Route("/readyz", self.readyz), Route("/api/status", self.status), *(extra_routes or [])])
        app: ASGIApp
        if uds is not None:
            # A worker's internal socket: only the supervisor and the other
            # workers of this start, which got the per-start token, may use it.
            token = internal_token()
            logs.hide([token] if token else [])
            app = RequireInternalToken(self.app, token)
        else:
            app = guard(self.app, settings.auth)
        self.server = AsgiServer(app, "admin endpoint", settings.host, settings.port, http="h11",
                                 tls=settings.tls, uds=uds)

    async def page(self, request: Request) -> Response:
        return HTMLResponse(render_page(self.snapshot()), headers={"Cache-Control": "no-store"})

    def update_gauges(self) -> None:
        self.router.update_gauges()
        telemetry.update_queue_gauges((name, d.spool.pending_bytes, d.spool.max_bytes)
                                      for name, d in self.router.deliveries.items())

    async def metrics(self, request: Request) -> Response:
        self.update_gauges()
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

    def _accepted(self) -> float:
        return _counter_total(telemetry.receiver_accepted)

    def _note_reload(self) -> None:
        if self.router.config is not self._config:   # a reload swapped a new config in
            self._config = self.router.config
            self._reloaded = time.time()

    def last_reload(self) -> dict[str, Any] | None:
        self._note_reload()
        refused = self.problems.last_reload_refused
        if refused is not None and (self._reloaded is None or refused[0] >= self._reloaded):
            return {"time": refused[0], "result": "refused" if refused[1].startswith("reload refused") else "failed",
                    "message": refused[1]}
        if self._reloaded is not None:
            return {"time": self._reloaded, "result": "ok", "message": ""}
        return None

    async def _sample(self) -> None:
        while True:
            self.throughput.add(time.monotonic(), self._accepted())
            self._note_reload()
            await asyncio.sleep(1.0)

    def _receivers(self) -> list[dict[str, Any]]:
        out = []
        for transport, receiver in (("http", self.router.http), ("grpc", self.router.grpc)):
            if receiver is None:
                continue
            settings = receiver.settings
            bound = receiver.bound
            host, port = receiver.address if bound else (settings.host, settings.port)
            out.append({"name": "otlp", "transport": transport, "address": f"{host}:{port}",
                        "tls": settings.tls is not None, "bound": bound})
        return out

    def snapshot(self) -> dict[str, Any]:
        """The /api/status document (also what the page is first rendered from)."""
        router = self.router
        self.update_gauges()
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
                "dead_letter_reasons": _by(telemetry.dead_lettered, "reason", destination=name),
            })
        table = router.config.routing
        routes = [{"name": r.name, "destinations": list(r.destinations), "stop": r.stop, "default": r.default,
                   "match": r.match is not None, "signals": [s for s in SIGNALS if s in r.signals],
                   "rule": _route_rule(r), "routed": _counter_total(telemetry.routed, route=r.name)}
                  for r in [*table.routes, *([table.default] if table.default else [])]]
        refused = refused_requests()
        problems = [*self.problems.records, *telemetry.refusals.records()]
        accepted = self._accepted()
        throughput = round(self.throughput.rate(time.monotonic(), accepted), 1)
        ready = self._readiness()["ready"]
        uptime = round(time.time() - self.started, 1)
        spool_items = sum(d["spool_items"] for d in destinations)
        return {
            "version": telemetry.VERSION, "pid": os.getpid(), "uptime_seconds": uptime,
            "generated_at": time.time(), "config_file": os.path.abspath(router.config.file),
            "accepted": accepted, "accepted_by_signal": _by(telemetry.receiver_accepted, "signal"),
            "refused": sum(r["count"] for r in refused), "refused_requests": refused,
            "refused_items": _counter_total(telemetry.receiver_refused),
            "unrouted": _counter_total(telemetry.unrouted),
            "throughput": throughput, "throughput_window": self.throughput.window,
            "receivers": self._receivers(), "routes": routes, "destinations": destinations,
            "problems": merge_problems(problems),
            "last_reload": self.last_reload(),
            "ready": ready,
            # One process: itself, so the page's worker panel reads the same with `workers: N`.
            "workers": [{"index": 0, "pid": os.getpid(), "alive": True, "ready": ready, "accepted": accepted,
                         "throughput": throughput, "spool_items": spool_items, "uptime_seconds": uptime}],
        }

    async def status(self, request: Request) -> Response:
        return JSONResponse(self.snapshot())

    async def start(self) -> None:
        logging.getLogger("otlp_router").addHandler(self.problems)
        if self.uds is not None and internal_token() is None:
            logging.getLogger("otlp_router").error(
                "worker started without %s: its internal socket refuses every request", INTERNAL_TOKEN_ENV)
        await self.server.start()
        if self.uds is not None:
            # Owner only, whatever the umask: the socket hands data into the spool.
            os.chmod(self.uds, 0o600)
        self._sampler = asyncio.create_task(self._sample(), name="admin: throughput")

    async def stop(self) -> None:
        logging.getLogger("otlp_router").removeHandler(self.problems)
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        await self.server.stop()
