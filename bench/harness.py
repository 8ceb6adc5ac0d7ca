"""Shared by bench/pipeline.py and bench/run_all.py: routers started from a
config text, one case measured with the router's CPU and peak RSS, the
router's own counters (admin /metrics), drain checks, and in-process timings.

The load itself is ingest.py's: `ingest.measure` (warm-up, connection trials,
wrk or h2load pinned to the load core, CPU accounting of both cores).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Self

from google.protobuf.message import Message

if __package__:
    from . import ingest, payloads
    from .pipeline_payloads import write_trace_id_offsets
    from .procs import (
        Children,
        Server,
        choose_cpus,
        free_port,
        group_cpu_seconds,
        idle_check,
        log,
        start_server,
    )
else:
    import ingest
    import payloads
    from pipeline_payloads import write_trace_id_offsets
    from procs import (
        Children,
        Server,
        choose_cpus,
        free_port,
        group_cpu_seconds,
        idle_check,
        log,
        start_server,
    )

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WRK_UNIQUE = BENCH_DIR / "wrk_unique.lua"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
METRIC_LINE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ([-+\deE.naif]+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Row:
    """One line of a pipeline / run_all table."""

    case: str
    items_per_s: float
    item: str = "spans"
    errors: int = 0
    router_cpu_us: float | None = None  # router CPU per item while measured
    rss_peak_mb: float | None = None  # peak RSS of the router's process group over the case
    payload: str = "traces"  # which payload was sent (its codec rate is run_all's ratio base)
    vs_ingest: float | None = None  # items/s over the ingest-only row of the same payload
    out_per_s: float | None = None  # items/s that left the spools (delivered, written) while measured
    note: str = ""
    noisy: bool = False  # other processes took > 10% of a bench core
    extra: dict[str, object] = field(default_factory=dict)


@contextlib.contextmanager
def open_bench(options: ingest.Options) -> Iterator[ingest.Bench]:
    """A Bench with ingest.py's payload, cores chosen, and this process moved
    to the load generator's core: its timing threads (RSS sampling, the
    in-process micro-benchmarks) must not take time from the router. Every
    child is stopped and the work directory removed on the way out."""
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="otlp-pipeline-bench-"))
    try:
        built, bodies = ingest.prepare(workdir)
        cpus = choose_cpus(workdir)
        if cpus.loadgen is not None:
            os.sched_setaffinity(0, {cpus.loadgen})
        busy = idle_check(cpus)
        log(f"router on cpu {cpus.server}, load generators on cpu {cpus.loadgen}; cores {busy:.0%} busy before load")
        if busy > ingest.OTHER_CPU_WARNING:
            log("warning: the bench cores are busy before any load (other processes); rows will read low")
        yield ingest.Bench(options, children, cpus, workdir, bodies, built)
    finally:
        children.stop_all()
        if options.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def make_bench(
    base: ingest.Bench, name: str, built: payloads.Payloads, unique_ids: Message | None = None,
    variants: Sequence[Message] = (),
) -> ingest.Bench:
    """A Bench sending another payload (same children, cores, failure list).
    With `unique_ids` (the request of `built`), every HTTP protobuf request
    gets new trace ids (wrk_unique.lua); with `variants` too (requests of the
    same shape, other content), the HTTP protobuf requests are those in turn."""
    directory = base.workdir / f"payload-{name}"
    directory.mkdir(exist_ok=True)
    bodies = payloads.write_payloads(built, directory)
    script = None
    if unique_ids is not None:
        write_trace_id_offsets(unique_ids, bodies["protobuf"])
        script = WRK_UNIQUE
        files = []
        for n, variant in enumerate(variants):
            files.append(directory / f"variant-{n}.pb")
            files[-1].write_bytes(variant.SerializeToString())
            write_trace_id_offsets(variant, files[-1])
        if files:
            Path(f"{bodies['protobuf']}.bodies").write_text("".join(f"{f}\n" for f in files))
    elif variants:
        raise ValueError("variants are sent by wrk_unique.lua: give unique_ids too")
    return ingest.Bench(
        base.options, base.children, base.cpus, base.workdir, bodies, built, base.failures, wrk_script=script
    )


# --- routers ----------------------------------------------------------------


def router_yaml(ports: dict[str, int], rest: str) -> str:
    """Receivers on the given ports and an admin endpoint (for the router's
    counters), then `rest`: spool, routes, destinations."""
    return (
        "receivers:\n  otlp:\n"
        f"    http: {{endpoint: 127.0.0.1:{ports['http']}}}\n"
        f"    grpc: {{endpoint: 127.0.0.1:{ports['grpc']}}}\n"
        f"admin: {{endpoint: 127.0.0.1:{ports['admin']}}}\n" + rest
    )


def yaml_path(path: Path) -> str:
    """A path as a YAML flow scalar: JSON strings are valid YAML."""
    return json.dumps(str(path))


def start_router(bench: ingest.Bench, name: str, rest: str, cpus: str | None = None) -> Server:
    """`python -m otlp_router run` on the server core (or on `cpus`, a
    taskset list such as "0,1") with `rest` under generated receivers; the
    config and log are kept in workdir/<name>/. Without `workers:` in `rest`
    the router's default (auto: one per core it may use) gives 1 worker on
    one core."""
    directory = bench.workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    ports = {"http": free_port(), "grpc": free_port(), "admin": free_port()}
    config = directory / "router.yaml"
    config.write_text(router_yaml(ports, rest))
    # Run the checkout's package even when it is not installed.
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "otlp_router", "run", "-c", str(config)]
    return start_server(
        bench.children, name, argv, ports, directory / "router.log", cpus or bench.cpus.server,  # type: ignore[arg-type]
        ingest.ROUTER_READY, bench.options.ready_timeout, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )  # fmt: skip


def start_script(bench: ingest.Bench, name: str, script: str, marker: str, cpu: int | None) -> Server:
    """A helper server from bench/ (the forwarding sink) on `cpu`."""
    port = free_port()
    directory = bench.workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(BENCH_DIR / script), "--port", str(port)]
    return start_server(
        bench.children, name, argv, {"http": port}, directory / f"{name}.log", cpu, marker,
        bench.options.ready_timeout,
    )  # fmt: skip


def config_refused(rest: str) -> str | None:
    """The router's own message if it refuses a config (parsed in-process,
    nothing started), else None: how run_all finds out about `workers`."""
    sys.path.insert(0, str(REPO_ROOT))
    from otlp_router.config import ConfigError, parse

    ports = {"http": 1, "grpc": 2, "admin": 3}
    try:
        parse(router_yaml(ports, rest), "probe.yaml")
    except ConfigError as error:
        return str(error)
    return None


# --- the router's counters --------------------------------------------------

Samples = list[tuple[str, dict[str, str], float]]


def admin_samples(server: Server) -> Samples:
    """Every sample of the router's Prometheus /metrics."""
    url = f"http://127.0.0.1:{server.ports['admin']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if match:
            name, labels, value = match.groups()
            samples.append((name, dict(LABEL.findall(labels or "")), float(value)))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items()))


ACCEPTED = "otlp_router_receiver_accepted_items_total"
SENT = "otlp_router_exporter_sent_items_total"
SPOOLED = "otlp_router_spool_items"


@dataclass
class Drain:
    """What was left to deliver when the load stopped, and how long it took."""

    accepted: float  # items the router acknowledged over its whole run
    sent: float  # items its destinations confirmed (summed over destinations)
    backlog_at_end: float  # items in spools when the load stopped
    seconds: float | None  # from the load's end to empty spools; None: still not empty

    @property
    def rate(self) -> float | None:
        """Items/s the destinations took the backlog away with no load coming
        in; None under 2 s, where the 0.25 s polling step dominates."""
        return self.backlog_at_end / self.seconds if self.seconds and self.seconds >= 2 else None


def wait_drained(server: Server, timeout: float, settle: float = 2.0) -> Drain:
    """Poll the router's counters until its spools are empty and the
    destinations' confirmed counts stop moving (or `timeout`)."""
    started = time.monotonic()
    samples = admin_samples(server)
    backlog = total(samples, SPOOLED)
    last_sent, last_change, empty_at = total(samples, SENT), started, None
    while time.monotonic() - started < timeout:
        now = time.monotonic()
        samples = admin_samples(server)
        sent, queued = total(samples, SENT), total(samples, SPOOLED)
        if sent != last_sent:
            last_sent, last_change = sent, now
        if queued == 0 and empty_at is None:
            empty_at = now
        if queued == 0 and now - last_change >= settle:
            break
        time.sleep(0.25)
    seconds = None if empty_at is None else empty_at - started
    return Drain(total(samples, ACCEPTED), last_sent, backlog, seconds)


# --- measuring one case -----------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    """The processes of a group: looked up once per case, so the RSS sampler
    reads a few files rather than all of /proc every tick."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def rss_bytes(pids: list[int]) -> int:
    resident = 0
    for pid in pids:
        try:
            resident += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError):
            continue
    return resident * PAGE_SIZE


class PeakRss:
    """Samples a process group's RSS every `interval` in a thread. VmHWM would
    give the peak since the router started, not over this case."""

    def __init__(self, pgid: int, interval: float = 0.1) -> None:
        self.pids = group_pids(pgid)
        self.interval = interval
        self.peak = rss_bytes(self.pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pids))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pids))


ROUTED = "otlp_router_routed_items_total"
REFUSED = "otlp_router_receiver_refused_requests_total"


@dataclass
class Counters:
    """The router's counters at one moment."""

    at: float
    accepted: float
    routed: float  # items into spools (every route here has one destination)
    sent: float  # items destinations confirmed
    spooled: float  # items waiting in spools
    refused: dict[str, float]  # error answers by HTTP status / gRPC code

    @classmethod
    def read(cls, server: Server) -> Counters:
        samples = admin_samples(server)
        refused: dict[str, float] = {}
        for name, labels, value in samples:
            if name == REFUSED:
                refused[labels.get("status", "?")] = refused.get(labels.get("status", "?"), 0.0) + value
        return cls(time.monotonic(), total(samples, ACCEPTED), total(samples, ROUTED), total(samples, SENT),
                   total(samples, SPOOLED), refused)  # fmt: skip


@dataclass
class Window:
    """What the router did while the load was measured, from its own counters."""

    seconds: float
    out_per_s: float  # spans (in request units) that left the spools per second
    backlog_growth: float  # items the spools gained
    refused: dict[str, float]  # error answers by status

    @classmethod
    def between(cls, before: Counters, after: Counters, written_share: float = 1.0) -> Window:
        """`written_share`: items a destination sends per span it takes. An Aperture destination
        writes a record for model calls only (0.8 of the GenAI payload's spans): its records/s
        divided by that are the spans/s it finished, the unit the load and the floors count in."""
        seconds = after.at - before.at
        accepted, routed = after.accepted - before.accepted, after.routed - before.routed
        fanout = routed / accepted if accepted else 1.0
        out = (after.sent - before.sent) / fanout / written_share if fanout else 0.0
        refused = {k: v - before.refused.get(k, 0.0) for k, v in after.refused.items()}
        return cls(seconds, out / seconds, after.spooled - before.spooled, {k: v for k, v in refused.items() if v})


def measure_row(
    bench: ingest.Bench,
    server: Server,
    case: ingest.Case,
    label: str,
    payload: str,
    item: str = "spans",
    sidecar: Server | None = None,
    written_share: float = 1.0,
) -> Row:
    """ingest.measure with the router's peak RSS and its own counters over
    the measured window (needs its admin port), as a Row. `sidecar`: a
    process sharing the load generator's core (the forwarding sink); its CPU
    is not counted as interference from other processes. `written_share`: see Window.between."""
    log(f"{label}:")
    sidecar_before, started = (group_cpu_seconds(sidecar.proc.pid), time.monotonic()) if sidecar else (0.0, 0.0)
    snapshots: list[Counters] = []
    with PeakRss(server.proc.pid) as rss:
        result = ingest.measure(bench, server, case, None, lambda _: snapshots.append(Counters.read(server)))
    share = None
    if sidecar is not None:
        share = (group_cpu_seconds(sidecar.proc.pid) - sidecar_before) / (time.monotonic() - started)
        result = replace(result, other_cpu_loadgen=max(0.0, result.other_cpu_loadgen - share))
    window = Window.between(*snapshots, written_share=written_share)
    log(f"  -> {result.spans_per_s:,.0f} {item}/s in, {window.out_per_s:,.0f} out, errors {result.errors}")
    noisy = max(result.other_cpu_server, result.other_cpu_loadgen) > ingest.OTHER_CPU_WARNING
    notes = ingest.row_notes(result)
    if sidecar is not None and share is not None:
        # A sink short of CPU holds the router back: say how much of the shared core it had.
        notes = "; ".join(filter(None, [notes, f"{sidecar.name} used {share:.0%} of the load core"]))
    return Row(
        case=label,
        items_per_s=result.spans_per_s,
        item=item,
        errors=result.errors + result.socket_errors,
        router_cpu_us=result.server_cpu / result.spans_per_s * 1e6 if result.spans_per_s else None,
        rss_peak_mb=rss.peak / 2**20,
        payload=payload,
        note=notes,
        noisy=noisy,
        out_per_s=window.out_per_s,
        extra={"connections": result.connections, "router_cpu_share": result.server_cpu,
               "loadgen_cpu_share": result.loadgen_cpu, "router_processes": len(rss.pids),
               "window": asdict(window)},
    )  # fmt: skip


def failed_row(label: str, payload: str, error: Exception, item: str = "spans") -> Row:
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return Row(label, 0.0, item, payload=payload, note=f"FAILED: {first}")


# --- in-process timings -----------------------------------------------------


def seconds_per_call(fn: Callable[[], object], min_time: float = 0.2, rounds: int = 5) -> float:
    """Best of `rounds` timings, each looping fn for at least `min_time`."""
    loops = 1
    while True:  # calibrate
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start >= min_time:
            break
        loops *= 2
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def codec_rate(message_type: type[Message], wire: bytes, items: int) -> float:
    """Items/s of upb FromString + SerializeToString of one request: the least
    a receiver that decodes and a spool that encodes must spend."""
    message = message_type.FromString(wire)
    parse = seconds_per_call(lambda: message_type.FromString(wire))
    serialize = seconds_per_call(message.SerializeToString)
    return items / (parse + serialize)
