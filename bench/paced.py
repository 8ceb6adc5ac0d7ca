"""Paced (open-loop) OTLP/HTTP client: acknowledgement latency at a set rate.

wrk is closed-loop: a connection sends its next request only after the last
answer, so while the server stalls fewer requests go out and the stall is
under-counted ("coordinated omission"); wrk2, which paces, is not in Debian.
This client sends on a fixed schedule, `--rate` requests per second, whatever
the answers do, and times every request from its *scheduled* send time: time
spent waiting for a free connection, or for this client to catch up, counts
as latency too, so the figures can only err high.

Connections are opened as needed up to `--max-connections` (keep-alive,
one request in flight each). A warm-up at the same rate runs first and is not
recorded. Prints one line: PACED_JSON {...} with the achieved rate and
latency percentiles in milliseconds.

    python bench/paced.py --url http://127.0.0.1:4318/v1/traces --body request.pb \\
        --content-type application/x-protobuf --rate 1500 --duration 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight;
    reads just enough of each response (status, Content-Length) to find its end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        length = CONTENT_LENGTH.search(head)
        if length is None:  # uvicorn always sends it for these answers; anything else is a bug here
            self._finish(exception=ConnectionError(f"response without Content-Length: {head[:200]!r}"))
            return
        size = end + 4 + int(length.group(1))
        if len(self.buffer) >= size:
            del self.buffer[:size]
            self._finish(status=int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exception=ConnectionError(f"connection lost: {exc}"))

    def _finish(self, status: int = 0, exception: Exception | None = None) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            if exception is not None:
                waiter.set_exception(exception)
            else:
                waiter.set_result(status)

    async def send(self, request: bytes) -> int:
        assert self.transport is not None and self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0  # non-2xx answers
    failures: int = 0  # connection errors


class Client:
    def __init__(self, host: str, port: int, request: bytes, max_connections: int) -> None:
        self.host, self.port, self.request = host, port, request
        self.max_connections = max_connections
        self.idle: asyncio.Queue[Connection] = asyncio.Queue()
        self.opened = 0

    async def _connection(self) -> Connection:
        if self.idle.empty() and self.opened < self.max_connections:
            self.opened += 1
            try:
                _, protocol = await asyncio.get_running_loop().create_connection(Connection, self.host, self.port)
            except OSError:
                self.opened -= 1
                raise
            return protocol
        return await self.idle.get()

    async def one(self, scheduled: float, tally: Tally | None) -> None:
        """Send one request; `tally` None during the warm-up."""
        try:
            connection = await self._connection()
            status = await connection.send(self.request)
        except (OSError, ConnectionError):
            if tally is not None:
                tally.failures += 1
            return
        self.idle.put_nowait(connection)
        if tally is None:
            return
        if 200 <= status < 300:
            tally.latencies.append(time.perf_counter() - scheduled)
        else:
            tally.errors += 1

    async def run(self, rate: float, seconds: float, tally: Tally | None) -> float:
        """Send at `rate` for `seconds`, wait for the answers; returns the
        seconds the schedule took (longer than `seconds` if the client lagged)."""
        count = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for i in range(count):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(scheduled, tally)))
        elapsed = time.perf_counter() - start
        await asyncio.gather(*tasks)
        return max(elapsed, seconds)


def http_request(url: str, body: bytes, content_type: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return parts.hostname or "127.0.0.1", parts.port or 80, head.encode() + body


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def summary(tally: Tally, seconds: float, rate: float, connections: int) -> dict[str, float]:
    ordered = sorted(tally.latencies)
    ms = {f"p{label}_ms": percentile(ordered, q) * 1e3 for label, q in
          (("50", 0.50), ("90", 0.90), ("99", 0.99), ("999", 0.999))}  # fmt: skip
    return {
        "target_rate": rate,
        "ok": len(ordered),
        "ok_per_s": len(ordered) / seconds,
        "errors": tally.errors,
        "failures": tally.failures,
        "connections": connections,
        **ms,
        "max_ms": (ordered[-1] if ordered else math.nan) * 1e3,
    }


async def main_async(args: argparse.Namespace) -> dict[str, float]:
    host, port, request = http_request(args.url, Path(args.body).read_bytes(), args.content_type)
    client = Client(host, port, request, args.max_connections)
    await client.run(args.rate, args.warmup, None)
    tally = Tally()
    seconds = await client.run(args.rate, args.duration, tally)
    return summary(tally, seconds, args.rate, client.opened)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="file holding the request body")
    parser.add_argument("--content-type", default="application/x-protobuf")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds first")
    parser.add_argument("--max-connections", type=int, default=64)
    args = parser.parse_args()
    try:
        import uvloop  # the client's own overhead counts as latency: keep it small

        uvloop.install()
    except ImportError:
        pass
    print("PACED_JSON " + json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
