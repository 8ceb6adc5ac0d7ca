"""Load generators: wrk for OTLP/HTTP, h2load for OTLP/gRPC (unary over h2c).

Both are C programs: one core of either pushes far more requests than a
Python server on the other core can take, which each run shows by reporting
the load generator's own CPU use next to the server's.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from .procs import BenchError, Children, pinned
else:
    from procs import BenchError, Children, pinned

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"
H2LOAD_REQUESTS = (
    r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, "
    r"\d+ failed, (\d+) errored, (\d+) timeout"
)


@dataclass(frozen=True)
class LoadResult:
    ok: int  # HTTP 2xx, or gRPC grpc-status 0
    failed: int  # answered, but not with success
    socket_errors: int  # connect/read/write errors and timeouts
    seconds: float  # measured duration
    cpu_seconds: float  # the load generator's own CPU use


def _run(
    children: Children, argv: list[str], cpu: int | None, timeout: float, env: dict[str, str] | None
) -> tuple[str, float]:
    """Run a load generator to completion; return its output and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = children.spawn(pinned(argv, cpu), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{argv[0]} still running after {timeout:.0f}s; stopped it") from None
    finally:
        children.stop(proc)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"{argv[0]} exited with {proc.returncode}:\n{text}")
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return text, cpu_seconds


def wrk_post(
    children: Children,
    url: str,
    body: Path,
    content_type: str,
    seconds: int,
    connections: int,
    threads: int,
    cpu: int | None,
    script: Path = WRK_SCRIPT,
) -> LoadResult:
    """POST `body` over keep-alive connections for `seconds`. Another `script`
    must read the same environment and print the same WRK_JSON summary."""
    env = {**os.environ, "WRK_BODY_FILE": str(body), "WRK_CONTENT_TYPE": content_type}
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    text, cpu_seconds = _run(children, argv, cpu, seconds + 60, env)
    match = re.search(r"^WRK_JSON (\{.*\})$", text, re.MULTILINE)
    if not match:
        raise BenchError(f"no summary from wrk:\n{text}")
    summary = json.loads(match.group(1))
    # summary["status"] counts answers with status > 399; all OTLP errors are.
    return LoadResult(
        ok=summary["requests"] - summary["status"],
        failed=summary["status"],
        socket_errors=summary["connect"] + summary["read"] + summary["write"] + summary["timeout"],
        seconds=summary["duration_us"] / 1e6,
        cpu_seconds=cpu_seconds,
    )


def _grab_float(text: str, pattern: str) -> list[float]:
    match = re.search(pattern, text)
    if not match:
        raise BenchError(f"unexpected h2load output (no match for {pattern!r}):\n{text}")
    return [float(group) for group in match.groups()]


def _grab(text: str, pattern: str) -> list[int]:
    return [int(number) for number in _grab_float(text, pattern)]


def h2load_grpc(
    children: Children,
    url: str,
    frame: Path,
    response_frame_bytes: int,
    cpu: int | None,
    *,
    seconds: int | None = None,
    requests: int | None = None,
    clients: int = 8,
    streams: int = 32,
) -> LoadResult:
    """Unary gRPC calls over h2c for `seconds`, or `requests` calls.

    h2load sees HTTP statuses only, and a gRPC error is HTTP 200 too, with
    grpc-status in trailers. But a failed unary call carries no message (the
    trailers-only form), while a successful one carries exactly one message of
    `response_frame_bytes` DATA bytes; so successes = DATA bytes / that size.
    The floor cross-checks this against its own count of answered calls, and
    the bench checks that calls the floor rejects are counted as failures.
    """
    limit = ["-D", str(seconds)] if seconds is not None else ["-n", str(requests)]
    argv = [
        "h2load", *limit, "-t", "1", "-c", str(clients), "-m", str(streams),
        "-d", str(frame), "-H", "content-type: application/grpc", "-H", "te: trailers", url,
    ]  # fmt: skip
    text, cpu_seconds = _run(children, argv, cpu, (seconds or 0) + 60, None)
    done, errored, timeouts = _grab(text, H2LOAD_REQUESTS)
    (http_2xx,) = _grab(text, r"status codes: (\d+) 2xx")
    (data_bytes,) = _grab(text, r"traffic: .* \((\d+)\) data")
    (rate,) = _grab_float(text, r"finished in [^,]+, ([\d.]+) req/s")
    ok = min(http_2xx, data_bytes // response_frame_bytes)
    return LoadResult(
        ok=ok,
        failed=done - ok,
        socket_errors=errored + timeouts,
        # With -D, h2load reports counts for the -D window only.
        seconds=float(seconds) if seconds is not None else done / max(rate, 1e-9),
        cpu_seconds=cpu_seconds,
    )
