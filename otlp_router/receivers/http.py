"""OTLP/HTTP receiver: POST /v1/{signal} with protobuf or JSON bodies (uvicorn; Starlette for
every other path).

The export endpoint is a plain ASGI callable rather than a Starlette request
handler: it reads headers straight from the scope and answers with two sends,
which keeps the per-request cost close to a bare parse."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.routing import Route

from otlp_router import telemetry
from otlp_router.model import otlp_json
from otlp_router.model.signals import Rejection, Signal
from otlp_router.receivers import payload
from otlp_router.receivers.intake import Intake, Refused
from otlp_router.receivers.listen import AsgiServer, HttpLimits, ServerTls
from otlp_router.settings import Section, parse_endpoint
from otlp_router.threads import offload

log = logging.getLogger("otlp_router.receivers.http")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_CONTENT_TYPE = {payload.PROTOBUF: b"application/x-protobuf", payload.JSON: b"application/json"}

# Compressed bodies up to this size are inflated on the event loop, to at most
# _INLINE_OUTPUT bytes (a few ms at worst); bigger ones, or ones that inflate
# further, in a thread: a member flood or a bomb must not stall other clients.
_INLINE_COMPRESSED = 64 * 1024
_INLINE_OUTPUT = 1 << 20
_DISCARD = 64 * 1024   # a refused request's unread body up to this is read and dropped, keeping the connection
_FEW_CHUNKS = 16


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 4318
    max_request_body_size: int = 16 * 1024 * 1024
    tls: ServerTls | None = None
    limits: HttpLimits = HttpLimits()

    @classmethod
    def read(cls, section: Section) -> "HttpSettings":
        host, port = parse_endpoint(section, "endpoint", f"{cls.host}:{cls.port}")
        d = HttpLimits()
        limits = HttpLimits(
            max_header_size=section.size("max_header_size", d.max_header_size, minimum=1024),
            max_header_count=section.int("max_header_count", d.max_header_count, minimum=1),
            read_header_timeout=section.duration("read_header_timeout", d.read_header_timeout),
            read_timeout=section.duration("read_timeout", d.read_timeout),
            idle_timeout=section.duration("idle_timeout", d.idle_timeout, minimum=0.001),
            max_connections=section.int("max_connections", d.max_connections, minimum=0))
        s = cls(host, port, section.size("max_request_body_size", cls.max_request_body_size, minimum=1),
                ServerTls.read(section.section("tls")), limits)
        section.done()
        return s


def _status_body(kind: str, refusal: Refused) -> bytes:
    status = refusal.rpc_status()
    if kind == payload.PROTOBUF:
        return status.SerializeToString()
    doc: dict[str, Any] = {"code": status.code, "message": status.message}
    if refusal.retry_after is not None:
        doc["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                           "retryDelay": f"{refusal.retry_after:g}s"}]
    return orjson.dumps(doc)


class ExportEndpoint:
    """POST handler for one signal's export path."""

    def __init__(self, signal: Signal, intake: Intake, max_body: int) -> None:
        self.signal = signal
        self.intake = intake
        self.max_body = max_body
        self._labels = ("otlp", "http", signal.name)
        # the answer to almost every JSON request (nothing rejected), encoded once
        self._accepted_json = otlp_json.encode(signal.response(Rejection()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = payload.JSON
        unread = True
        try:
            if scope["method"] != "POST":
                raise Refused(405, f"method {scope['method']} not allowed: use POST")
            content_type = encoding = b""
            authorization = api_key = None
            length = -1
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value
                elif name == b"content-encoding":
                    encoding = value
                elif name == b"content-length":
                    length = int(value) if value.isdigit() else -1
                    unread = length < 0 or length > _DISCARD
                elif name == b"authorization":
                    authorization = value.decode("latin-1")
                elif name == b"x-api-key":
                    api_key = value.decode("latin-1")
            try:
                kind = payload.content_kind(content_type.decode("latin-1"))
            except payload.PayloadError as e:
                raise Refused(e.status, e.message) from None
            key = self.intake.authenticate(authorization, api_key)
            try:
                if length > self.max_body:
                    raise payload.TooLarge(f"request body of {length} bytes is larger than the "
                                           f"{self.max_body} byte limit")
                body = await self._read_body(receive)
                unread = False
                data = await self._decompress(body, encoding.decode("latin-1"))
            except payload.PayloadError as e:
                raise Refused(e.status, e.message) from None
            rejection = await self.intake.export(self.signal, kind, data, key, "http")
        except Refused as r:
            telemetry.receiver_refused_requests.labels(*self._labels, str(r.status)).inc()
            # Answered before a large (or unsized) body was read (401, 413, 429, ...):
            # close rather than read and throw away the rest of the upload.
            await self._respond(send, kind, r.status, _status_body(kind, r), r.retry_after, close=unread)
            return
        except _ClientGone:
            return
        if kind == payload.JSON and rejection == Rejection():
            body = self._accepted_json
        else:
            response = self.signal.response(rejection)
            body = response.SerializeToString() if kind == payload.PROTOBUF else otlp_json.encode(response)
        await self._respond(send, kind, 200, body)

    async def _read_body(self, receive: Receive) -> bytes:
        # A few chunks (a large body in socket reads) are joined once at the end; past
        # _FEW_CHUNKS they go into one buffer instead: a body trickled in 3-byte chunks
        # would cost 15x its size as a list of bytes objects.
        chunks: list[bytes] = []
        buffer: bytearray | None = None
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise payload.TooLarge(f"request body is larger than the {self.max_body} byte limit")
            if buffer is not None:
                buffer += chunk
            elif chunk:
                chunks.append(chunk)
                if len(chunks) > _FEW_CHUNKS:
                    buffer = bytearray(b"".join(chunks))
            if not message.get("more_body", False):
                if buffer is not None:
                    return bytes(buffer)
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _decompress(self, body: bytes, encoding: str) -> bytes:
        if encoding.strip().lower() in ("", "identity", "none"):
            return payload.decompress(body, encoding, self.max_body)
        if len(body) <= _INLINE_COMPRESSED:
            try:
                return payload.decompress(body, encoding, min(self.max_body, _INLINE_OUTPUT))
            except payload.TooLarge:
                if self.max_body <= _INLINE_OUTPUT:
                    raise
        return await offload(payload.decompress, body, encoding, self.max_body)

    @staticmethod
    async def _respond(send: Send, kind: str, status: int, body: bytes, retry_after: float | None = None,
                       close: bool = False) -> None:
        headers = [(b"content-type", _CONTENT_TYPE[kind]), (b"content-length", str(len(body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        if retry_after is not None:
            headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
        if status == 405:
            headers.append((b"allow", b"POST"))
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _ClientGone(Exception):
    pass


class _Dispatch:
    """The export paths straight to their endpoints, everything else through Starlette (its
    404s, and its redirect of a trailing slash): Starlette's middleware and routing cost about
    a tenth of the CPU of a small request, for nothing the endpoints use."""

    def __init__(self, endpoints: dict[str, ExportEndpoint]) -> None:
        self._endpoints = endpoints
        self._fallback = Starlette(routes=[Route(path, endpoint) for path, endpoint in endpoints.items()])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._endpoints.get(scope["path"]) if scope["type"] == "http" else None
        await (endpoint or self._fallback)(scope, receive, send)


class HttpReceiver(AsgiServer):
    """Serves the export paths of `signals` on one socket until stopped."""

    def __init__(self, settings: HttpSettings, intake: Intake, signals: list[Signal], reuse_port: bool = False
                 ) -> None:
        self.settings = settings
        endpoints = {s.http_path: ExportEndpoint(s, intake, settings.max_request_body_size) for s in signals}
        by_path = {s.http_path.encode(): s.name for s in signals}

        def refused(path: bytes | None, status: int) -> None:
            """Refusals by the connection limits (408, 431, 503), counted like the endpoint's own."""
            signal = by_path.get(path or b"", "unknown")
            telemetry.receiver_refused_requests.labels("otlp", "http", signal, str(status)).inc()

        super().__init__(_Dispatch(endpoints), "OTLP/HTTP receiver", settings.host, settings.port,
                         tls=settings.tls, reuse_port=reuse_port, limits=settings.limits, on_refused=refused)
