"""HTTP floor: the least work an OTLP/HTTP receiver on this stack can do.

A bare Starlette app on uvicorn (httptools, uvloop, no access log) whose
POST /v1/traces only parses the body and answers an empty
ExportTraceServiceResponse: protobuf bodies with upb FromString, JSON bodies
with orjson.loads (the cheapest full parse of OTLP JSON; no conversion).
GET /stats returns the count of parsed requests so the benchmark can check
the load generator's numbers against the server's.

Run: python bench/floor_http.py --port PORT   (prints "floor ready" on stderr)
"""

from __future__ import annotations

import argparse
import socket
import sys

import orjson
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()
parsed = 0


async def export(request: Request) -> Response:
    global parsed
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        orjson.loads(body)
        parsed += 1
        return Response(b"{}", media_type="application/json")
    ExportTraceServiceRequest.FromString(body)
    parsed += 1
    return Response(EMPTY_RESPONSE, media_type="application/x-protobuf")


async def stats(_: Request) -> Response:
    return JSONResponse({"ok": parsed})


app = Starlette(routes=[Route("/v1/traces", export, methods=["POST"]), Route("/stats", stats)])


def listen(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts so "ready" is true the moment it is printed:
    connections made before the loop runs wait in the backlog."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def serve(asgi_app: Starlette, name: str) -> None:
    """Parse --host/--port, bind, say "<name> ready" on stderr, serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(
        asgi_app, loop="uvloop", http="httptools", access_log=False, log_level="warning", lifespan="off"
    )
    sock = listen(args.host, args.port)
    print(f"{name} ready", file=sys.stderr, flush=True)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    serve(app, "floor")


if __name__ == "__main__":
    main()
