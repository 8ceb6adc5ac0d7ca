"""Listening sockets, with start-up errors a person can act on."""

from __future__ import annotations

import errno
import socket


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
