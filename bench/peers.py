"""The router against its peers, in one run: Rotel (a Rust OTel collector,
from PyPI) and the parse-only floors. Reproduces the table of issue 17.

Every case is measured on this machine, in this run, with the same payload,
the same load and the same pinning for each server:

  - each server (router, Rotel, floor) with all its threads and child
    processes on one core (`taskset -c`; the router with `workers: 1`), the
    one taking the disk's interrupts if one does (`procs.choose_cpus`), wrk
    (8 keep-alive connections, 1 thread) on the other, all on 127.0.0.1;
    the forwarding sink (bench/sink_http.py) shares the load core with wrk;
  - per server: spans/s, CPU seconds per million spans (the server's whole
    process group, from /proc), peak RSS of that group (sampled every 100 ms);
  - ratios router/Rotel and router/floor from those same numbers, beside the
    aims of issue 17, each marked MET or MISSED.

Cases (--only, comma separated):

  ingest-proto-durable  OTLP/HTTP protobuf, 100 spans x 10 attributes; router
                        disk spool (fsync batch) -> discard; Rotel -> blackhole
  ingest-proto-memory   the same with the router's memory spool
  ingest-json-durable   OTLP/HTTP JSON of the same request; floor: orjson.loads only
  forward-durable       protobuf -> OTLP/HTTP protobuf (gzip, both defaults) to
                        the sink; spans/s counted at the sink
  genai-route-privacy   GenAI spans (~3 KB of content on every model call) ->
                        sink; router: a route matching a span attribute +
                        privacy; Rotel: its Python processor (rotel-sdk API) doing
                        the same test and deleting the content keys
  genai-ingest          the file cases' load (new trace ids in every request) into the
                        durable spool -> discard: what the file rows pay before their
                        destination (not judged)
  genai-json            router -> per-trace JSON files (trace_idle 1s); written/s
  genai-cbor            router -> Aperture CBOR+zstd files (every 1s); written/s
  genai-cbor-distinct   the same, each request with prompts of its own (64 in turn),
                        as real traffic: zstd no longer finds the previous request's
                        content (the other GenAI rows repeat one request's)

The three file cases also measure a format floor (bench/floor_http.py --store):
the GenAI floor's parse plus only the format's least work before the answer (a
durable file per trace, or the body into zstd objects), shown as its share of
the floor and the router's share of it, not judged.

Rotel is installed from PyPI on first use into bench/.peers-venv (a venv of
the Python running this script; gitignored), pinned to the versions below;
its wheel carries the `rotel-agent` binary, which embeds CPython (the
system's libpython) for processors. `--rotel-agent PATH` uses another build.

    python bench/peers.py                          # every case, 10 s each
    python bench/peers.py --seconds 5 --only ingest-json-durable,forward-durable
    python bench/peers.py --json                   # machine-readable on stdout
    python bench/peers.py --seconds 5 --rounds 3   # each case's targets 3 times in turn: median ratios

Not a test: nothing in tests/ imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import file_create  # noqa: E402
import harness  # noqa: E402
import ingest  # noqa: E402
import payloads  # noqa: E402
import pipeline  # noqa: E402
import pipeline_payloads  # noqa: E402
from procs import (  # noqa: E402
    BenchError,
    Children,
    Server,
    choose_cpus,
    ensure_tool,
    exit_on_signals,
    free_port,
    group_cpu_seconds,
    idle_check,
    log,
    start_server,
)

REPO_ROOT = BENCH_DIR.parent
VENV = BENCH_DIR / ".peers-venv"
ROTEL_VERSION = "0.0.1a15"  # the newest `rotel` on PyPI when this was written (agent 0.0.1-alpha10)
ROTEL_SDK_VERSION = "0.0.1a9"  # the newest unyanked `rotel-sdk` (0.0.1 is yanked)
ROTEL_READY = "Starting Rotel"
CONNECTIONS = 8
WARMUP = 2
RSS_AIM_MB = 200.0  # per worker; every router here runs one
CONTENT_BYTES = 3000  # prompt + completion on each model-call span of the GenAI payload
DISTINCT_BODIES = 64  # genai-distinct: requests of other prompts, sent in turn
PROVIDERS = payloads.PROVIDERS  # the route's match: every span of the payload has one of them


# --- what is measured -------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One server measured under one load; `key` names it, so a case that
    needs the same Rotel or floor number as another reuses that measurement."""

    key: str
    kind: str  # router | rotel | floor
    payload: str  # plain | genai | genai-unique (new trace ids in every request, wrk_unique.lua) | genai-distinct
    encoding: str = "protobuf"
    figure: str = "in"  # in: spans/s acknowledged; sink: spans/s at the sink; written: spans/s written
    setup: str = ""  # router: which config; rotel: blackhole | forward | processor; floor: files | objects


@dataclass(frozen=True)
class CaseSpec:
    name: str
    label: str
    router: Target
    rotel: Target | None
    floor: Target | None
    aims: tuple[tuple[str, float], ...] = ()  # (rotel | floor, least router/peer ratio)
    # The floor with the format's least work done too (floor_http.py --store): shown, not judged.
    format_floor: Target | None = None


FLOOR_PROTO = Target("floor http/protobuf", "floor", "plain")
FLOOR_JSON = Target("floor http/json (orjson only)", "floor", "plain", "json")
FLOOR_GENAI = Target("floor genai http/protobuf", "floor", "genai")
FLOOR_FILES = Target("floor genai + a durable file per trace", "floor", "genai-unique", setup="files")
FLOOR_OBJECTS = Target("floor genai + zstd objects", "floor", "genai-unique", setup="objects")
ROTEL_PROTO = Target("rotel http/protobuf -> blackhole", "rotel", "plain", setup="blackhole")

CASES = (
    CaseSpec("ingest-proto-durable", "ingest protobuf, durable spool",
             Target("router disk -> discard protobuf", "router", "plain", setup="disk"),
             ROTEL_PROTO, FLOOR_PROTO, (("rotel", 1.2),)),
    CaseSpec("ingest-proto-memory", "ingest protobuf, memory spool",
             Target("router memory -> discard protobuf", "router", "plain", setup="memory"),
             ROTEL_PROTO, FLOOR_PROTO),
    CaseSpec("ingest-json-durable", "ingest OTLP JSON, durable spool",
             Target("router disk -> discard json", "router", "plain", "json", setup="disk"),
             Target("rotel http/json -> blackhole", "rotel", "plain", "json", setup="blackhole"),
             FLOOR_JSON, (("rotel", 1.5),)),
    CaseSpec("forward-durable", "forward protobuf to an OTLP sink, durable",
             Target("router disk -> otlp_http sink", "router", "plain", figure="sink", setup="forward"),
             Target("rotel -> otlp http sink", "rotel", "plain", figure="sink", setup="forward"),
             None, (("rotel", 1.5),)),
    CaseSpec("genai-route-privacy", "GenAI: route on a span attribute + privacy -> OTLP sink",
             Target("router route+privacy -> sink", "router", "genai", figure="sink", setup="route-privacy"),
             Target("rotel python processor -> sink", "rotel", "genai", figure="sink", setup="processor"),
             FLOOR_GENAI, (("rotel", 1.5), ("floor", 0.6))),
    CaseSpec("genai-ingest", "GenAI ingest, durable spool -> discard",
             Target("router disk -> discard genai", "router", "genai-unique", setup="disk"),
             None, FLOOR_GENAI),
    CaseSpec("genai-json", "GenAI per-trace JSON written",
             Target("router -> file json", "router", "genai-unique", figure="written", setup="json"),
             None, FLOOR_GENAI, (("floor", 0.3),), FLOOR_FILES),
    CaseSpec("genai-cbor", "GenAI Aperture CBOR+zstd written",
             Target("router -> file cbor_zstd", "router", "genai-unique", figure="written", setup="cbor_zstd"),
             None, FLOOR_GENAI, (("floor", 0.3),), FLOOR_OBJECTS),
    CaseSpec("genai-cbor-distinct", "GenAI Aperture CBOR+zstd written, distinct content",
             Target("router -> file cbor_zstd, distinct content", "router", "genai-distinct", figure="written",
                    setup="cbor_zstd"),
             None, FLOOR_GENAI, (("floor", 0.3),),
             Target("floor genai + zstd objects, distinct content", "floor", "genai-distinct", setup="objects")),
)
CASE_NAMES = tuple(c.name for c in CASES)


@dataclass
class Measurement:
    target: str
    kind: str
    figure: str
    spans_per_s: float  # the figure: acknowledged, at the sink, or written
    accepted_per_s: float  # acknowledged by the server (wrk's 2xx)
    cpu_s_per_m: float | None  # server CPU seconds per million spans of the figure
    cpu_s_per_m_accepted: float | None  # ... per million spans acknowledged
    rss_mb: float | None  # peak RSS of the server's process group
    processes: int = 1
    cpu_share: float = 0.0  # cores the server used while measured (1.0 = its core saturated)
    errors: int = 0
    note: str = ""
    noisy: bool = False
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class Outcome:
    case: str
    label: str
    router: Measurement | None
    rotel: Measurement | None
    floor: Measurement | None
    format_floor: Measurement | None = None
    vs_rotel: float | None = None
    vs_floor: float | None = None
    vs_format_floor: float | None = None
    format_floor_vs_floor: float | None = None  # what the format's least work leaves of the floor
    # The same ratios per CPU second (peer CPU-s per M spans / router's): what a core does when
    # other processes take part of it; shown, not judged.
    cpu_vs_rotel: float | None = None
    cpu_vs_floor: float | None = None
    aims: list[dict[str, object]] = field(default_factory=list)
    rounds: list[dict[str, float | None]] = field(default_factory=list)  # each round's ratios (--rounds)


# --- payloads ---------------------------------------------------------------


def _text(rng: random.Random, size: int, words: tuple[str, ...]) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)


PROMPT_WORDS = ("how", "do", "I", "route", "spans", "by", "tenant", "safely", "with", "the", "router", "and")
ANSWER_WORDS = ("use", "a", "routing", "table", "with", "match", "rules", "and", "privacy", "on", "each", "route")


def genai_request(content_bytes: int = CONTENT_BYTES, seed: int = 7) -> object:
    """pipeline_payloads.genai_request (100 spans x 10 attributes, content on
    every other span, OpenRouter fields on roots) with the content grown to
    ~`content_bytes` per span that has it: prompt 2/3 (system + user
    messages), completion 1/3, as JSON message lists like the SDKs send."""
    request = pipeline_payloads.genai_request()
    rng = random.Random(seed)
    for span in request.resource_spans[0].scope_spans[0].spans:
        for kv in span.attributes:
            if kv.key == "gen_ai.prompt":
                user = _text(rng, content_bytes * 2 // 3 - 120, PROMPT_WORDS)
                kv.value.string_value = json.dumps([
                    {"role": "system", "content": "You are a helpful assistant for an observability platform."},
                    {"role": "user", "content": user + "?"},
                ])
            elif kv.key == "gen_ai.completion":
                answer = _text(rng, content_bytes // 3 - 60, ANSWER_WORDS)
                kv.value.string_value = json.dumps([{"role": "assistant", "content": answer, "finish_reason": "stop"}])
    return request


# --- Rotel ------------------------------------------------------------------


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_rotel(explicit: str | None) -> tuple[Path, str]:
    """The rotel-agent binary (installing rotel + rotel-sdk into bench/.peers-venv
    when missing) and its version line."""
    if explicit:
        agent = Path(explicit)
    else:
        agent = find_agent()
        if agent is None:
            install_rotel()
            agent = find_agent()
        if agent is None:
            raise BenchError(f"rotel {ROTEL_VERSION} installed into {VENV} but its rotel-agent binary is not there")
    if not os.access(agent, os.X_OK):
        agent.chmod(agent.stat().st_mode | 0o111)
    missing = [line for line in run_text(["ldd", str(agent)]).splitlines() if "not found" in line]
    if missing:
        raise BenchError(
            f"{agent} needs shared libraries this machine lacks ({'; '.join(m.strip() for m in missing)}); "
            "its processors embed the system CPython: apt-get install -y libpython3.11"
        )
    return agent, run_text([str(agent), "--version"]).strip()


def find_agent() -> Path | None:
    if not venv_python().exists():
        return None
    probe = "import pathlib, rotel; print(pathlib.Path(rotel.__file__).parent / 'rotel-agent')"
    result = subprocess.run([str(venv_python()), "-c", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    path = Path(result.stdout.strip())
    return path if path.is_file() else None


def install_rotel() -> None:
    log(f"installing rotel=={ROTEL_VERSION} and rotel-sdk=={ROTEL_SDK_VERSION} into {VENV} ...")
    if not venv_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    result = subprocess.run(
        [str(venv_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--pre",
         f"rotel=={ROTEL_VERSION}", f"rotel-sdk=={ROTEL_SDK_VERSION}"],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise BenchError(f"pip install rotel into {VENV} failed:\n{result.stdout}{result.stderr}")


def run_text(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    return result.stdout + result.stderr


def content_key_sets() -> tuple[list[str], list[str], list[str], str]:
    """The content keys the router's privacy removes (its conventions table),
    for Rotel's processor to test every attribute against the same set."""
    try:
        sys.path.insert(0, str(REPO_ROOT))
        from otlp_router.model import conventions

        table = conventions.active()
        return (sorted(table.content_keys), sorted(table.content_prefixes), sorted(table.not_content),
                "the router's conventions table")  # fmt: skip
    except Exception as error:  # the router's tree is being edited: fall back to the payload's keys
        log(f"warning: could not read the router's content keys ({error}); using a fixed list")
        return (["gen_ai.prompt", "gen_ai.completion", "gen_ai.input.messages", "gen_ai.output.messages"],
                ["gen_ai.prompt.", "gen_ai.completion."], [], "a fixed list")  # fmt: skip


PROCESSOR = '''\
"""Rotel trace processor (rotel-sdk API), written by bench/peers.py: the
router's genai-route-privacy case in Rotel's terms. The route's test (the
span's gen_ai.provider.name is one of PROVIDERS) is made per span, and every
attribute is tested against the router's content keys; spans with content
get their attribute list rebuilt without it."""

from rotel_sdk.open_telemetry.trace.v1 import ResourceSpans

PROVIDERS = frozenset({providers!r})
CONTENT_KEYS = frozenset({keys!r})
CONTENT_PREFIXES = tuple({prefixes!r})
NOT_CONTENT = frozenset({not_content!r})
ROUTED = [0]


def is_content(key):
    return key in CONTENT_KEYS or (key.startswith(CONTENT_PREFIXES) and key not in NOT_CONTENT)


def process_spans(resource_spans: ResourceSpans):
    for scope_spans in resource_spans.scope_spans:
        for span in scope_spans.spans:
            attributes = span.attributes
            keep = []
            dropped = False
            for kv in attributes:
                key = kv.key
                if key == "gen_ai.provider.name" and kv.value.value in PROVIDERS:
                    ROUTED[0] += 1
                if is_content(key):
                    dropped = True
                else:
                    keep.append(kv)
            if dropped:
                span.attributes = keep
'''


def write_processor(directory: Path) -> tuple[Path, str]:
    keys, prefixes, not_content, source = content_key_sets()
    path = directory / "rotel_privacy_processor.py"
    path.write_text(PROCESSOR.format(providers=sorted(PROVIDERS), keys=keys, prefixes=prefixes,
                                     not_content=not_content))  # fmt: skip
    return path, f"{len(keys)} keys, {len(prefixes)} prefixes from {source}"


# --- the run ----------------------------------------------------------------


@dataclass
class Run:
    options: ingest.Options
    children: Children
    workdir: Path
    benches: dict[str, ingest.Bench]  # by Target.payload
    agent: Path
    agent_version: str
    drain_timeout: float
    sink: Server | None = None
    processor: Path | None = None
    processor_note: str = ""
    rotel_flags: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    genai_bytes: int = 0
    genai_share: float | None = None

    def start_sink(self) -> Server:
        if self.sink is None or self.sink.proc.poll() is not None:
            self.sink = harness.start_script(self.benches["plain"], "sink", "sink_http.py", "sink ready",
                                             self.benches["plain"].cpus.loadgen)  # fmt: skip
        return self.sink


def sink_url(sink: Server) -> str:
    return f"http://127.0.0.1:{sink.ports['http']}"


# --- starting servers -------------------------------------------------------


def router_rest(run: Run, target: Target, directory: Path) -> str:
    """The router's config below its receivers and admin endpoint."""
    spool = "memory" if target.setup == "memory" else "disk, fsync: batch"
    head = f"workers: 1\nspool: {{dir: {harness.yaml_path(directory / 'spool')}, type: {spool}}}\n"
    one = "routes:\n  - {name: all, destinations: [out]}\ndestinations:\n  out: "
    if target.setup in ("disk", "memory"):
        return head + one + "{type: discard}\n"
    if target.setup == "forward":
        sink = run.start_sink()
        return head + one + f"{{type: otlp_http, endpoint: {sink_url(sink)}/v1/traces, encoding: protobuf}}\n"
    if target.setup == "route-privacy":
        sink = run.start_sink()
        return head + (
            "routes:\n"
            f"  - {{name: by-provider, match: {{attribute: gen_ai.provider.name, in: {json.dumps(list(PROVIDERS))}}},"
            " destinations: [sink]}\n"
            "  - {name: rest, default: true, destinations: [sink]}\n"
            "destinations:\n"
            f"  sink: {{type: otlp_http, endpoint: {sink_url(sink)}/v1/traces, encoding: protobuf, privacy: true}}\n"
        )
    out = harness.yaml_path(directory / "out")
    if target.setup == "json":
        return head + one + f"{{type: file, dir: {out}, format: json, trace_idle: 1s}}\n"
    if target.setup == "cbor_zstd":
        return head + one + f"{{type: file, dir: {out}, format: cbor_zstd, every: 1s, limit: 10000}}\n"
    raise ValueError(target.setup)


def rotel_argv(run: Run, target: Target, ports: dict[str, int]) -> list[str]:
    flags = [
        "--otlp-http-endpoint", f"127.0.0.1:{ports['http']}",
        "--otlp-grpc-endpoint", f"127.0.0.1:{ports['grpc']}",
    ]  # fmt: skip
    if target.setup == "blackhole":
        flags += ["--exporter", "blackhole"]
    else:
        sink = run.start_sink()
        flags += ["--exporter", "otlp", "--otlp-exporter-endpoint", sink_url(sink),
                  "--otlp-exporter-protocol", "http"]  # fmt: skip
    if target.setup == "processor":
        if run.processor is None:
            run.processor, run.processor_note = write_processor(run.workdir)
        flags += ["--otlp-with-trace-processor", str(run.processor)]
    run.rotel_flags[target.key] = flags
    return [str(run.agent), "start", *flags]


def start_target(run: Run, target: Target, directory: Path) -> tuple[Server, str]:
    """The server of `target` on the server core; returns it and its config text."""
    bench = run.benches[target.payload]
    if target.kind == "router":
        rest = router_rest(run, target, directory)
        return harness.start_router(bench, directory.name, rest), rest
    if target.kind == "rotel":
        ports = {"http": free_port(), "grpc": free_port()}
        argv = rotel_argv(run, target, ports)
        env = {**os.environ, "NO_COLOR": "1", "RUST_LOG_STYLE": "never"}
        server = start_server(run.children, "rotel", argv, ports, directory / "rotel.log", bench.cpus.server,
                              ROTEL_READY, bench.options.ready_timeout, cwd=directory, env=env)  # fmt: skip
        return server, " ".join(argv)
    store = ["--store", str(directory / "out"), "--format", target.setup] if target.setup else []
    return ingest.start_floor(bench, "http", store), " ".join(["bench/floor_http.py", *store])


# --- measuring one target ---------------------------------------------------


@dataclass
class Mark:
    at: float
    sink: int | None
    counters: harness.Counters | None


def measure_target(run: Run, target: Target, round_: int = 0) -> Measurement:
    bench = run.benches[target.payload]
    name = target.key.replace(" ", "_").replace("/", "-").replace(">", "")
    directory = run.workdir / (f"{name}-round{round_ + 1}" if round_ else name)
    directory.mkdir(parents=True, exist_ok=True)
    log(f"{target.key}:")
    files = target.setup in ("json", "cbor_zstd", "files", "objects")
    # What creating a file costs here: ext4 after many recent deletions (a test suite, an earlier
    # run) scans past the deleted inodes on every create (bench/file_create.py). The probe's files
    # stay until the run ends: deleting them would do just that to the row.
    create_us = file_create.create(directory / "file-probe", 200) if files else None
    server, config = start_target(run, target, directory)
    try:
        measurement = measure_started(run, target, bench, server, directory)
        died = server.proc.poll()
    except BenchError as error:
        tail = "\n".join(server.log_text().splitlines()[-30:])
        run.failures.append(f"{target.key}: {error}\n--- config ---\n{config}\n--- log tail ---\n{tail}")
        raise
    finally:
        run.children.stop(server.proc)
    if died is not None:
        tail = "\n".join(server.log_text().splitlines()[-30:])
        run.failures.append(f"{target.key}: died with code {died}\n--- log tail ---\n{tail}")
        measurement.note = join(measurement.note, f"DIED with code {died}")
    if create_us is not None:
        measurement.note = join(measurement.note, f"creating a file here took {create_us:.0f} us CPU")
    # The written files stay until the run ends (the workdir goes then): deleting tens of
    # thousands here would slow every file the next rows create.
    shutil.rmtree(directory / "spool", ignore_errors=True)
    log(join(f"  -> {measurement.spans_per_s:,.0f} spans/s ({target.figure}), "
             f"{fmt(measurement.cpu_s_per_m, '.1f')} CPU-s/M, {fmt(measurement.rss_mb, '.0f')} MB", measurement.note))
    return measurement


def measure_started(run: Run, target: Target, bench: ingest.Bench, server: Server, directory: Path) -> Measurement:
    sink = run.sink if target.figure == "sink" else None
    is_router = target.kind == "router"
    marks: list[Mark] = []

    def window(_: bool) -> None:
        marks.append(Mark(time.monotonic(), pipeline.sink_spans(sink) if sink else None,
                          harness.Counters.read(server) if is_router else None))  # fmt: skip

    counter = (lambda: ingest.http_floor_count(server.ports["http"])) if target.kind == "floor" else None
    case = ingest.Case(target.kind, "http", target.encoding)
    sink_cpu_before, started = (group_cpu_seconds(sink.proc.pid), time.monotonic()) if sink else (0.0, 0.0)
    with harness.PeakRss(server.proc.pid) as rss:
        result = ingest.measure(bench, server, case, counter, window)
    notes: list[str] = []
    if sink is not None:
        # The sink shares the load generator's core: its CPU is not interference.
        share = (group_cpu_seconds(sink.proc.pid) - sink_cpu_before) / (time.monotonic() - started)
        result = replace(result, other_cpu_loadgen=max(0.0, result.other_cpu_loadgen - share))
        notes.append(f"sink used {share:.0%} of the load core")
    before, after = marks
    seconds = after.at - before.at
    figure = result.spans_per_s
    extra: dict[str, object] = {"connections": result.connections, "loadgen_cpu": result.loadgen_cpu,
                                "other_cpu_server": result.other_cpu_server,
                                "other_cpu_loadgen": result.other_cpu_loadgen}  # fmt: skip
    if sink is not None and before.sink is not None and after.sink is not None:
        figure = (after.sink - before.sink) / seconds
    if is_router and before.counters and after.counters:
        share = written_share(run, target)
        win = harness.Window.between(before.counters, after.counters, written_share=share)
        extra["window"] = asdict(win)
        if target.figure == "written":
            figure = win.out_per_s
            if share != 1.0:
                notes.append(f"{figure * share / 1000:,.0f}k records/s ({share:.0%} of the spans are model calls)")
        if win.refused:
            notes.append("refused " + ", ".join(f"{n:,.0f}x {s}" for s, n in sorted(win.refused.items()))
                         + (" (spool full)" if set(win.refused) == {"429"} else ""))  # fmt: skip
    if is_router and target.figure in ("sink", "written"):
        notes.append(after_load(run, target, server, directory, extra))
    elif target.kind == "rotel" and sink is not None:
        notes.append(rotel_after_load(sink, after.sink or 0, extra))
    cpu_seconds = result.server_cpu * result.seconds  # server_cpu is a share of one core
    return Measurement(
        target=target.key, kind=target.kind, figure=target.figure, spans_per_s=figure,
        accepted_per_s=result.spans_per_s,
        cpu_s_per_m=cpu_seconds / (figure * result.seconds) * 1e6 if figure else None,
        cpu_s_per_m_accepted=cpu_seconds / (result.spans_per_s * result.seconds) * 1e6 if result.spans_per_s else None,
        rss_mb=rss.peak / 2**20, processes=len(rss.pids), cpu_share=result.server_cpu,
        errors=result.errors + result.socket_errors, note=join(ingest.row_notes(result), *notes),
        noisy=max(result.other_cpu_server, result.other_cpu_loadgen) > ingest.OTHER_CPU_WARNING, extra=extra,
    )  # fmt: skip


def written_share(run: Run, target: Target) -> float:
    """Items the target's destination writes per span: Aperture writes records of model calls
    only, so its figure is the spans whose records it wrote (records/s over this share)."""
    return (run.genai_share or 1.0) if target.setup == "cbor_zstd" else 1.0


def after_load(run: Run, target: Target, server: Server, directory: Path, extra: dict[str, object]) -> str:
    """Let the router's spools drain, then check what it delivered or wrote
    against what its destinations confirmed / what it acknowledged."""
    sink_before = pipeline.sink_spans(run.sink) if target.figure == "sink" and run.sink else None
    drain = harness.wait_drained(server, run.drain_timeout)
    extra["drain"] = asdict(drain)
    note = pipeline.drain_note(drain)
    if target.figure == "sink" and run.sink is not None and sink_before is not None:
        # The sink's total is compared with what the router confirmed over its whole life.
        total = pipeline.sink_spans(run.sink)
        extra["sink_total"] = total
        return join(note, f"{total - sink_before:,.0f} more at the sink after the load")
    counter = pipeline.COUNTERS["json" if target.setup == "json" else "cbor_zstd"]
    written = counter(directory / "out")
    expected = round(drain.accepted * written_share(run, target))
    extra["written_total"] = written
    return join(note, pipeline.delivered_note(written, expected, "written"))


def rotel_after_load(sink: Server, at_end: int, extra: dict[str, object], settle: float = 1.0) -> str:
    """Rotel batches (200 ms): wait until the sink's count stops moving."""
    last = ingest.settled(lambda: pipeline.sink_spans(sink), quiet=settle, limit=30)
    extra["sink_after_load"] = last - at_end
    return f"{last - at_end:,.0f} more at the sink after the load"


# --- cases, ratios and aims -------------------------------------------------


def run_cases(run: Run, names: tuple[str, ...], rounds: int = 1) -> list[Outcome]:
    """Each case's targets measured `rounds` times in turn (floor, Rotel, router, floor, ...):
    on a host whose speed drifts over minutes, each ratio is the median of its rounds' ratios."""
    measured: dict[tuple[int, str], Measurement | None] = {}

    def get(target: Target | None, round_: int) -> Measurement | None:
        if target is None:
            return None
        if (round_, target.key) not in measured:
            try:
                measured[(round_, target.key)] = measure_target(run, target, round_)
            except BenchError as error:
                log(f"  {target.key} FAILED: {str(error).splitlines()[0]}")
                if not any(f.startswith(target.key + ":") for f in run.failures):
                    run.failures.append(f"{target.key}: {error}")
                measured[(round_, target.key)] = None
        return measured[(round_, target.key)]

    outcomes = []
    for spec in CASES:
        if spec.name not in names:
            continue
        log(f"== {spec.name}: {spec.label}")
        each = []
        for round_ in range(rounds):
            if rounds > 1:
                log(f"  round {round_ + 1} of {rounds}")
            floor, rotel = get(spec.floor, round_), get(spec.rotel, round_)  # peers first, then the router
            format_floor = get(spec.format_floor, round_)
            each.append(Outcome(spec.name, spec.label, get(spec.router, round_), rotel, floor, format_floor))
            set_ratios(each[-1])
        outcome = median_outcome(each)
        judge(spec, outcome)
        outcomes.append(outcome)
    return outcomes


RATIOS = {"vs_rotel": "r/Rotel", "vs_floor": "r/floor", "cpu_vs_rotel": "per CPU-s r/Rotel",
          "cpu_vs_floor": "per CPU-s r/floor", "vs_format_floor": "r/format floor",
          "format_floor_vs_floor": "format floor/floor"}


def median_outcome(each: list[Outcome]) -> Outcome:
    """One outcome of a case's rounds: each ratio the median of the rounds' (the lower middle one
    of an even count), the measurements shown those of the round whose main ratio is that median."""
    if len(each) == 1:
        return each[0]

    def median(values: list[float]) -> float | None:
        return sorted(values)[(len(values) - 1) // 2] if values else None

    main = "vs_floor" if any(o.vs_floor is not None for o in each) else "vs_rotel"
    middle = median([v for o in each if (v := getattr(o, main)) is not None])
    shown = next((o for o in each if getattr(o, main) == middle), each[0])
    out = replace(shown, aims=[])
    for name in RATIOS:
        setattr(out, name, median([v for o in each if (v := getattr(o, name)) is not None]))
    out.rounds = [{name: getattr(o, name) for name in RATIOS} for o in each]
    return out


def ratio(a: Measurement | None, b: Measurement | None) -> float | None:
    if a is None or b is None or not b.spans_per_s:
        return None
    return a.spans_per_s / b.spans_per_s


def cpu_ratio(a: Measurement | None, b: Measurement | None) -> float | None:
    if a is None or b is None or not a.cpu_s_per_m or b.cpu_s_per_m is None:
        return None
    return b.cpu_s_per_m / a.cpu_s_per_m


def set_ratios(outcome: Outcome) -> None:
    outcome.vs_rotel = ratio(outcome.router, outcome.rotel)
    outcome.vs_floor = ratio(outcome.router, outcome.floor)
    outcome.vs_format_floor = ratio(outcome.router, outcome.format_floor)
    outcome.format_floor_vs_floor = ratio(outcome.format_floor, outcome.floor)
    outcome.cpu_vs_rotel = cpu_ratio(outcome.router, outcome.rotel)
    outcome.cpu_vs_floor = cpu_ratio(outcome.router, outcome.floor)


def judge(spec: CaseSpec, outcome: Outcome) -> None:
    """The case's aims, on its ratios (set_ratios, or the medians of its rounds)."""
    for peer, least in spec.aims:
        value = outcome.vs_rotel if peer == "rotel" else outcome.vs_floor
        outcome.aims.append({"aim": f"router/{'Rotel' if peer == 'rotel' else 'floor'} >= {least:g}x",
                             "value": value, "met": None if value is None else value >= least})  # fmt: skip
    router = outcome.router
    if router is not None and router.rss_mb is not None:
        outcome.aims.append({"aim": f"RSS <= {RSS_AIM_MB:.0f} MB per worker", "value": router.rss_mb,
                             "met": router.rss_mb <= RSS_AIM_MB})  # fmt: skip


# --- output -----------------------------------------------------------------


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def cpu(value: float | None) -> str:
    return fmt(value, ".1f" if value is not None and value < 10 else ".0f")


def k(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f}k" if value < 100_000 else f"{value / 1000:.0f}k"


def aim_text(aim: dict[str, object]) -> str:
    value, met = aim["value"], aim["met"]
    shown = "-" if value is None else (f"{value:.0f} MB" if "RSS" in str(aim["aim"]) else f"{value:.2f}")
    verdict = "n/a" if met is None else ("MET" if met else "MISSED")
    return f"{aim['aim']}: {shown} {verdict}"


def peer_cell(m: Measurement | None) -> str:
    if m is None:
        return "-"
    mark = "*" if m.noisy else ""
    return f"{k(m.spans_per_s)}{mark} ({cpu(m.cpu_s_per_m_accepted)} CPU-s/M, {fmt(m.rss_mb, '.0f')} MB)"


FIGURES = {"in": "acknowledged", "sink": "at the sink", "written": "written"}


def format_report(run: Run, outcomes: list[Outcome], header: dict[str, object]) -> str:
    lines = [
        f"peers: {header['seconds']}s per case after {WARMUP}s warm-up"
        + (f", {header['rounds']} rounds of each case's targets in turn" if header["rounds"] > 1 else "")
        + f", wrk {CONNECTIONS} keep-alive connections "
        f"on cpu {header['loadgen_cpu']}, each server with all its threads and children on cpu "
        f"{header['server_cpu']}; cores {header['busy_before']:.0%} busy before load, load average "
        f"{header['load_average']}",
        f"payloads: plain {header['plain_bytes']:,} B protobuf / {header['plain_json_bytes']:,} B JSON "
        f"(100 spans x 10 attributes); genai {header['genai_bytes']:,} B protobuf (100 spans, ~{CONTENT_BYTES} B "
        "of content on every other span; the file cases with new trace ids in every request)",
        f"rotel: {run.agent_version} (PyPI rotel {ROTEL_VERSION}, rotel-sdk {ROTEL_SDK_VERSION}), {run.agent}",
        "",
        "spans/s: acknowledged (ingest rows), at the sink (forwarding rows), written (file rows); in brackets the "
        "server's CPU seconds per million spans acknowledged and its peak RSS",
        f"{'case':<58} {'router':>30} {'Rotel':>30} {'floor':>10} {'r/Rotel':>8} {'r/floor':>8}"
        f" {'per CPU-s: r/Rotel':>19} {'r/floor':>8}",
    ]
    for o in outcomes:
        floor = (k(o.floor.spans_per_s) + ("*" if o.floor.noisy else "")) if o.floor else "-"
        lines.append(
            f"{o.label:<58} {peer_cell(o.router):>30} {peer_cell(o.rotel):>30} {floor:>10} "
            f"{fmt(o.vs_rotel, '.2f'):>8} {fmt(o.vs_floor, '.2f'):>8}"
            f" {fmt(o.cpu_vs_rotel, '.2f'):>19} {fmt(o.cpu_vs_floor, '.2f'):>8}"
        )
    formats = [o for o in outcomes if o.format_floor is not None]
    if formats:
        lines += ["", "format floors (bench/floor_http.py --store: the floor's parse and, before the answer, the "
                  "least work of the format: a durable file per trace, or the body into zstd objects; no spool):"]
        lines += [f"  {o.case:<22} {peer_cell(o.format_floor)}: {fmt(o.format_floor_vs_floor, '.2f')} of the floor, "
                  f"router {fmt(o.vs_format_floor, '.2f')} of it" for o in formats]
    if any(m is not None and m.noisy for o in outcomes for m in (o.router, o.rotel, o.floor, o.format_floor)):
        lines.append(f"* NOISY: other processes took > {ingest.OTHER_CPU_WARNING:.0%} of the server's or the load "
                     "generator's core while it was measured (shares below); rerun on a quiet machine")
    if any(o.rounds for o in outcomes):
        lines += ["", "ratios of each round (measured in turn; the table shows their medians, and the "
                  "measurements of the round whose ratio to the floor, or else to Rotel, is that median):"]
        for o in outcomes:
            lines.append(f"  {o.case:<22} " + "; ".join(
                f"{label} " + " ".join(fmt(r[name], ".2f") for r in o.rounds)
                for name, label in RATIOS.items() if any(r[name] is not None for r in o.rounds)))
    lines += ["", f"aims (issue 17), each a ratio in this run{' (medians of its rounds)' if header['rounds'] > 1 else ''}:"]
    for o in outcomes:
        if o.aims:
            lines.append(f"  {o.case:<22} " + "; ".join(aim_text(a) for a in o.aims))
    lines += ["", "measurements (the figure compared, CPU-s/M = server CPU seconds per million of it; "
              "and what was acknowledged):"]
    seen: set[str] = set()
    for o in outcomes:
        for m in (o.router, o.rotel, o.floor, o.format_floor):
            if m is None or m.target in seen:
                continue
            seen.add(m.target)
            accepted = "" if m.figure == "in" else f", {k(m.accepted_per_s)} acknowledged " \
                f"({cpu(m.cpu_s_per_m_accepted)} CPU-s/M acknowledged)"
            lines.append(
                f"  {m.target:<36} {k(m.spans_per_s):>7} {FIGURES[m.figure]} ({cpu(m.cpu_s_per_m)} CPU-s/M)"
                f"{accepted}; cpu {m.cpu_share:.2f}, "
                f"{m.processes} process(es), errors {m.errors}" + (f"; {m.note}" if m.note else "")
            )
    lines += [
        "",
        "router: python -m otlp_router run, workers: 1, spool disk fsync batch (durable) unless 'memory'; "
        "Rotel has no durable queue (in-memory batches), so one Rotel run serves both protobuf rows",
        "rotel flags: " + "; ".join(f"[{key}] {' '.join(flags)}" for key, flags in run.rotel_flags.items()),
    ]
    if run.processor_note:
        lines.append(f"rotel processor: {run.processor} ({run.processor_note})")
    lines += [f"FAILED {failure.splitlines()[0]}" for failure in run.failures]
    return "\n".join(lines)


# --- main -------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per case (default 10)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each case's targets this many times in turn and judge the median "
                             "ratios (default 1)")
    parser.add_argument("--only", default=",".join(CASE_NAMES), help=f"cases, comma separated: {','.join(CASE_NAMES)}")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--rotel-agent", help="a rotel-agent binary to use instead of the PyPI one")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="seconds for a router's spools to empty after the load (default 60)")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for a server")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    args = parser.parse_args(argv)
    args.cases = tuple(c.strip() for c in args.only.split(",") if c.strip())
    if not args.cases or set(args.cases) - set(CASE_NAMES):
        parser.error(f"--only takes {','.join(CASE_NAMES)}; got {args.only!r}")
    if args.seconds < 1:
        parser.error("--seconds is at least 1")
    if args.rounds < 1:
        parser.error("--rounds is at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_signals()
    options = ingest.Options(only="router", duration=args.seconds, warmup=WARMUP, connections=CONNECTIONS,
                             ready_timeout=args.ready_timeout, keep=args.keep, json=args.json)  # fmt: skip
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="otlp-peers-bench-"))
    started = time.monotonic()
    try:
        ensure_tool("wrk", "wrk")
        agent, version = ensure_rotel(args.rotel_agent)
        log(f"rotel: {version} at {agent}")
        cpus = choose_cpus(workdir)
        if cpus.loadgen is not None:
            os.sched_setaffinity(0, {cpus.loadgen})  # this process's samplers stay off the server core
        busy = idle_check(cpus)
        log(f"servers on cpu {cpus.server}, wrk and the sink on cpu {cpus.loadgen}; cores {busy:.0%} busy before load")
        if busy > ingest.OTHER_CPU_WARNING:
            log("warning: the bench cores are busy before any load (other processes); rows will read low")
        built = payloads.build_payloads()
        plain_dir = workdir / "payload-plain"
        plain_dir.mkdir()
        plain = ingest.Bench(options, children, cpus, workdir, payloads.write_payloads(built, plain_dir), built)
        request = genai_request()
        genai_built = pipeline_payloads.build(request, pipeline_payloads.ITEMS)
        # Per-trace files need new traces in every request (as from real traffic); elsewhere the same
        # body every time, as building new ids in Lua costs wrk more than the floor takes per request.
        genai = harness.make_bench(plain, "genai", genai_built)
        unique = harness.make_bench(plain, "genai-unique", genai_built, unique_ids=request)
        benches = {"plain": plain, "genai": genai, "genai-unique": unique}
        if "genai-cbor-distinct" in args.cases:
            # Prompts of their own in every request, as from real traffic: zstd cannot find the
            # previous request's content again (DISTINCT_BODIES x 351 KB of records is past its window).
            variants = [genai_request(seed=1000 + n) for n in range(DISTINCT_BODIES)]
            benches["genai-distinct"] = harness.make_bench(plain, "genai-distinct", genai_built, unique_ids=request,
                                                           variants=variants)
        run = Run(options, children, workdir, benches, agent, version, args.drain_timeout,
                  genai_bytes=len(genai_built.protobuf))  # fmt: skip
        if {"genai-cbor", "genai-cbor-distinct"} & set(args.cases):
            try:
                run.genai_share = pipeline.genai_share()
            except Exception as error:  # the router's tree is being edited
                log(f"warning: could not compute the GenAI share of the payload: {error}")
        header = {"seconds": args.seconds, "rounds": args.rounds, "server_cpu": cpus.server, "loadgen_cpu": cpus.loadgen,
                  "busy_before": busy, "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
                  "plain_bytes": len(built.protobuf), "plain_json_bytes": len(built.json),
                  "genai_bytes": len(genai_built.protobuf)}  # fmt: skip
        outcomes = run_cases(run, args.cases, args.rounds)
    except BenchError as error:
        log(f"peers benchmark failed: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; children stopped")
        return 130
    finally:
        children.stop_all()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {time.monotonic() - started:.0f}s")
    if args.json:
        print(json.dumps({
            "header": header, "rotel": {"agent": str(run.agent), "version": run.agent_version,
                                        "pypi": {"rotel": ROTEL_VERSION, "rotel-sdk": ROTEL_SDK_VERSION},
                                        "flags": run.rotel_flags, "processor": run.processor_note},
            "cases": [asdict(o) for o in outcomes], "failures": run.failures,
        }, indent=2))  # fmt: skip
    else:
        print(format_report(run, outcomes, header))
        for failure in run.failures:
            print(f"\nFAILED {failure}")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
