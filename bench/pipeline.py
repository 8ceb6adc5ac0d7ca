"""Pipeline benchmarks: what the stages after ingest cost, each measured in
the same run beside ingest alone (router -> discard, memory spool) on the
same payload.

Payload (pipeline_payloads.py): 100 GenAI spans x 10 attributes, half of them
with prompt/completion content, roots with OpenRouter trace fields; sent as
OTLP/HTTP protobuf with new trace ids in every request (wrk_unique.lua), so
per-trace destinations see new traces as in real traffic.

Groups (--only):
  privacy  3 routes (all / half / default) to two discards, one `privacy: true`,
           OpenRouter mapping on; plus the in-process cost of Pipeline.prepare
           (route + map + privacy) against the upb decode of the same request
  forward  router -> otlp_http protobuf (gzip, then none) -> sink_http.py,
           and route+map+privacy -> two forwards; the sink shares the load
           generator's core; every acknowledged span must reach the sink
  formats  file destinations: per-trace JSON (trace_idle 1s), cbor_zstd
           (every 1s), otlp_json; spans written are counted after the drain
  spool    disk spool, fsync batch and fsync always, against memory
  signals  logs (100 records x 10 attributes) and metrics (100 data points)

    python bench/pipeline.py                     # every group, 8 s per case
    python bench/pipeline.py --only privacy,spool --duration 5
    python bench/pipeline.py --json

Not a test. bench/run_all.py calls `run_groups` with its own Bench.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cbor2
import orjson
import zstandard

if __package__:
    from . import harness, ingest, pipeline_payloads
    from .harness import (
        Row,
        failed_row,
        measure_row,
        start_router,
        start_script,
        yaml_path,
    )
    from .procs import BenchError, Server, exit_on_signals, log
else:
    import harness
    import ingest
    import pipeline_payloads
    from harness import (
        Row,
        failed_row,
        measure_row,
        start_router,
        start_script,
        yaml_path,
    )
    from procs import BenchError, Server, exit_on_signals, log

GROUPS = ("privacy", "forward", "formats", "spool", "signals")
INGEST_ONLY = "ingest only -> discard"
HTTP_PROTOBUF = ingest.Case("router", "http", "protobuf")
# The issue's aims that are ratios to ingest only.
AIMS = {"forward": 0.67, "formats": 0.5, "spool batch": 0.7}


@dataclass
class Context:
    """Benches for each payload of the pipeline cases, and their options."""

    genai: ingest.Bench  # GenAI traces with content, new trace ids per request
    logs: ingest.Bench
    metrics: ingest.Bench
    drain_timeout: float = 120.0


def new_context(base: ingest.Bench, drain_timeout: float = 120.0) -> Context:
    request = pipeline_payloads.genai_request()
    items = pipeline_payloads.ITEMS
    return Context(
        genai=harness.make_bench(base, "genai", pipeline_payloads.build(request, items), unique_ids=request),
        logs=harness.make_bench(base, "logs", pipeline_payloads.build(pipeline_payloads.logs_request(), items)),
        metrics=harness.make_bench(
            base, "metrics", pipeline_payloads.build(pipeline_payloads.metrics_request(), items)
        ),
        drain_timeout=drain_timeout,
    )


# --- configs ----------------------------------------------------------------


def memory_spool(directory: Path) -> str:
    return f"spool: {{dir: {yaml_path(directory / 'spool')}, type: memory}}\n"


def one_destination(spool: str, destination: str) -> str:
    return f"{spool}routes:\n  - {{name: all, destinations: [out]}}\ndestinations:\n  out: {destination}\n"


def privacy_routes(spool: str, plain: str, private: str) -> str:
    """Three routes: every span (gen_ai.operation.name exists), half of them
    (2 of 4 providers), and a default; the half go to a destination with
    privacy on. OpenRouter mapping on, so root spans get mapped."""
    return f"""{spool}mapping: {{openrouter: true}}
routes:
  - name: every-genai-span
    match: {{attribute: gen_ai.operation.name, exists: true}}
    destinations: [plain]
  - name: half
    match: {{attribute: gen_ai.provider.name, in: [openai, groq]}}
    destinations: [private]
  - name: fallback
    default: true
    destinations: [plain]
destinations:
  plain: {plain}
  private: {private}
"""


def otlp_http(sink: Server, compression: str, privacy: bool = False) -> str:
    url = f"http://127.0.0.1:{sink.ports['http']}/v1/traces"
    return (
        f"{{type: otlp_http, endpoint: {url}, encoding: protobuf, compression: {compression}"
        + (", privacy: true}" if privacy else "}")
    )


FORMATS = {
    "json": "{{type: file, dir: {dir}, format: json, trace_idle: 1s}}",
    "cbor_zstd": "{{type: file, dir: {dir}, format: cbor_zstd, every: 1s, limit: 10000}}",
    "otlp_json": "{{type: file, dir: {dir}, format: otlp_json}}",
}
FORMAT_LABELS = {
    "json": "file json (per-trace, trace_idle 1s)",
    "cbor_zstd": "file cbor_zstd (every 1s)",
    "otlp_json": "file otlp_json",
}


# --- running a router case --------------------------------------------------


def router_case(
    bench: ingest.Bench,
    name: str,
    rest: str,
    body: Callable[[Server], list[Row]],
    payload: str = "genai",
    cpus: str | None = None,
) -> list[Row]:
    """Start a router with `rest` (on `cpus`, default the server core), run
    `body`, stop it. A router that fails to start, dies, or answers errors
    other than 429 is recorded with its config and log tail."""
    try:
        server = start_router(bench, name, rest, cpus)
    except BenchError as error:
        record_failure(bench, name, f"did not start: {error}", rest, "")
        return [failed_row(name, payload, error)]
    died = None
    try:
        rows = body(server)
        died = server.proc.poll()
    except BenchError as error:
        died = server.proc.poll()
        record_failure(bench, name, str(error).splitlines()[0], rest, server.log_text())
        rows = [failed_row(name, payload, error)]
    finally:
        bench.children.stop(server.proc)
    for row in rows:
        row.note = join(row.note, refusal_note(row))
    if died is not None:
        record_failure(bench, name, f"router died with code {died}", rest, server.log_text())
    elif any(unexpected_errors(row) for row in rows):
        record_failure(bench, name, "router answered errors other than 429", rest, server.log_text())
    return rows


def refused(row: Row) -> dict[str, float]:
    window = row.extra.get("window")
    return dict(window["refused"]) if isinstance(window, dict) else {}


def unexpected_errors(row: Row) -> bool:
    """Errors other than 429 (a full spool pushing back, as designed) or
    socket errors: those are the router failing."""
    return row.errors > refused(row).get("429", 0)


def refusal_note(row: Row) -> str:
    answers = refused(row)
    if not answers:
        return ""
    parts = [f"{count:,.0f}x {status}" for status, count in sorted(answers.items())]
    why = " (spool full: backpressure)" if set(answers) == {"429"} else ""
    return "router refused " + ", ".join(parts) + why


def record_failure(bench: ingest.Bench, name: str, what: str, config: str, log_text: str) -> None:
    tail = "\n".join(log_text.splitlines()[-30:])
    bench.failures.append(f"{name}: {what}\n--- config (after receivers) ---\n{config}--- router log tail ---\n{tail}")
    log(f"  {name}: {what}")


def measured(bench: ingest.Bench, label: str, payload: str = "genai", case: ingest.Case = HTTP_PROTOBUF,
             item: str = "spans", sidecar: Server | None = None) -> Callable[[Server], list[Row]]:
    """A router case body that measures one row and nothing else."""
    return lambda server: [measure_row(bench, server, case, label, payload, item, sidecar)]


# --- groups -----------------------------------------------------------------


def ingest_only(ctx: Context) -> list[Row]:
    directory = ctx.genai.workdir / "ingest-only"
    rest = one_destination(memory_spool(directory), "{type: discard}")
    return router_case(ctx.genai, "ingest-only", rest, measured(ctx.genai, INGEST_ONLY))


def privacy_group(ctx: Context) -> list[Row]:
    directory = ctx.genai.workdir / "privacy"
    rest = privacy_routes(memory_spool(directory), "{type: discard}", "{type: discard, privacy: true}")
    rows = router_case(ctx.genai, "privacy", rest, measured(ctx.genai, "route+map+privacy -> 2 discards"))
    micro = micro_prepare(rest, pipeline_payloads.genai_request())
    rows.append(micro_row(micro))
    return rows


def forward_group(ctx: Context) -> list[Row]:
    """The sink runs on the load generator's core: with two cores the router
    keeps one to itself, and the sink and wrk share the other."""
    bench = ctx.genai
    sink = start_script(bench, "sink", "sink_http.py", "sink ready", bench.cpus.loadgen)
    try:
        rows = []
        for compression in ("gzip", "none"):
            rest = one_destination(memory_spool(bench.workdir / f"forward-{compression}"),
                                   otlp_http(sink, compression))  # fmt: skip
            label = f"forward otlp_http protobuf {compression}" + (" (default)" if compression == "gzip" else "")
            rows += router_case(bench, f"forward-{compression}", rest, forwarded(ctx, label, sink))
        rest = privacy_routes(memory_spool(bench.workdir / "e2e"), otlp_http(sink, "gzip"),
                              otlp_http(sink, "gzip", privacy=True))  # fmt: skip
        rows += router_case(bench, "e2e", rest, forwarded(ctx, "route+map+privacy -> 2 forwards (gzip)", sink))
        return rows
    finally:
        bench.children.stop(sink.proc)


def sink_spans(sink: Server) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{sink.ports['http']}/stats", timeout=10) as response:
        return int(json.load(response)["spans"])


def forwarded(ctx: Context, label: str, sink: Server) -> Callable[[Server], list[Row]]:
    """Measure, wait for the spools to drain, then check the sink got every
    span the router's destinations confirmed."""

    def body(server: Server) -> list[Row]:
        before = sink_spans(sink)
        row = measure_row(ctx.genai, server, HTTP_PROTOBUF, label, "genai", sidecar=sink)
        drain = harness.wait_drained(server, ctx.drain_timeout)
        arrived = sink_spans(sink) - before
        row.note = join(row.note, drain_note(drain), delivered_note(arrived, drain.sent, "at the sink"))
        row.extra.update(asdict(drain), delivered=arrived)
        return [row]

    return body


def formats_group(ctx: Context) -> list[Row]:
    rows = []
    for fmt, template in FORMATS.items():
        directory = ctx.genai.workdir / f"format-{fmt}"
        out = directory / "out"
        rest = one_destination(memory_spool(directory), template.format(dir=yaml_path(out)))
        rows += router_case(ctx.genai, f"format-{fmt}", rest, stored(ctx, FORMAT_LABELS[fmt], fmt, out))
    return rows


def stored(ctx: Context, label: str, fmt: str, out: Path) -> Callable[[Server], list[Row]]:
    def body(server: Server) -> list[Row]:
        # Aperture records are for model calls only (not execute_tool spans).
        share = genai_share() if fmt == "cbor_zstd" else 1.0
        row = measure_row(ctx.genai, server, HTTP_PROTOBUF, label, "genai", written_share=share)
        drain = harness.wait_drained(server, ctx.drain_timeout)
        written = COUNTERS[fmt](out)
        shutil.rmtree(out, ignore_errors=True)  # gigabytes at full speed: free them at once
        expected = round(drain.accepted * share)
        row.note = join(row.note, drain_note(drain), delivered_note(written, expected, "written"))
        row.extra.update(asdict(drain), written=written)
        return [row]

    return body


def spool_group(ctx: Context) -> list[Row]:
    rows = []
    for fsync in ("batch", "always"):
        directory = ctx.genai.workdir / f"spool-{fsync}"
        spool = f"spool: {{dir: {yaml_path(directory / 'spool')}, type: disk, fsync: {fsync}}}\n"
        rest = one_destination(spool, "{type: discard}")
        rows += router_case(ctx.genai, f"spool-{fsync}", rest, measured(ctx.genai, f"spool disk fsync {fsync}"))
        shutil.rmtree(directory / "spool", ignore_errors=True)
    return rows


def signals_group(ctx: Context) -> list[Row]:
    rows = []
    for bench, signal, item in ((ctx.logs, "logs", "log records"), (ctx.metrics, "metrics", "data points")):
        rest = one_destination(memory_spool(bench.workdir / f"signal-{signal}"), "{type: discard}")
        case = ingest.Case("router", "http", "protobuf", signal)
        label = f"{signal} ingest -> discard"
        rows += router_case(bench, f"signal-{signal}", rest, measured(bench, label, signal, case, item))
    return rows


GROUP_RUNNERS: dict[str, Callable[[Context], list[Row]]] = {
    "privacy": privacy_group,
    "forward": forward_group,
    "formats": formats_group,
    "spool": spool_group,
    "signals": signals_group,
}


def run_groups(ctx: Context, groups: tuple[str, ...]) -> list[Row]:
    """Ingest only first, then each group; ratios to ingest only."""
    rows = ingest_only(ctx)
    for group in groups:
        rows += GROUP_RUNNERS[group](ctx)
    add_ratios(rows)
    return rows


def add_ratios(rows: list[Row]) -> None:
    base = next((r for r in rows if r.case == INGEST_ONLY and r.items_per_s), None)
    if base is None:
        return
    for row in rows:
        if row.items_per_s and row.extra.get("kind") != "micro":
            row.vs_ingest = row.items_per_s / base.items_per_s


# --- route + map + privacy in-process ---------------------------------------


@dataclass
class Micro:
    decode_us: float  # upb FromString, per span
    inspect_us: float  # the receiver's id checks and item count, per span
    prepare_us: float  # Pipeline.prepare: route + map + privacy, per span

    @property
    def ratio(self) -> float:
        return self.prepare_us / self.decode_us


def micro_prepare(rest: str, request: object, rounds: int = 7, batches: int = 200) -> Micro:
    """Time Pipeline.prepare on batches decoded beforehand (prepare shapes
    messages in place, so each call needs a fresh one), against FromString.
    Runs in this process, on the load generator's core."""
    sys.path.insert(0, str(harness.REPO_ROOT))
    from otlp_router.config import parse
    from otlp_router.model.batch import Batch
    from otlp_router.model.signals import TRACES
    from otlp_router.pipeline import Pipeline
    from otlp_router.routing.openrouter import OpenRouterMapping

    config = parse(harness.router_yaml({"http": 1, "grpc": 2, "admin": 3}, rest), "micro.yaml")
    shaping = {name: d.shaping for name, d in config.destinations.items()}
    mapping = OpenRouterMapping() if config.openrouter_mapping else None
    pipeline = Pipeline(config.routing, {}, shaping, mapping)
    wire = request.SerializeToString()  # type: ignore[attr-defined]
    parse_type = TRACES.request_type
    items = TRACES.inspect(parse_type.FromString(wire))[0]
    decode = harness.seconds_per_call(lambda: parse_type.FromString(wire))
    message = parse_type.FromString(wire)
    inspect = harness.seconds_per_call(lambda: TRACES.inspect(message))
    best = float("inf")
    for _ in range(rounds):
        fresh = [Batch(TRACES, parse_type.FromString(wire), items, wire) for _ in range(batches)]
        started = time.perf_counter()
        for batch in fresh:
            pipeline.prepare(batch)
        best = min(best, (time.perf_counter() - started) / batches)
    per_span = 1e6 / items
    return Micro(decode * per_span, inspect * per_span, best * per_span)


def micro_row(micro: Micro) -> Row:
    note = (
        f"in-process, per span: route+map+privacy {micro.prepare_us:.2f} us, upb decode {micro.decode_us:.2f} us, "
        f"id checks {micro.inspect_us:.2f} us; prepare/decode = {micro.ratio:.2f} (aim < 1)"
    )
    return Row("prepare vs decode (in-process)", 1e6 / micro.prepare_us, note=note,
               payload="genai", extra={"kind": "micro", **asdict(micro), "ratio": micro.ratio})  # fmt: skip


# --- written output ---------------------------------------------------------


def genai_share() -> float:
    """Share of the payload's spans that are model calls, by the router's own
    GenAI view: the spans a cbor_zstd export holds a record for."""
    sys.path.insert(0, str(harness.REPO_ROOT))
    from otlp_router.model.attributes import to_dict
    from otlp_router.model.genai import view

    request = pipeline_payloads.genai_request()
    resource_spans = request.resource_spans[0]
    resource = to_dict(resource_spans.resource.attributes)
    spans = [span for ss in resource_spans.scope_spans for span in ss.spans]
    return sum(view(span, resource).is_genai for span in spans) / len(spans)



def count_otlp_json(out: Path) -> int:
    """Spans in OTLP JSON lines files (one export request per line)."""
    spans = 0
    for path in out.rglob("*.jsonl"):
        with open(path, "rb") as lines:
            for line in lines:
                if line.strip():
                    doc = orjson.loads(line)
                    spans += sum(len(ss.get("spans", [])) for rs in doc.get("resourceSpans", [])
                                 for ss in rs.get("scopeSpans", []))  # fmt: skip
    return spans


def count_trace_json(out: Path) -> int:
    """Observations in per-trace JSON documents: one per span."""
    return sum(len(orjson.loads(path.read_bytes()).get("observations", [])) for path in out.rglob("*.json"))


def aperture_records(data: bytes) -> Iterator[object]:
    """Records of a .cbor.zstd object with zstandard + cbor2 alone, as the
    format promises third-party readers."""
    stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True))
    decoder = cbor2.CBORDecoder(stream)
    while stream.peek(1):
        yield decoder.decode()


def count_cbor_zstd(out: Path) -> int:
    """Aperture records (one per GenAI span; every span of the payload is one)."""
    return sum(sum(1 for _ in aperture_records(path.read_bytes())) for path in out.rglob("*.cbor.zstd"))


COUNTERS: dict[str, Callable[[Path], int]] = {
    "json": count_trace_json,
    "cbor_zstd": count_cbor_zstd,
    "otlp_json": count_otlp_json,
}


# --- notes and output -------------------------------------------------------


def join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def drain_note(drain: harness.Drain) -> str:
    if drain.seconds is None:
        return f"LAGS: spools still not empty after the drain timeout ({drain.accepted - drain.sent:,.0f} short)"
    if drain.rate is None:
        return f"{drain.backlog_at_end:,.0f} queued at load end, drained in {drain.seconds:.1f}s"
    return (
        f"{drain.backlog_at_end:,.0f} queued at load end, drained in {drain.seconds:.1f}s "
        f"({drain.rate:,.0f}/s with no load)"
    )


def delivered_note(delivered: float, expected: float, where: str) -> str:
    if delivered == expected:
        return f"all {delivered:,.0f} {where}"
    return f"MISMATCH: {delivered:,.0f} {where}, expected {expected:,.0f}"


# Rows whose destinations deliver or write: their spools can fill while the
# acknowledged rate still looks good, so their aims go by what came out too.
DELIVERING = ("forward", "route+map+privacy -> 2 forwards", "file ")


def aim_of(row: Row) -> float | None:
    if row.case.startswith(("forward", "route+map+privacy -> 2 forwards")):
        return AIMS["forward"]
    if row.case.startswith("file "):
        return AIMS["formats"]
    if row.case == "spool disk fsync batch":
        return AIMS["spool batch"]
    return None


def sustained(row: Row) -> float:
    """Items/s in, or for delivering rows the lesser of in and out: a
    destination that only keeps up by filling its spool has not kept up."""
    if row.case.startswith(DELIVERING) and row.out_per_s is not None:
        return min(row.items_per_s, row.out_per_s)
    return row.items_per_s


def sustained_ratio(row: Row) -> float | None:
    if row.vs_ingest is None or not row.items_per_s:
        return None
    return row.vs_ingest * sustained(row) / row.items_per_s


def verdict(row: Row) -> str:
    aim, ratio = aim_of(row), sustained_ratio(row)
    if aim is None or ratio is None:
        return ""
    return f">= {aim:.2f}x ingest: " + ("met" if ratio >= aim else f"MISSED by {aim - ratio:.2f}")


def lag_note(row: Row) -> str:
    if not row.case.startswith(DELIVERING) or row.out_per_s is None or row.out_per_s >= 0.9 * row.items_per_s:
        return ""
    return f"LAGS: {row.out_per_s:,.0f}/s left the spool while {row.items_per_s:,.0f}/s came in"


def cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def cpu_cell(row: Row) -> str:
    share = row.extra.get("router_cpu_share")
    return f"{share:.2f}" if isinstance(share, float) else "-"


def format_rows(rows: list[Row]) -> str:
    lines = [
        (
            f"{'case':<46} {'in/s':>10} {'out/s':>10} {'vs ingest':>9} {'us/item':>8} {'cpu':>5} {'RSS MB':>7} "
            f"{'errors':>7}  aim; note"
        ),
    ]
    for r in rows:
        lines.append(
            f"{r.case:<46} {r.items_per_s:>10,.0f} {cell(r.out_per_s, ',.0f'):>10} {cell(r.vs_ingest, '.2f'):>9} "
            f"{cell(r.router_cpu_us, '.2f'):>8} {cpu_cell(r):>5} {cell(r.rss_peak_mb, '.0f'):>7} {r.errors:>7}  "
            f"{join(verdict(r), lag_note(r), r.note)}"
        )
    lines.append(
        "in/s: acknowledged items/s; out/s: items/s that left the router's spools in the same window "
        "(delivered, written, discarded); aims judged on the lesser of the two"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(GROUPS), help=f"groups, comma separated: {','.join(GROUPS)}")
    parser.add_argument("--duration", type=int, default=8, help="measured seconds per case (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds per case (default 2)")
    parser.add_argument("--connections", type=int, default=None, help="wrk connections (default: auto)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds for spools to empty (default 120)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, router logs)")
    parser.add_argument("--json", action="store_true", help="print rows as JSON on stdout")
    args = parser.parse_args(argv)
    args.groups = tuple(g.strip() for g in args.only.split(",") if g.strip())
    if not args.groups or set(args.groups) - set(GROUPS):
        parser.error(f"--only takes {','.join(GROUPS)}; got {args.only!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_signals()
    options = ingest.Options(only="router", duration=args.duration, warmup=args.warmup,
                             connections=args.connections, keep=args.keep, json=args.json)  # fmt: skip
    try:
        with harness.open_bench(options) as base:
            ctx = new_context(base, args.drain_timeout)
            rows = run_groups(ctx, args.groups)
            failures = list(base.failures)
    except BenchError as error:
        log(f"pipeline benchmark failed: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; children stopped")
        return 130
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows], "failures": failures}, indent=2))
    else:
        print(format_rows(rows))
        for failure in failures:
            print(f"\nFAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
