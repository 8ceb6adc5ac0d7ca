"""HTTP floor: the least work an OTLP/HTTP receiver on this stack can do.

A bare Starlette app on uvicorn (httptools, uvloop, no access log) whose
POST /v1/traces only parses the body and answers an empty
ExportTraceServiceResponse: protobuf bodies with upb FromString, JSON bodies
with orjson.loads (the cheapest full parse of OTLP JSON; no conversion).
GET /stats returns the count of parsed requests so the benchmark can check
the load generator's numbers against the server's.

With --store DIR it is a format floor: the least work of a file destination on top
of the parse, done before the answer, for peers.py's file rows.
  --format files    the spans of each trace, as upb serializes them, in one
                    durable file (temporary file, fdatasync, link; the directory
                    synced every 64 files) per trace and request, written by 64
                    threads: the per-trace JSON layout's
                    file per trace, without JSON
  --format objects  the body as received into one zstd stream (level 3), and an
                    object written durably every 1000 spans: Aperture's
                    compressed objects, without records (the request completing
                    an object waits for it)
Neither keeps a spool, so both do less than a router must.

Run: python bench/floor_http.py --port PORT [--store DIR --format files|objects]
(prints "floor ready" on stderr)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import itertools
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import uvicorn
import zstandard
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from otlp_router.spool.disk import fsync_dir

EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()
OBJECT_SPANS = 1000
DIRECTORY_SYNC = 64  # files linked between two syncs of the directory
parsed = 0


class Store:
    """Durable files in a directory, written by threads as the router's local store does."""

    def __init__(self, directory: Path, format: str) -> None:
        self.directory = str(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.pool = concurrent.futures.ThreadPoolExecutor(64)
        self.names = itertools.count()
        self.linked = itertools.count(1)  # next() on it is atomic under the GIL
        self.compressor = zstandard.ZstdCompressor(level=3).compressobj()
        self.compressed: list[bytes] = []
        self.spans = 0
        self.take = self.files if format == "files" else self.objects

    def _write(self, name: str, data: bytes) -> None:
        tmp = f"{self.directory}/.{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.link(tmp, f"{self.directory}/{name}")
        os.unlink(tmp)
        if next(self.linked) % DIRECTORY_SYNC == 0:  # the links durable too, as the router's store makes them
            fsync_dir(Path(self.directory))

    async def write(self, names_and_data: list[tuple[str, bytes]]) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.pool, self._write, n, d) for n, d in names_and_data))

    async def files(self, _: bytes, request: ExportTraceServiceRequest) -> None:
        traces: dict[bytes, list[bytes]] = collections.defaultdict(list)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    traces[span.trace_id].append(span.SerializeToString())
        n = next(self.names)
        await self.write([(f"{trace_id.hex()}-{n}.pb", b"".join(spans)) for trace_id, spans in traces.items()])

    async def objects(self, body: bytes, request: ExportTraceServiceRequest) -> None:
        self.compressed.append(self.compressor.compress(body))
        self.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        if self.spans >= OBJECT_SPANS:
            self.compressed.append(self.compressor.flush())
            data = b"".join(self.compressed)
            self.compressor, self.compressed, self.spans = zstandard.ZstdCompressor(level=3).compressobj(), [], 0
            await self.write([(f"{next(self.names):08d}.zst", data)])


store: Store | None = None


async def export(request: Request) -> Response:
    global parsed
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        orjson.loads(body)
        parsed += 1
        return Response(b"{}", media_type="application/json")
    message = ExportTraceServiceRequest.FromString(body)
    if store is not None:
        await store.take(body, message)
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


def serve(asgi_app: Starlette, name: str, parser: argparse.ArgumentParser | None = None,
          configure: Callable[[argparse.Namespace], None] | None = None) -> None:
    """Parse --host/--port (and `parser`'s own options, given to `configure`), bind, say
    "<name> ready" on stderr, serve until killed."""
    parser = parser or argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if configure is not None:
        configure(args)
    config = uvicorn.Config(
        asgi_app, loop="uvloop", http="httptools", access_log=False, log_level="warning", lifespan="off"
    )
    sock = listen(args.host, args.port)
    print(f"{name} ready", file=sys.stderr, flush=True)
    uvicorn.Server(config).run(sockets=[sock])


def _configure(args: argparse.Namespace) -> None:
    global store
    if args.store is not None:
        store = Store(args.store, args.format)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, help="a format floor: write what is parsed to this directory")
    parser.add_argument("--format", choices=("files", "objects"), default="files")
    serve(app, "floor", parser, _configure)


if __name__ == "__main__":
    main()
