"""Real OTLP servers written in the tests: they record what arrives and answer
as scripted, for forwarding and failure-injection tests."""

from __future__ import annotations

import gzip
import random
import threading
import time
from collections import Counter
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from google.protobuf.message import Message

from otlp_router.model import otlp_json
from otlp_router.model.signals import SIGNALS, TRACES, Signal


@dataclass
class Arrival:
    at: float
    headers: dict[str, str]
    request: Message | None
    raw: bytes = b""
    signal: Signal = TRACES


@dataclass
class Reply:
    """One scripted answer: HTTP status (or gRPC code), extra headers / retry delay, body, delay before answering."""

    status: Any = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0
    retry_info: float | None = None
    message: str = ""


class _Sink:
    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.script: list[Reply] = []
        self.lock = threading.Lock()

    def next_reply(self) -> Reply | None:
        with self.lock:
            return self.script.pop(0) if self.script else None

    def items(self, signal: Signal = TRACES) -> list[Any]:
        """Items of one signal in the requests answered with success."""
        return [item for a in self.arrivals if a.request is not None and a.signal is signal
                for rs in getattr(a.request, signal.resource_field) for ss in getattr(rs, signal.scope_field)
                for item in getattr(ss, signal.items_field)]

    def spans(self) -> list[Any]:
        return self.items(TRACES)

    def span_ids(self) -> set[bytes]:
        return {s.span_id for s in self.spans()}


class HttpSink(_Sink):
    """An OTLP/HTTP receiver on 127.0.0.1 (protobuf and JSON, gzip)."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = sink.next_reply() or Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
                json = "json" in headers.get("content-type", "")
                signal = next((s for s in SIGNALS.values() if self.path == s.http_path), TRACES)
                ok = reply.status == 200
                request = None
                if ok:
                    request = otlp_json.decode(signal.request_type, raw) if json \
                        else signal.request_type.FromString(raw)
                with sink.lock:
                    sink.arrivals.append(Arrival(time.monotonic(), headers, request, raw, signal))
                out = reply.body if reply.body is not None else (
                    otlp_json.encode(signal.response_type()) if json
                    else signal.response_type().SerializeToString())
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json" if json else "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a router killed mid-request resets its connection: expected here

        self.server = Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()



class _CountingArrivals(list):  # type: ignore[type-arg]
    """FlakySink.arrivals: counts the spans of every successful export as it is
    appended (under the sink's lock) and keeps the Arrival only if asked to."""

    def __init__(self, sink: "FlakySink", keep: bool) -> None:
        super().__init__()
        self.sink, self.keep = sink, keep

    def append(self, arrival: Arrival) -> None:
        sink = self.sink
        if arrival.request is not None and arrival.signal is TRACES:
            ids = [s.span_id for rs in arrival.request.resource_spans for ss in rs.scope_spans for s in ss.spans]
            if ids:
                first = min(ids)
                if first < sink._highest_first:
                    sink.out_of_order += 1
                sink._highest_first = max(sink._highest_first, first)
                sink.counts.update(ids)
            sink.exports += 1
        elif arrival.request is None:
            sink.refused += 1
        if self.keep:
            super().append(arrival)


class FlakySink(HttpSink):
    """An HttpSink that fails and stalls at random (seeded; safe across its
    handler threads): each export waits a delay drawn from `delay` (seconds,
    uniform), so concurrent exports complete out of order, then is answered 503
    with probability `failure_rate`, with a `Retry-After` drawn from
    `retry_after` (None: no header). `down = True` answers 503 (no Retry-After)
    to everything: an outage. A scripted Reply (`script`) still goes first.

    Span deliveries are counted as they arrive: `counts` (span id -> times
    delivered), `exports`, `refused`, `out_of_order` (exports whose lowest span
    id is below the lowest of an earlier one). keep_arrivals=False keeps no
    Arrival (memory stays flat over long runs; spans() is then empty)."""

    def __init__(self, failure_rate: float = 0.0, delay: tuple[float, float] = (0.0, 0.0),
                 retry_after: tuple[str | None, ...] = (None, "0", "1"), seed: int = 1,
                 keep_arrivals: bool = True, port: int = 0) -> None:
        self.rng = random.Random(seed)
        self.failure_rate, self.delay, self.retry_after = failure_rate, delay, retry_after
        self.down = False
        self.counts: Counter[bytes] = Counter()
        self.exports = self.refused = self.out_of_order = 0
        self._highest_first = b""
        super().__init__(port)
        self.arrivals = _CountingArrivals(self, keep_arrivals)

    def configure(self, failure_rate: float | None = None, delay: tuple[float, float] | None = None,
                  down: bool | None = None) -> None:
        with self.lock:
            if failure_rate is not None:
                self.failure_rate = failure_rate
            if delay is not None:
                self.delay = delay
            if down is not None:
                self.down = down

    def next_reply(self) -> Reply | None:
        scripted = super().next_reply()
        if scripted is not None:
            return scripted
        with self.lock:
            low, high = self.delay
            delay = self.rng.uniform(low, high) if high > 0 else 0.0
            if self.down:
                return Reply(503, body=b"outage", delay=delay)
            if self.rng.random() < self.failure_rate:
                retry_after = self.rng.choice(self.retry_after)
                return Reply(503, {} if retry_after is None else {"Retry-After": retry_after},
                             body=b"flaky", delay=delay)
            return Reply(delay=delay)

    def undelivered(self, span_ids: "set[bytes]") -> set[bytes]:
        """The span ids among these that never arrived in a successful export."""
        with self.lock:
            return {i for i in span_ids if i not in self.counts}

    def snapshot(self) -> Counter[bytes]:
        with self.lock:
            return Counter(self.counts)


class GrpcSink(_Sink):
    """An OTLP/gRPC TraceService on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)])
        for signal in SIGNALS.values():
            handler = grpc.unary_unary_rpc_method_handler(
                lambda raw, context, signal=signal: self._export(signal, raw, context))
            self.server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(signal.grpc_service, {"Export": handler}),))
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def _export(self, signal: Signal, raw: bytes, context: grpc.ServicerContext) -> bytes:
        reply = self.next_reply() or Reply(status=grpc.StatusCode.OK)
        if reply.delay:
            time.sleep(reply.delay)
        headers = {k: v for k, v in context.invocation_metadata()}
        ok = reply.status in (200, grpc.StatusCode.OK)
        with self.lock:
            self.arrivals.append(Arrival(time.monotonic(), headers,
                                         signal.request_type.FromString(raw) if ok else None, raw, signal))
        if not ok:
            if reply.retry_info is not None:
                info = error_details_pb2.RetryInfo()
                info.retry_delay.FromNanoseconds(int(reply.retry_info * 1e9))
                status = status_pb2.Status(code=reply.status.value[0], message=reply.message)
                status.details.add().Pack(info)
                context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(reply.status, reply.message)
        return reply.body if reply.body is not None else signal.response_type().SerializeToString()

    def close(self) -> None:
        self.server.stop(0)
