"""Listening sockets, with start-up errors a person can act on."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import uvicorn


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


class AsgiServer:
    """An ASGI app served by uvicorn on a socket we bound ourselves, started and
    stopped by the router's lifecycle rather than by uvicorn's signal handling."""

    def __init__(self, app: Any, what: str, host: str, port: int, http: str = "httptools") -> None:
        self.app, self.what, self.host, self.port, self.http = app, what, host, port, http
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._main: asyncio.Task[None] | None = None

    @property
    def bound(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        assert self._socket is not None
        host, port = self._socket.getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self._socket = bind_tcp(self.what, self.host, self.port)
        config = uvicorn.Config(self.app, http=self.http, lifespan="off", access_log=False, log_config=None,
                                server_header=False, date_header=False, timeout_keep_alive=30)
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
