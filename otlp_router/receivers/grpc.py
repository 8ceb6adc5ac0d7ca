"""OTLP/gRPC receiver: the Export method of each signal's service (grpc.aio).

Requests arrive as raw bytes (no grpcio deserializer) so that undecodable data
is answered with INVALID_ARGUMENT and a message, instead of grpcio's UNKNOWN."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2

from otlp_router import telemetry
from otlp_router.model.signals import Signal
from otlp_router.pipeline import Pipeline, SpoolFull
from otlp_router.receivers import payload
from otlp_router.receivers.listen import StartupError
from otlp_router.settings import Section, parse_endpoint

log = logging.getLogger("otlp_router.receivers.grpc")


@dataclass(frozen=True)
class GrpcSettings:
    host: str = "127.0.0.1"
    port: int = 4317
    max_recv_msg_size: int = 16 * 1024 * 1024
    max_concurrent_streams: int = 0   # 0: grpcio's default

    @classmethod
    def read(cls, section: Section) -> "GrpcSettings":
        host, port = parse_endpoint(section, "endpoint", f"{cls.host}:{cls.port}")
        s = cls(host, port,
                section.size("max_recv_msg_size", cls.max_recv_msg_size, minimum=1),
                section.int("max_concurrent_streams", cls.max_concurrent_streams, minimum=0))
        section.done()
        return s


def _retry_trailer(code: int, message: str, retry_after: float) -> tuple[tuple[str, bytes], ...]:
    """`grpc-status-details-bin` carrying RetryInfo, which OTLP clients read for their backoff."""
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromNanoseconds(int(retry_after * 1e9))
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),)


class GrpcReceiver:
    def __init__(self, settings: GrpcSettings, pipeline: Pipeline, signals: list[Signal],
                 reuse_port: bool = False) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.signals = signals
        self.reuse_port = reuse_port
        self.draining = False
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
        accepted = telemetry.receiver_accepted.labels(*labels)
        rejected = telemetry.receiver_refused.labels(*labels, "invalid")

        async def refuse(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str,
                         retry_after: float | None = None) -> None:
            telemetry.receiver_refused_requests.labels(*labels, code.name).inc()
            trailer = _retry_trailer(code.value[0], message, retry_after) if retry_after is not None else ()
            await context.abort(code, message, trailing_metadata=trailer)

        async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                batch, rejection = payload.decode(signal, payload.PROTOBUF, request)
            except payload.PayloadError as e:
                await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, e.message)
            if self.draining:
                await refuse(context, grpc.StatusCode.UNAVAILABLE, "the router is shutting down; retry", 1.0)
            try:
                await self.pipeline.accept(batch)
            except SpoolFull as e:
                telemetry.receiver_refused.labels(*labels, "backpressure").inc(batch.items)
                await refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(e), e.retry_after)
            accepted.inc(batch.items)
            if rejection.count:
                rejected.inc(rejection.count)
            return signal.response(rejection).SerializeToString()

        return export

    async def start(self) -> None:
        options = [
            # grpcio shares ports by default; a second router on a busy port must fail instead.
            ("grpc.so_reuseport", 1 if self.reuse_port else 0),
            ("grpc.max_receive_message_length", self.settings.max_recv_msg_size),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
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
            port = server.add_insecure_port(address)
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
