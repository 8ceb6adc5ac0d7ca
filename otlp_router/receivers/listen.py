"""Listening sockets, with start-up errors a person can act on."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from otlp_router.settings import Section

log = logging.getLogger("otlp_router.receivers.listen")


class StartupError(Exception):
    """The router cannot start as configured (a port is taken, ...)."""


def bind_tcp(what: str, host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR only lets a restart bind past TIME_WAIT; it never shares a live port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise StartupError(f"{what}: {host}:{port} is already in use by another process") from None
        raise StartupError(f"{what}: cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock


@dataclass(frozen=True)
class ServerTls:
    """TLS for a listening port; with `client_ca_file`, clients must present a certificate it signed (mTLS)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    @classmethod
    def read(cls, section: Section) -> "ServerTls | None":
        if not section.data:
            return None
        tls = cls(section.str("cert_file"), section.str("key_file"), section.str("client_ca_file", None))
        for key in ("cert_file", "key_file", "client_ca_file"):
            path = getattr(tls, key)
            if path is not None and not Path(path).is_file():
                section.fail(f"no such file: {path}", key)
        section.done()
        return tls

    def read_files(self) -> tuple[bytes, bytes, bytes | None]:
        ca = Path(self.client_ca_file).read_bytes() if self.client_ca_file else None
        return Path(self.key_file).read_bytes(), Path(self.cert_file).read_bytes(), ca


def bind_unix(what: str, path: Path) -> socket.socket:
    path.unlink(missing_ok=True)  # a socket file left by a crashed run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise StartupError(f"{what}: cannot listen on {path}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock


@dataclass(frozen=True)
class HttpLimits:
    """What one HTTP/1.1 connection may hold of the server, and for how long.

    httptools (uvicorn's fast parser) buffers headers without bound and uvicorn
    has no header or body read deadlines, so these are enforced here, by a
    subclass of uvicorn's httptools protocol (`LimitedHttpProtocol`)."""

    max_header_size: int = 64 * 1024      # request line + headers; past it: 431
    max_header_count: int = 100           # past it: 431
    read_header_timeout: float = 10.0     # from accept (or a kept-alive request's first byte) to full headers; 0: none
    read_timeout: float = 60.0            # from full headers to the end of the body (else 408); 0: none
    idle_timeout: float = 60.0            # a kept-alive connection without a request is closed after it
    max_connections: int = 0              # 0: auto, from the open-file limit (`connection_cap`)


def connection_cap(limits: HttpLimits) -> int:
    """`max_connections`, or by default 3/4 of the soft open-file limit (at most
    8192): past the fd limit accept() fails and *every* new client waits, so the
    cap sits below it, leaving room for spool files, gRPC and outgoing sockets."""
    if limits.max_connections:
        return limits.max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 8192
    return max(16, min(8192, soft - max(128, soft // 4)))


# Where a connection is. The header deadline runs from accept, or from a
# kept-alive request's first bytes; the body deadline from the end of the
# headers. Between requests (the request answered, or waiting for the next)
# uvicorn's keep-alive timer is in charge.
_HEADERS, _BODY, _IDLE = range(3)
_now = time.monotonic   # deadlines and the sweeper's clock
_on_headers_complete = HttpToolsProtocol.on_headers_complete


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _plain_response(status: int, message: str, extra: bytes = b"") -> bytes:
    body = message.encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"%sconnection: close\r\n\r\n%s") % (status, _REASONS[status], len(body), extra, body)


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


class LimitStats:
    """Refusals of one server, counted by the protocol and reported by the sweeper."""

    def __init__(self, on_refused: Callable[[bytes | None, int], None] | None) -> None:
        self.on_refused = on_refused
        self.over_cap = 0        # connections refused since the last report
        self.timed_out = 0       # connections closed for a header or body deadline since then

    def refused(self, path: bytes | None, status: int) -> None:
        if self.on_refused is not None:
            self.on_refused(path, status)


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits, read deadlines and a connection cap.

    Per request this adds a few attribute reads and writes, two clock reads and
    one Python call (on_headers_complete); deadlines are checked by one sweeper
    per server (`AsgiServer._sweep`) instead of a timer per connection."""

    limits: HttpLimits = HttpLimits()
    cap: int = 0
    stats: LimitStats = LimitStats(None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _HEADERS
        self._deadline = 0.0      # time.monotonic(); 0: none
        self._header_bytes = 0    # bytes read while this request's headers were incomplete
        self._chunk = 0           # length of the chunk being fed
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.cap:
            # Refused before reading anything: the fd is given back at once and
            # the connections already open keep being served.
            self._refused = True
            self.stats.over_cap += 1
            self.stats.refused(None, 503)
            transport.write(_plain_response(503, "too many connections; retry", b"retry-after: 1\r\n"))
            transport.close()
            return
        super().connection_made(transport)
        if self.limits.read_header_timeout:
            self._deadline = _now() + self.limits.read_header_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, plus the phases and the header limits: a refusal raised in a
        # parser callback stops the parser and is answered here.
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._phase == _IDLE:
            self._phase = _HEADERS
            self._header_bytes = 0
            if self.limits.read_header_timeout:
                self._deadline = _now() + self.limits.read_header_timeout
        self._chunk = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as e:
            refusal = e.__context__
            if isinstance(refusal, _Refusal):
                self._refuse(refusal.status, refusal.message)
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        if self._phase == _HEADERS:
            # Headers still incomplete: httptools holds them all, so count what
            # came in. (Bytes of a request pipelined behind another, in the chunk
            # where that one ended, go uncounted: the limit is then overshot by
            # at most one read.)
            self._header_bytes += self._chunk
            if self._header_bytes > self.limits.max_header_size and not self.transport.is_closing():
                self._refuse(431, f"request headers larger than {self.limits.max_header_size} bytes")
        elif self._phase == _BODY and self.cycle is not None and not self.cycle.more_body:
            self._phase = _IDLE
            self._deadline = 0.0

    def on_headers_complete(self) -> None:
        limits = self.limits
        if len(self.headers) > limits.max_header_count:
            raise _Refusal(431, f"more than {limits.max_header_count} request headers")
        # The exact size only when the bytes read since the request began could exceed the limit.
        if self._header_bytes + self._chunk > limits.max_header_size:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > limits.max_header_size:
                raise _Refusal(431, f"request headers larger than {limits.max_header_size} bytes")
        self._phase = _BODY
        self._deadline = _now() + limits.read_timeout if limits.read_timeout else 0.0
        _on_headers_complete(self)   # not super(): this runs per request

    def _refuse(self, status: int, message: str) -> None:
        self.stats.refused(getattr(self, "url", b"").split(b"?", 1)[0] or None, status)
        if self.cycle is not None and not self.cycle.response_complete:
            # The application must not answer too: it sees a disconnect.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_plain_response(status, message))
        self.transport.close()

    def _expire(self) -> None:
        """Past a header or body deadline: close (and answer 408 for a body)."""
        self._deadline = 0.0
        self.stats.timed_out += 1
        if self.transport.is_closing():
            return
        if self._phase == _BODY and self.cycle is not None and not self.cycle.response_started:
            self._refuse(408, f"request body not received within {self.limits.read_timeout:g}s")
        else:
            # Nothing to answer: no complete request yet, or it was answered
            # before its body came (and the rest never did).
            self.transport.close()


class AsgiServer:
    """An ASGI app served by uvicorn on a socket we bound ourselves, started and
    stopped by the router's lifecycle rather than by uvicorn's signal handling."""

    def __init__(self, app: Any, what: str, host: str, port: int, http: str = "httptools",
                 tls: ServerTls | None = None, reuse_port: bool = False, uds: Path | None = None,
                 limits: HttpLimits | None = None,
                 on_refused: Callable[[bytes | None, int], None] | None = None) -> None:
        """`limits` (httptools only) bounds headers, read times and connections;
        `on_refused(path, status)` hears of each 408 / 431 / 503 they cause."""
        self.app, self.what, self.host, self.port, self.http, self.tls = app, what, host, port, http, tls
        self.reuse_port, self.uds, self.limits = reuse_port, uds, limits
        self._stats = LimitStats(on_refused)
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._main: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def bound(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        assert self._socket is not None and self.uds is None
        host, port = self._socket.getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self._socket = bind_unix(self.what, self.uds) if self.uds else \
            bind_tcp(self.what, self.host, self.port, self.reuse_port)
        tls: dict[str, Any] = {}
        if self.tls is not None:
            tls = {"ssl_certfile": self.tls.cert_file, "ssl_keyfile": self.tls.key_file}
            if self.tls.client_ca_file:
                tls.update(ssl_ca_certs=self.tls.client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
        http: Any = self.http
        keep_alive = 30.0
        if self.limits is not None:
            assert self.http == "httptools", "HttpLimits are enforced by the httptools protocol"
            http = type("LimitedHttpProtocol", (LimitedHttpProtocol,),
                        {"limits": self.limits, "cap": connection_cap(self.limits), "stats": self._stats})
            keep_alive = self.limits.idle_timeout
        config = uvicorn.Config(self.app, http=http, lifespan="off", access_log=False, log_config=None,
                                server_header=False, date_header=False, timeout_keep_alive=keep_alive, **tls)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[self._socket])
        self._server = server
        self._main = asyncio.create_task(server.main_loop(), name=self.what)
        if self.limits is not None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft != resource.RLIM_INFINITY and http.cap >= soft:
                log.warning("%s: max_connections (%d) is not below the open-file limit (%d): past it, "
                            "accept() fails and every new client waits", self.what, http.cap, soft)
            self._sweeper = asyncio.create_task(self._sweep(server, http.cap), name=f"{self.what} deadlines")

    async def _sweep(self, server: uvicorn.Server, cap: int) -> None:
        """Close connections past their header or body deadline, and report refusals (once a second)."""
        assert self.limits is not None
        timeouts = [t for t in (self.limits.read_header_timeout, self.limits.read_timeout) if t]
        interval = min(1.0, max(0.05, min(timeouts) / 4)) if timeouts else 1.0
        reported = _now()
        while True:
            await asyncio.sleep(interval)
            now = _now()
            for conn in list(server.server_state.connections):
                deadline = getattr(conn, "_deadline", 0.0)
                if deadline and now >= deadline:
                    try:
                        conn._expire()
                    except Exception:  # noqa: BLE001 - one bad connection must not end the sweeping
                        log.exception("%s: closing a connection past its deadline failed", self.what)
            stats = self._stats
            if now - reported >= 1.0 and (stats.over_cap or stats.timed_out):
                if stats.over_cap:
                    log.warning("%s: refused %d new connections: max_connections (%d) reached",
                                self.what, stats.over_cap, cap)
                if stats.timed_out:
                    log.info("%s: closed %d connections that sent no complete request in time",
                             self.what, stats.timed_out)
                stats.over_cap = stats.timed_out = 0
                reported = now

    async def stop(self) -> None:
        """Stop accepting connections, finish the requests in flight."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._main is not None:
            await self._main
        # The sweeper runs on through the shutdown: uvicorn waits for every
        # connection, and a slow one ends only at its deadline.
        await self._server.shutdown(sockets=[self._socket] if self._socket else None)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._server = None
