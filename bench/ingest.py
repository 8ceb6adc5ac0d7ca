"""Ingest benchmark: spans/s the router accepts, against bare floors.

Sends one pre-built ExportTraceServiceRequest (100 spans x 10 attributes) as
OTLP/HTTP protobuf, OTLP/HTTP JSON and OTLP/gRPC, for a fixed duration after a
warm-up, and compares the router with two floors measured in the same run:
a bare Starlette/uvicorn app and a bare grpc.aio server that only parse the
request. Server on one core, load generator (wrk, h2load) on the other.

    python bench/ingest.py                      # floors + router (discard)
    python bench/ingest.py --only floors        # floors alone
    python bench/ingest.py --dest discard,file  # router rows for both sinks
    python bench/ingest.py --json               # machine-readable on stdout

Not a test: nothing in tests/ imports it. bench/run_all.py can call
`run(parse_args([...]))` and read the returned Report.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__:
    from . import loadgen, payloads
    from .procs import (
        BenchError,
        Children,
        Cpus,
        Server,
        choose_cpus,
        core_busy_seconds,
        ensure_tool,
        exit_on_signals,
        free_port,
        group_cpu_seconds,
        idle_check,
        log,
        start_server,
    )
else:
    import loadgen
    import payloads
    from procs import (
        BenchError,
        Children,
        Cpus,
        Server,
        choose_cpus,
        core_busy_seconds,
        ensure_tool,
        exit_on_signals,
        free_port,
        group_cpu_seconds,
        idle_check,
        log,
        start_server,
    )

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
GRPC_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
GRPC_FLOOR_STATS = "/bench.Floor/Stats"
ROUTER_READY = "otlp-router ready"
FLOOR_READY = "floor ready"
CONTENT_TYPES = {"protobuf": "application/x-protobuf", "json": "application/json"}
DESTINATIONS = ("discard", "file")
AUTO_CONNECTIONS = (4, 16, 64)
# Loopback softirq work lands on the server core too (~5%): above this share,
# something else competed with the server and its row reads low.
OTHER_CPU_WARNING = 0.10
SATURATED = 0.90  # server CPU share below which it was waiting, not working


@dataclass(frozen=True)
class Options:
    only: str = "all"  # all | floors | router
    dests: tuple[str, ...] = ("discard",)
    duration: int = 10
    warmup: int = 2
    connections: int | None = None  # wrk keep-alive connections; None: pick per case
    grpc_floor: str = "aio"  # aio | sync, see floor_grpc.py
    grpc_clients: int = 8  # h2load connections
    grpc_streams: int = 32  # concurrent streams per h2load connection
    ready_timeout: float = 30.0
    keep: bool = False
    json: bool = False


@dataclass(frozen=True)
class Case:
    target: str  # floor-http | floor-grpc | router/<dest>
    protocol: str  # http | grpc
    encoding: str  # protobuf | json
    signal: str = "traces"  # HTTP path /v1/<signal>; bench/pipeline.py posts logs and metrics too

    @property
    def name(self) -> str:
        name = f"{self.target} {'grpc' if self.protocol == 'grpc' else 'http/' + self.encoding}"
        return name if self.signal == "traces" else f"{name} {self.signal}"


@dataclass
class CaseResult:
    case: str
    target: str
    protocol: str
    encoding: str
    spans_per_s: float
    requests_per_s: float
    ok_requests: int
    errors: int  # answered, not successfully (non-2xx, grpc-status != 0)
    socket_errors: int
    seconds: float
    connections: int  # requests in flight: wrk connections, or h2load clients x streams
    server_cpu: float  # cores used by the server while measured (1.0 = saturated)
    other_cpu_server: float  # share of the server's core that went to other processes
    other_cpu_loadgen: float  # share of the load generator's core that did
    loadgen_cpu: float  # cores used by the load generator while measured
    ratio: float | None = None  # to the floor of the same protocol, same run
    server_count: int | None = None  # successes the floor itself counted
    note: str = ""


@dataclass
class Report:
    options: Options
    spans_per_request: int
    payload_bytes: dict[str, int]
    cpus: Cpus
    results: list[CaseResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Bench:
    """What every case needs: options, children, pinning, payload files."""

    options: Options
    children: Children
    cpus: Cpus
    workdir: Path
    body: dict[str, Path]  # encoding -> file
    payloads: payloads.Payloads
    failures: list[str] = field(default_factory=list)
    # A wrk script other than wrk_post.lua (bench/pipeline.py: new trace ids per request).
    wrk_script: Path | None = None


# --- probes -----------------------------------------------------------------


def http_post(url: str, body: bytes, content_type: str) -> bytes:
    """One request before the load, so a broken server fails loudly with its
    own error message instead of as a row of zero throughput."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        raise BenchError(f"POST {url} ({content_type}) -> {error.code}: {error.read()[:500]!r}") from None
    except OSError as error:
        raise BenchError(f"POST {url} ({content_type}) failed: {error}") from None


def grpc_call(port: int, method: str, body: bytes) -> bytes:
    """One raw-bytes unary call; returns the response message bytes."""
    import grpc  # only the gRPC cases need it

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return channel.unary_unary(method)(body, timeout=10)
        except grpc.RpcError as error:
            raise BenchError(f"gRPC {method} -> {error.code()}: {error.details()}") from None


def http_floor_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
        return int(json.load(response)["ok"])


def grpc_floor_count(port: int) -> int:
    return int(json.loads(grpc_call(port, GRPC_FLOOR_STATS, b""))["ok"])


# --- one case ---------------------------------------------------------------


def run_load(
    bench: Bench, server: Server, case: Case, seconds: int, response_frame: int, connections: int
) -> loadgen.LoadResult:
    opts, cpu = bench.options, bench.cpus.loadgen
    if case.protocol == "grpc":
        url = f"http://127.0.0.1:{server.ports['grpc']}{GRPC_EXPORT}"
        return loadgen.h2load_grpc(
            bench.children, url, bench.body["grpc"], response_frame, cpu,
            seconds=seconds, clients=opts.grpc_clients, streams=opts.grpc_streams,
        )  # fmt: skip
    url = f"http://127.0.0.1:{server.ports['http']}/v1/{case.signal}"
    body, content_type = bench.body[case.encoding], CONTENT_TYPES[case.encoding]
    script = bench.wrk_script or loadgen.WRK_SCRIPT
    return loadgen.wrk_post(bench.children, url, body, content_type, seconds, connections, 1, cpu, script)


def warm_up(bench: Bench, server: Server, case: Case, response_frame: int) -> int:
    """Warm up; return the number of connections (gRPC: streams) to measure with.

    With --connections auto, HTTP cases then try each of AUTO_CONNECTIONS for
    a second and keep the fastest: the uvicorn floor peaks at 4 connections,
    while a server that waits on disk needs more in flight to fill its core.
    """
    opts = bench.options
    if case.protocol == "grpc":
        run_load(bench, server, case, opts.warmup, response_frame, 0)
        return opts.grpc_clients * opts.grpc_streams
    first = opts.connections or AUTO_CONNECTIONS[0]
    run_load(bench, server, case, opts.warmup, response_frame, first)
    if opts.connections:
        return opts.connections
    trials = {n: run_load(bench, server, case, 1, response_frame, n).ok for n in AUTO_CONNECTIONS}
    return max(trials, key=lambda n: trials[n])


def preflight(bench: Bench, server: Server, case: Case, tries: int = 5) -> int:
    """Check that a request succeeds; return the gRPC response frame size
    (5-byte prefix + message), which h2load_grpc needs to count successes.
    A few tries: a server may still shed load left over from the last case."""
    for _ in range(tries - 1):
        try:
            return probe(bench, server, case)
        except BenchError:
            time.sleep(0.5)
    return probe(bench, server, case)


def probe(bench: Bench, server: Server, case: Case) -> int:
    if case.protocol == "grpc":
        return 5 + len(grpc_call(server.ports["grpc"], GRPC_EXPORT, bench.payloads.protobuf))
    body = bench.payloads.protobuf if case.encoding == "protobuf" else bench.payloads.json
    http_post(f"http://127.0.0.1:{server.ports['http']}/v1/{case.signal}", body, CONTENT_TYPES[case.encoding])
    return 0


def measure(
    bench: Bench,
    server: Server,
    case: Case,
    counter: Callable[[], int] | None,
    window: Callable[[bool], None] | None = None,
) -> CaseResult:
    """Warm up, then measure; `counter` reads a floor's own success count.
    `window(True)` / `window(False)` run right before / after the measured
    load (bench/harness.py reads the router's counters there)."""
    log(f"  {case.name}: warm-up {bench.options.warmup}s, measure {bench.options.duration}s")
    response_frame = preflight(bench, server, case)
    connections = warm_up(bench, server, case, response_frame)
    if window:
        window(True)
    # The warm-up's last answers may still be on their way: counted once they are in.
    counted_before = settled(counter) if counter else 0
    server_before = group_cpu_seconds(server.proc.pid)
    cores_before = core_busy_seconds(bench.cpus.server), core_busy_seconds(bench.cpus.loadgen)
    load = run_load(bench, server, case, bench.options.duration, response_frame, connections)
    server_cpu = group_cpu_seconds(server.proc.pid) - server_before
    server_core = core_busy_seconds(bench.cpus.server) - cores_before[0]
    loadgen_core = core_busy_seconds(bench.cpus.loadgen) - cores_before[1]
    if window:
        window(False)
    counted = settled(counter) - counted_before if counter else None
    return CaseResult(
        case=case.name,
        target=case.target,
        protocol=case.protocol,
        encoding=case.encoding,
        spans_per_s=load.ok * bench.payloads.spans_per_request / load.seconds,
        requests_per_s=load.ok / load.seconds,
        ok_requests=load.ok,
        errors=load.failed,
        socket_errors=load.socket_errors,
        seconds=load.seconds,
        connections=connections,
        server_cpu=server_cpu / load.seconds,
        other_cpu_server=max(0.0, server_core - server_cpu) / load.seconds,
        other_cpu_loadgen=max(0.0, loadgen_core - load.cpu_seconds) / load.seconds,
        loadgen_cpu=load.cpu_seconds / load.seconds,
        server_count=counted,
        note=count_check(load.ok, counted, connections),
    )


def settled(counter: Callable[[], int], quiet: float = 0.1, limit: float = 3.0) -> int:
    """A floor's count once it holds still for `quiet` seconds (at most `limit`): the answers
    to requests a load generator left in flight when it stopped are counted on one side of a
    window, not on both."""
    deadline = time.monotonic() + limit
    last = counter()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = counter()
        if now == last:
            break
        last = now
    return last


def count_check(ok: int, counted: int | None, in_flight: int) -> str:
    """The floor counts what it answered; the load generator may miss only the
    answers still in flight when its clock stopped."""
    if counted is None:
        return ""
    if ok <= counted <= ok + in_flight:
        return "count verified"
    return f"COUNT MISMATCH: server answered {counted}, load generator saw {ok}"


# --- targets ----------------------------------------------------------------


def start_floor(bench: Bench, kind: str, extra_args: Sequence[str] = ()) -> Server:
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / f"floor_{kind}.py"), "--port", str(port), *extra_args]
    return start_server(
        bench.children, f"floor-{kind}", argv, {kind: port}, bench.workdir / f"floor-{kind}.log",
        bench.cpus.server, FLOOR_READY, bench.options.ready_timeout,
    )  # fmt: skip


def check_grpc_failures_counted(bench: Bench, server: Server) -> None:
    """Prove on this machine that h2load_grpc counts a grpc-status != 0 call
    (HTTP 200 all the same) as a failure: the floor rejects a frame that is
    not a valid protobuf, so none of these calls may count as a success."""
    calls = 200
    bad_frame = bench.workdir / "invalid.grpc"
    bad_frame.write_bytes(payloads.grpc_frame(b"\xff" * 5))
    url = f"http://127.0.0.1:{server.ports['grpc']}{GRPC_EXPORT}"
    result = loadgen.h2load_grpc(
        bench.children, url, bad_frame, 5, bench.cpus.loadgen, requests=calls, clients=2, streams=4
    )
    if result.ok != 0 or result.failed != calls:
        raise BenchError(f"h2load_grpc miscounts gRPC errors: {result}")


def start_grpc_floor(bench: Bench) -> Server:
    server = start_floor(bench, "grpc", ["--impl", bench.options.grpc_floor])
    try:
        check_grpc_failures_counted(bench, server)
    except BaseException:
        bench.children.stop(server.proc)
        raise
    return server


def router_config(directory: Path, http_port: int, grpc_port: int, dest: str) -> Path:
    """The smallest config that routes everything to one destination.
    Paths are written as JSON strings, which YAML reads as plain strings."""
    if dest == "file":
        sink = f"{{type: file, dir: {json.dumps(str(directory / 'out'))}, format: otlp_json}}"
    else:
        sink = "{type: discard}"
    text = f"""\
receivers:
  otlp:
    http: {{endpoint: 127.0.0.1:{http_port}}}
    grpc: {{endpoint: 127.0.0.1:{grpc_port}}}
spool: {{dir: {json.dumps(str(directory / "spool"))}}}
routes:
  - name: all
    destinations: [sink]
destinations:
  sink: {sink}
"""
    path = directory / "router.yaml"
    path.write_text(text)
    return path


def start_router(bench: Bench, dest: str) -> Server:
    directory = bench.workdir / f"router-{dest}"
    directory.mkdir()
    ports = {"http": free_port(), "grpc": free_port()}
    config = router_config(directory, ports["http"], ports["grpc"], dest)
    # Run the checkout's package even when it is not installed.
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    argv = [sys.executable, "-m", "otlp_router", "run", "-c", str(config)]
    return start_server(
        bench.children, f"router/{dest}", argv, ports, directory / "router.log",
        bench.cpus.server, ROUTER_READY, bench.options.ready_timeout, cwd=REPO_ROOT, env=env,
    )  # fmt: skip


def bench_target(
    bench: Bench, start: Callable[[], Server], cases: Sequence[Case], counter: Callable[[Server], int] | None
) -> list[CaseResult]:
    """Start a server, run its cases one after another, always stop it.
    A failed case is recorded and the next one still runs."""
    server = start()
    log(f"{server.name} ready on {server.ports}")
    results = []
    try:
        for case in cases:
            try:
                result = measure(bench, server, case, (lambda: counter(server)) if counter else None)
            except BenchError as error:
                log(f"  {case.name} FAILED: {error}")
                bench.failures.append(f"{case.name}: {error}")
                continue
            results.append(result)
            log(f"  -> {result.spans_per_s:,.0f} spans/s, errors {result.errors}, {result.note}")
        died = server.proc.poll()  # before our SIGTERM: it died under load
    finally:
        bench.children.stop(server.proc)
    if died is not None:
        tail = server.log_text()[-3000:]
        bench.failures.append(f"{server.name} died with code {died}; its output ends:\n{tail}")
    return results


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def router_cases(dest: str) -> list[Case]:
    target = f"router/{dest}"
    return [Case(target, "http", "protobuf"), Case(target, "http", "json"), Case(target, "grpc", "protobuf")]


def run_router(bench: Bench, dest: str) -> list[CaseResult]:
    results = bench_target(bench, functools.partial(start_router, bench, dest), router_cases(dest), None)
    out = bench.workdir / f"router-{dest}" / "out"
    if dest == "file":
        # Show that the sink really wrote, then free the disk at once.
        written = directory_bytes(out)
        for result in results:
            result.note = f"{written / 1e6:,.0f} MB written by all 3 cases"
        shutil.rmtree(out, ignore_errors=True)
    return results


def run_http_floor(bench: Bench) -> list[CaseResult]:
    cases = [Case("floor-http", "http", "protobuf"), Case("floor-http", "http", "json")]
    start = functools.partial(start_floor, bench, "http")
    return bench_target(bench, start, cases, lambda server: http_floor_count(server.ports["http"]))


def run_grpc_floor(bench: Bench) -> list[CaseResult]:
    cases = [Case("floor-grpc", "grpc", "protobuf")]
    start = functools.partial(start_grpc_floor, bench)
    return bench_target(bench, start, cases, lambda server: grpc_floor_count(server.ports["grpc"]))


def add_ratios(results: list[CaseResult]) -> None:
    """HTTP rows against the HTTP floor parsing protobuf, gRPC rows against
    the gRPC floor: the cost of the router over the least possible work."""
    floors = {
        "http": next((r for r in results if r.case == "floor-http http/protobuf"), None),
        "grpc": next((r for r in results if r.case == "floor-grpc grpc"), None),
    }
    for result in results:
        floor = floors[result.protocol]
        if floor is not None and floor.spans_per_s > 0:
            result.ratio = result.spans_per_s / floor.spans_per_s


# --- whole run --------------------------------------------------------------


def prepare(bench_dir: Path) -> tuple[payloads.Payloads, dict[str, Path]]:
    ensure_tool("wrk", "wrk")
    ensure_tool("h2load", "nghttp2-client")
    built = payloads.build_payloads()
    return built, payloads.write_payloads(built, bench_dir)


def run(options: Options) -> Report:
    """Run every selected target; a target that fails is recorded, the rest go on."""
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="otlp-ingest-bench-"))
    try:
        built, bodies = prepare(workdir)
        bench = Bench(options, children, choose_cpus(workdir), workdir, bodies, built)
        busy = idle_check(bench.cpus)
        if busy > OTHER_CPU_WARNING:
            log(f"warning: the bench cores are already {busy:.0%} busy before any load; rows will read low")
        report = Report(
            options, built.spans_per_request,
            {"protobuf": len(built.protobuf), "json": len(built.json)}, bench.cpus,
        )  # fmt: skip
        steps: list[tuple[str, Callable[[], list[CaseResult]]]] = []
        if options.only in ("all", "floors"):
            steps.append(("floor-http", lambda: run_http_floor(bench)))
            steps.append(("floor-grpc", lambda: run_grpc_floor(bench)))
        if options.only in ("all", "router"):
            steps.extend((f"router/{d}", lambda d=d: run_router(bench, d)) for d in options.dests)
        for name, step in steps:
            try:
                report.results.extend(step())
            except BenchError as error:
                log(f"{name} FAILED: {error}")
                bench.failures.append(f"{name}: {error}")
        report.failures = bench.failures
        add_ratios(report.results)
        return report
    finally:
        children.stop_all()
        if options.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# --- output -----------------------------------------------------------------


def row_notes(r: CaseResult) -> str:
    notes = [r.note] if r.note else []
    if r.socket_errors:
        notes.append(f"{r.socket_errors} socket errors")
    if max(r.other_cpu_server, r.other_cpu_loadgen) > OTHER_CPU_WARNING:
        notes.append(
            f"NOISY: other processes took {r.other_cpu_server:.0%} of the server core, "
            f"{r.other_cpu_loadgen:.0%} of the load core"
        )
    elif r.server_cpu < SATURATED:
        notes.append("server not saturated")
    return "; ".join(notes)


def format_table(report: Report) -> str:
    opts = report.options
    lines = [
        f"ingest: {report.spans_per_request} spans/request, protobuf {report.payload_bytes['protobuf']:,} B, "
        f"json {report.payload_bytes['json']:,} B; {opts.duration}s per case after {opts.warmup}s warm-up; "
        f"server cpu {report.cpus.server}, load generator cpu {report.cpus.loadgen}",
        f"{'case':<28} {'spans/s':>11} {'ratio':>6} {'errors':>7} {'conns':>5} "
        f"{'srv cpu':>8} {'gen cpu':>8}  note",
    ]
    for r in report.results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        lines.append(
            f"{r.case:<28} {r.spans_per_s:>11,.0f} {ratio:>6} {r.errors:>7} {r.connections:>5} "
            f"{r.server_cpu:>7.0%} {r.loadgen_cpu:>7.0%}  {row_notes(r)}"
        )
    lines.append(
        "ratio: HTTP rows / floor-http http/protobuf, gRPC rows / floor-grpc grpc; "
        "errors: answered with HTTP status > 399 or grpc-status != 0; conns: requests in flight"
    )
    lines += [f"FAILED {failure.splitlines()[0]}" for failure in report.failures]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=("all", "floors", "router"), default="all")
    parser.add_argument("--dest", default="discard", help="router sinks, comma separated: discard,file")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per case (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds per case (default 2)")
    parser.add_argument(
        "--connections",
        default="auto",
        help="wrk keep-alive connections, or auto (default): fastest of 4/16/64",
    )
    parser.add_argument("--grpc-clients", type=int, default=8, help="h2load connections")
    parser.add_argument("--grpc-streams", type=int, default=32, help="h2load streams per connection")
    parser.add_argument("--grpc-floor", choices=("aio", "sync"), default="aio", help="default aio")
    parser.add_argument("--ready-timeout", type=float, default=30.0, help="seconds to wait for a server")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, server logs)")
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    args = parser.parse_args(argv)
    if args.connections != "auto" and not args.connections.isdigit():
        parser.error(f"--connections takes a number or auto; got {args.connections!r}")
    dests = tuple(d.strip() for d in args.dest.split(",") if d.strip())
    unknown = set(dests) - set(DESTINATIONS)
    if unknown or not dests:
        parser.error(f"--dest takes {', '.join(DESTINATIONS)}; got {args.dest!r}")
    if args.duration < 1 or args.warmup < 1:
        parser.error("--duration and --warmup are whole seconds, at least 1")
    return Options(
        only=args.only, dests=dests, duration=args.duration, warmup=args.warmup,
        connections=None if args.connections == "auto" else int(args.connections), grpc_floor=args.grpc_floor,
        grpc_clients=args.grpc_clients, grpc_streams=args.grpc_streams,
        ready_timeout=args.ready_timeout, keep=args.keep, json=args.json,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    exit_on_signals()
    started = time.monotonic()
    try:
        report = run(options)
    except BenchError as error:
        log(f"ingest benchmark failed: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; children stopped")
        return 130
    log(f"done in {time.monotonic() - started:.0f}s")
    print(json.dumps(report.to_dict(), indent=2) if options.json else format_table(report))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
