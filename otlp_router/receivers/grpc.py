"""OTLP/gRPC receiver: the Export method of each signal's service (grpc.aio).

Requests arrive as raw bytes (no grpcio deserializer) so that undecodable data
is answered with INVALID_ARGUMENT and a message, instead of grpcio's UNKNOWN."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

import grpc

from otlp_router import telemetry
from otlp_router.model.signals import Signal
from otlp_router.receivers import payload
from otlp_router.receivers.intake import Intake, Refused
from otlp_router.receivers.listen import ServerTls, StartupError
from otlp_router.settings import Section, parse_endpoint

log = logging.getLogger("otlp_router.receivers.grpc")


@dataclass(frozen=True)
class Keepalive:
    """HTTP/2 connection lifetimes and ping policing, named as in the Collector's
    configgrpc (`keepalive.server_parameters`, `keepalive.enforcement_policy`).
    0 means "not set" (grpcio's default: no limit) for the lifetimes."""

    max_connection_idle: float = 300.0     # no call for this long: GOAWAY (frees an idle client's fd)
    max_connection_age: float = 0.0
    max_connection_age_grace: float = 0.0
    time: float = 7200.0                   # the server pings an idle connection this often...
    timeout: float = 20.0                  # ...and closes it when the ack is this late
    min_time: float = 300.0                # pings closer than this without data are strikes
    permit_without_stream: bool = False    # pings with no call open are strikes too
    max_ping_strikes: int = 2              # then GOAWAY ENHANCE_YOUR_CALM "too_many_pings"

    @classmethod
    def read(cls, section: Section) -> "Keepalive":
        server = section.section("server_parameters")
        policy = section.section("enforcement_policy")
        d = cls()
        k = cls(server.duration("max_connection_idle", d.max_connection_idle),
                server.duration("max_connection_age", d.max_connection_age),
                server.duration("max_connection_age_grace", d.max_connection_age_grace),
                server.duration("time", d.time, minimum=0.001),
                server.duration("timeout", d.timeout, minimum=0.001),
                policy.duration("min_time", d.min_time),
                policy.bool("permit_without_stream", d.permit_without_stream),
                policy.int("max_ping_strikes", d.max_ping_strikes, minimum=0))
        server.done()
        policy.done()
        section.done()
        return k

    def options(self) -> list[tuple[str, int]]:
        """The grpcio channel arguments (milliseconds) these stand for."""
        def ms(seconds: float) -> int:
            return int(seconds * 1000)

        options = [("grpc.keepalive_time_ms", ms(self.time)),
                   ("grpc.keepalive_timeout_ms", ms(self.timeout)),
                   ("grpc.http2.min_recv_ping_interval_without_data_ms", ms(self.min_time)),
                   ("grpc.keepalive_permit_without_calls", int(self.permit_without_stream)),
                   ("grpc.http2.max_ping_strikes", self.max_ping_strikes)]
        for name, seconds in (("grpc.max_connection_idle_ms", self.max_connection_idle),
                              ("grpc.max_connection_age_ms", self.max_connection_age),
                              ("grpc.max_connection_age_grace_ms", self.max_connection_age_grace)):
            if seconds:
                options.append((name, ms(seconds)))
        return options


@dataclass(frozen=True)
class GrpcSettings:
    host: str = "127.0.0.1"
    port: int = 4317
    max_recv_msg_size: int = 16 * 1024 * 1024
    # grpcio's default is unlimited: one connection could hold any number of
    # calls, each up to max_recv_msg_size. 100 is HTTP/2's recommended minimum; 0: unlimited.
    max_concurrent_streams: int = 100
    tls: ServerTls | None = None
    keepalive: Keepalive = Keepalive()

    @classmethod
    def read(cls, section: Section) -> "GrpcSettings":
        host, port = parse_endpoint(section, "endpoint", f"{cls.host}:{cls.port}")
        s = cls(host, port,
                section.size("max_recv_msg_size", cls.max_recv_msg_size, minimum=1),
                section.int("max_concurrent_streams", cls.max_concurrent_streams, minimum=0),
                ServerTls.read(section.section("tls")),
                Keepalive.read(section.section("keepalive")))
        section.done()
        return s


_JSON_MESSAGE = ("OTLP/gRPC messages are protobuf (content-type application/grpc or application/grpc+proto); "
                 "this one is JSON: send OTLP JSON to the OTLP/HTTP receiver")


class GrpcReceiver:
    def __init__(self, settings: GrpcSettings, intake: Intake, signals: list[Signal],
                 reuse_port: bool = False) -> None:
        self.settings = settings
        self.intake = intake
        self.signals = signals
        self.reuse_port = reuse_port
        self._server: grpc.aio.Server | None = None
        self._port = 0

    @property
    def address(self) -> tuple[str, int]:
        return self.settings.host, self._port

    @property
    def bound(self) -> bool:
        return self._server is not None

    def _handler(self, signal: Signal) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
        labels = ("otlp", "grpc", signal.name)

        async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                if request[:1] == b"{":
                    # grpcio never shows the content-type to a handler (its core drops the
                    # header, and lets any value through), so an application/grpc+json
                    # client is recognised by its message: '{' never starts an OTLP protobuf.
                    raise Refused(400, _JSON_MESSAGE)
                metadata = dict(context.invocation_metadata() or ())
                key = self.intake.authenticate(metadata.get("authorization"), metadata.get("x-api-key"))
                rejection = await self.intake.export(signal, payload.PROTOBUF, request, key, "grpc")
            except Refused as r:
                code = r.grpc_code
                telemetry.receiver_refused_requests.labels(*labels, code.name).inc()
                # RetryInfo in grpc-status-details-bin is what OTLP clients read for their backoff.
                trailer = (("grpc-status-details-bin", r.rpc_status().SerializeToString()),) \
                    if r.retry_after is not None else ()
                await context.abort(code, r.message, trailing_metadata=trailer)
            return signal.response(rejection).SerializeToString()

        return export

    async def start(self) -> None:
        options = [
            # grpcio shares ports by default; a second router on a busy port must fail instead.
            ("grpc.so_reuseport", 1 if self.reuse_port else 0),
            ("grpc.max_receive_message_length", self.settings.max_recv_msg_size),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            *self.settings.keepalive.options(),
        ]
        if self.settings.max_concurrent_streams:
            options.append(("grpc.max_concurrent_streams", self.settings.max_concurrent_streams))
        server = grpc.aio.server(options=options)
        for signal in self.signals:
            handler = grpc.unary_unary_rpc_method_handler(self._handler(signal))
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(signal.grpc_service, {"Export": handler}),))
        address = f"[{self.settings.host}]:{self.settings.port}" if ":" in self.settings.host \
            else f"{self.settings.host}:{self.settings.port}"
        try:
            if self.settings.tls is None:
                port = server.add_insecure_port(address)
            else:
                key, cert, ca = self.settings.tls.read_files()
                credentials = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                                          require_client_auth=ca is not None)
                port = server.add_secure_port(address, credentials)
        except RuntimeError:
            port = 0
        if not port:
            raise StartupError(f"OTLP/gRPC receiver: cannot listen on {address} (already in use?)")
        self._port = port
        await server.start()
        self._server = server

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let the ones in flight finish within `grace` seconds."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
