"""The admin endpoint, apart from the OTLP ports: /metrics (Prometheus),
/healthz, /readyz, /api/status, and a live status page at /.

With `admin.auth`, every path but /healthz needs the admin token: as
`Authorization: Bearer <token>` (curl, Prometheus), or in a browser by opening
the status page once as `/?token=<token>`, which answers with a cookie and a
redirect to `/` (the token leaves the address bar and the history)."""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from otlp_router import logs, telemetry
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
    """The last warnings and errors, for the status page."""

    def __init__(self, size: int = 50) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Masked here: this handler sits on the router's logger and sees the
            # record before the stderr handler's MaskSecrets does.
            self.records.append({"time": record.created, "level": record.levelname, "logger": record.name,
                                 "message": logs.mask(record.getMessage())})
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
        if self.uds is not None and internal_token() is None:
            logging.getLogger("otlp_router").error(
                "worker started without %s: its internal socket refuses every request", INTERNAL_TOKEN_ENV)
        await self.server.start()
        if self.uds is not None:
            # Owner only, whatever the umask: the socket hands data into the spool.
            os.chmod(self.uds, 0o600)

    async def stop(self) -> None:
        logging.getLogger("otlp_router").removeHandler(self.problems)
        await self.server.stop()
