"""Micro-benchmark of the OTLP JSON codec against upb's binary protobuf codec.

Payload: one ExportTraceServiceRequest of 100 spans, each with ids, times, kind, status,
10 attributes (5 string, 5 int, semantic-convention style) and 2 events with one attribute.
Prints spans/s for JSON decode and encode, for orjson alone on the same JSON (the floor any
orjson-based codec pays), and for upb parse/serialize of the same request, all in one run.

    python bench/codec.py [--rounds N] [--min-time SECONDS]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
from google.protobuf.internal import api_implementation
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from otlp_router.model.otlp_json import decode, encode  # noqa: E402
from bench.harness import seconds_per_call  # noqa: E402

SPANS = 100


def attribute(key: str, value: str | int) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    return KeyValue(key=key, value=AnyValue(int_value=value))


def payload(spans: int = SPANS) -> ExportTraceServiceRequest:
    rnd = random.Random(7)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        [attribute("service.name", "checkout"), attribute("host.name", "web-1.internal")]
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.flask"
    scope_spans.scope.version = "0.45b0"
    trace_id = rnd.randbytes(16)
    for i in range(spans):
        start = 1_700_000_000_000_000_000 + i * 1_000_000
        span = scope_spans.spans.add(
            trace_id=trace_id,
            span_id=rnd.randbytes(8),
            parent_span_id=rnd.randbytes(8),
            name=f"GET /api/items/{i}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=start + rnd.randrange(10**9),
            status=Status(code=Status.STATUS_CODE_OK),
        )
        span.attributes.extend(
            [
                attribute("http.request.method", "GET"),
                attribute("url.path", f"/api/items/{i}"),
                attribute("server.address", "api.internal"),
                attribute("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"),
                attribute("db.system", "postgresql"),
                attribute("http.response.status_code", rnd.choice([200, 200, 200, 404, 500])),
                attribute("server.port", 443),
                attribute("network.peer.port", rnd.randrange(1024, 65536)),
                attribute("http.response.body.size", rnd.randrange(10**6)),
                attribute("thread.id", rnd.randrange(1, 10**5)),
            ]
        )
        for e in range(2):
            event = span.events.add(time_unix_nano=start + e * 1000, name=f"event {e}")
            event.attributes.append(attribute("event.detail", "cache miss" if e else "retry"))
    return request


def spans_per_second(fn: Callable[[], object], rounds: int, min_time: float) -> float:
    return SPANS / seconds_per_call(fn, min_time, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timings per measurement; the best is kept")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timing")
    args = parser.parse_args()
    assert api_implementation.Type() == "upb", f"protobuf backend is {api_implementation.Type()}, not upb"

    request = payload()
    body = encode(request)
    binary = request.SerializeToString()
    assert decode(ExportTraceServiceRequest, body) == request
    parsed = orjson.loads(body)
    print(
        f"payload: {SPANS} spans, {len(body)} bytes of JSON, {len(binary)} bytes of protobuf; "
        f"python {sys.version.split()[0]}, protobuf backend {api_implementation.Type()}"
    )

    def measure(fn: Callable[[], object]) -> float:
        return spans_per_second(fn, args.rounds, args.min_time)

    rates = {
        "json decode": measure(lambda: decode(ExportTraceServiceRequest, body)),
        "json encode": measure(lambda: encode(request)),
        "orjson.loads only": measure(lambda: orjson.loads(body)),
        "orjson.dumps only": measure(lambda: orjson.dumps(parsed)),
        "upb parse": measure(lambda: ExportTraceServiceRequest.FromString(binary)),
        "upb serialize": measure(request.SerializeToString),
    }
    for name, rate in rates.items():
        print(f"{name:18s} {rate:>12,.0f} spans/s")
    print(f"decode / upb parse      {rates['json decode'] / rates['upb parse']:.3f}")
    print(f"encode / upb serialize  {rates['json encode'] / rates['upb serialize']:.3f}")
    print(f"decode / orjson.loads   {rates['json decode'] / rates['orjson.loads only']:.3f}")
    print(f"encode / orjson.dumps   {rates['json encode'] / rates['orjson.dumps only']:.3f}")


if __name__ == "__main__":
    main()
