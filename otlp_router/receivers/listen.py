"""Listening sockets, with start-up errors a person can act on."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from otlp_router.settings import Section


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


class AsgiServer:
    """An ASGI app served by uvicorn on a socket we bound ourselves, started and
    stopped by the router's lifecycle rather than by uvicorn's signal handling."""

    def __init__(self, app: Any, what: str, host: str, port: int, http: str = "httptools",
                 tls: ServerTls | None = None, reuse_port: bool = False, uds: Path | None = None) -> None:
        self.app, self.what, self.host, self.port, self.http, self.tls = app, what, host, port, http, tls
        self.reuse_port, self.uds = reuse_port, uds
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._main: asyncio.Task[None] | None = None

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
        config = uvicorn.Config(self.app, http=self.http, lifespan="off", access_log=False, log_config=None,
                                server_header=False, date_header=False, timeout_keep_alive=30, **tls)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[self._socket])
        self._server = server
        self._main = asyncio.create_task(server.main_loop(), name=self.what)

    async def stop(self) -> None:
        """Stop accepting connections, finish the requests in flight."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._main is not None:
            await self._main
        await self._server.shutdown(sockets=[self._socket] if self._socket else None)
        self._server = None
