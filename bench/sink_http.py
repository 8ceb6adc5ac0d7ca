"""Forwarding sink: the downstream OTLP/HTTP backend of the forwarding cases.

Bare Starlette on uvicorn like floor_http.py (httptools, uvloop, no access
log), so the sink costs as little as a Python receiver can: POST /v1/traces
inflates gzip bodies, parses protobuf with upb, counts spans and answers an
empty ExportTraceServiceResponse. GET /stats returns {"requests", "spans"}, so
the benchmark can check that every span the router acknowledged arrived.

Run: python bench/sink_http.py --port PORT   (prints "sink ready" on stderr)
"""

from __future__ import annotations

import zlib

from floor_http import EMPTY_RESPONSE, serve  # run as a script: bench/ is on sys.path
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

GZIP_WINDOW = 16 + zlib.MAX_WBITS  # zlib.decompress reads the gzip header with this
counts = {"requests": 0, "spans": 0}


def span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


async def export(request: Request) -> Response:
    body = await request.body()
    if request.headers.get("content-encoding") == "gzip":
        body = zlib.decompress(body, GZIP_WINDOW)
    counts["spans"] += span_count(ExportTraceServiceRequest.FromString(body))
    counts["requests"] += 1
    return Response(EMPTY_RESPONSE, media_type="application/x-protobuf")


async def stats(_: Request) -> Response:
    return JSONResponse(counts)


app = Starlette(routes=[Route("/v1/traces", export, methods=["POST"]), Route("/stats", stats)])


def main() -> None:
    serve(app, "sink")


if __name__ == "__main__":
    main()
