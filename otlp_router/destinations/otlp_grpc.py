"""`type: otlp_grpc`: export to an OTLP/gRPC endpoint over one reused channel."""

from __future__ import annotations

from typing import Any

import grpc

from otlp_router.destinations.assembly import Group
from otlp_router.destinations.base import CheckResult, Destination, ExportError
from otlp_router.destinations.otlp_common import (connection_test_request, decode_response, merged_wire,
                                                  note_partial_success, retry_info_delay)
from otlp_router.destinations.tls import ClientTls
from otlp_router.model.signals import TRACES, Signal
from otlp_router.settings import Section, parse_endpoint

# The OTLP spec's retryable codes; RESOURCE_EXHAUSTED only when the server says when (RetryInfo).
RETRYABLE = frozenset({grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
                       grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})


class OtlpGrpcDestination(Destination):
    type_name = "otlp_grpc"
    default_flush_interval = 0.2
    default_max_in_flight = 4

    def __init__(self, name: str, settings: Section) -> None:
        super().__init__(name, settings)
        host, port = parse_endpoint(settings, "endpoint", "")
        self.target = f"{host}:{port}"
        self.insecure = settings.bool("insecure", False)
        self.tls = ClientTls.read(settings.section("tls"))
        self.metadata = tuple((k.lower(), v) for k, v in settings.str_map("headers", {}).items())
        compression = settings.str("compression", "gzip", choices=("gzip", "none"))
        self.compression = grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression
        self.timeout = settings.duration("timeout", 10.0, minimum=0.001)
        self.check_with_span = settings.bool("check_with_span", False)
        settings.done()
        self._channel: grpc.aio.Channel | None = None
        self._methods: dict[str, Any] = {}

    def _make_channel(self) -> grpc.aio.Channel:
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024), ("grpc.keepalive_time_ms", 30_000)]
        if self.insecure:
            return grpc.aio.insecure_channel(self.target, options=options)
        ca, key, cert = self.tls.read_files()
        credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        if self.tls.insecure_skip_verify:
            # grpcio cannot skip verification; the closest is trusting the name the server presents.
            options.append(("grpc.ssl_target_name_override", self.target.rsplit(":", 1)[0]))
        return grpc.aio.secure_channel(self.target, credentials, options=options)

    def _method(self, channel: grpc.aio.Channel, signal: Signal) -> Any:
        method = self._methods.get(signal.name)
        if method is None:
            method = self._methods[signal.name] = channel.unary_unary(f"/{signal.grpc_service}/Export")
        return method

    async def start(self) -> None:
        self._channel = self._make_channel()
        self._methods = {}

    async def _call(self, channel: grpc.aio.Channel, signal: Signal, body: bytes) -> bytes:
        try:
            return await self._method(channel, signal)(body, timeout=self.timeout, metadata=self.metadata,
                                                       compression=self.compression)
        except grpc.aio.AioRpcError as e:
            code = e.code()
            trailers = dict(e.trailing_metadata() or ())
            delay = retry_info_delay(trailers.get("grpc-status-details-bin"))
            message = f"gRPC {code.name}: {e.details() or ''}".rstrip(": ")
            if code in RETRYABLE or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
                raise ExportError(message, retry_after=delay) from None
            raise ExportError(message, permanent=True) from None

    async def export(self, group: Group) -> None:
        batches = group.batches()
        if self._channel is None:
            await self.start()
        assert self._channel is not None
        signal = batches[0].signal
        reply = await self._call(self._channel, signal, merged_wire(batches))
        parsed = decode_response(signal, reply, json=False)
        if parsed is not None:
            note_partial_success(self.name, signal, parsed)

    async def check(self) -> CheckResult:
        channel = self._make_channel()
        try:
            await self._call(channel, TRACES, connection_test_request(self.check_with_span).SerializeToString())
        except ExportError as e:
            return CheckResult(False, f"{self.target}: {e}")
        finally:
            await channel.close()
        return CheckResult(True, f"gRPC OK from {self.target}")

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
