"""Every router benchmark in one run, printed as one table.

Rows: ingest (HTTP protobuf, HTTP JSON, gRPC; ingest.py's payload, router ->
discard, memory spool), the p99 acknowledgement latency of HTTP protobuf at
half its max rate (paced.py), then bench/pipeline.py's cases (GenAI payload:
route+map+privacy, forwarding, storage formats, disk spool, logs, metrics),
and 1 vs N workers when the router has a `workers` setting.

Columns:
  items/s   acknowledged spans (log records, data points) per second
  vs codec  items/s over the in-process upb FromString + SerializeToString
            rate of the same payload, measured in this run: the least a
            receiver that decodes and a spool that encodes would cost
  vs ingest items/s over "ingest only -> discard" on the same (GenAI) payload
  us/item   router CPU (all its threads, /proc/<pid>/stat) per item
  cpu       router cores used while measured (1.00: its core saturated)
  RSS MB    peak RSS of the router over the case (sampled every 100 ms)
  aim       the issue's aim for the row, met or missed by how much

    python bench/run_all.py            # 8 s per case (about 6 minutes)
    python bench/run_all.py --quick    # 3 s per case
    python bench/run_all.py --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__:
    from . import harness, ingest, payloads, pipeline, pipeline_payloads
    from .harness import Row, measure_row
    from .procs import BenchError, Server, exit_on_signals, log, pinned
else:
    import harness
    import ingest
    import payloads
    import pipeline
    import pipeline_payloads
    from harness import Row, measure_row
    from procs import BenchError, Server, exit_on_signals, log, pinned

BENCH_DIR = Path(__file__).resolve().parent
HTTP_PROTOBUF = "ingest HTTP protobuf"
LATENCY = "HTTP protobuf ack latency @ 1/2 max"
WORKERS_N = 2  # a 2-core machine: the router gets one core, N > 2 says nothing more

# The issue's aims: absolute items/s per router process, or a ratio to ingest only.
ABSOLUTE_AIMS: dict[str, float] = {
    HTTP_PROTOBUF: 300_000,
    "ingest gRPC": 200_000,
    "ingest HTTP JSON": 100_000,
    "route+map+privacy -> 2 forwards (gzip)": 150_000,
}


@dataclass(frozen=True)
class Settings:
    duration: int
    json: bool
    keep: bool
    connections: int | None
    drain_timeout: float


# --- in-process codec rates -------------------------------------------------


def codec_rates() -> dict[str, float]:
    """upb parse + serialize rate of each payload, in items/s (this process
    runs on the load generator's core, so the router does not slow it)."""
    requests = {
        "traces": payloads.build_request(),
        "genai": pipeline_payloads.genai_request(),
        "logs": pipeline_payloads.logs_request(),
        "metrics": pipeline_payloads.metrics_request(),
    }
    rates = {}
    for name, request in requests.items():
        rates[name] = harness.codec_rate(type(request), request.SerializeToString(), pipeline_payloads.ITEMS)
        log(f"codec {name}: {rates[name]:,.0f} items/s (upb parse + serialize, in-process)")
    return rates


# --- ingest rows ------------------------------------------------------------


def ingest_rows(bench: ingest.Bench) -> list[Row]:
    """HTTP protobuf, HTTP JSON and gRPC into one router (discard, memory
    spool), then paced latency at half the HTTP protobuf rate."""
    rest = pipeline.one_destination(pipeline.memory_spool(bench.workdir / "ingest"), "{type: discard}")

    def body(server: Server) -> list[Row]:
        cases = (
            (HTTP_PROTOBUF, ingest.Case("router", "http", "protobuf")),
            ("ingest HTTP JSON", ingest.Case("router", "http", "json")),
            ("ingest gRPC", ingest.Case("router", "grpc", "protobuf")),
        )
        rows = [measure_row(bench, server, case, label, "traces") for label, case in cases]
        try:
            rows.append(latency_row(bench, server, rows[0].items_per_s / 2))
        except BenchError as error:
            bench.failures.append(f"{LATENCY}: {error}")
            rows.append(harness.failed_row(LATENCY, "traces", error))
        return rows

    return pipeline.router_case(bench, "ingest", rest, body, payload="traces")


def latency_row(bench: ingest.Bench, server: Server, spans_per_s: float) -> Row:
    """paced.py on the load generator's core at `spans_per_s`."""
    rate = spans_per_s / bench.payloads.spans_per_request
    log(f"{LATENCY}: paced {rate:,.0f} requests/s for {bench.options.duration}s")
    argv = [
        sys.executable, str(BENCH_DIR / "paced.py"), "--url", f"http://127.0.0.1:{server.ports['http']}/v1/traces",
        "--body", str(bench.body["protobuf"]), "--content-type", ingest.CONTENT_TYPES["protobuf"],
        "--rate", f"{rate:.1f}", "--duration", str(bench.options.duration),
    ]  # fmt: skip
    proc = bench.children.spawn(pinned(argv, bench.cpus.loadgen), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=bench.options.duration + 120)
    finally:
        bench.children.stop(proc)
    text = out.decode(errors="replace")
    line = next((l for l in text.splitlines() if l.startswith("PACED_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"paced.py failed ({proc.returncode}):\n{text[-2000:]}")
    result = json.loads(line.removeprefix("PACED_JSON "))
    lagged = result["ok_per_s"] < 0.95 * rate
    note = (
        f"paced {rate:,.0f} req/s (open loop, <= {result['connections']} conns): p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, p99.9 {result['p999_ms']:.1f} ms, max {result['max_ms']:.1f} ms"
        + ("; DID NOT KEEP THE RATE" if lagged else "")
    )
    return Row(LATENCY, result["ok_per_s"] * bench.payloads.spans_per_request, errors=result["errors"]
               + result["failures"], payload="traces", note=note, extra={"kind": "latency", **result})  # fmt: skip


# --- workers ----------------------------------------------------------------


def workers_rows(bench: ingest.Bench, one_worker: Row | None) -> list[Row]:
    """N workers against the 1-worker "ingest HTTP protobuf" row, if the
    router accepts `workers: N` (its config check, run in-process, decides).

    On a 2-core machine no variant is clean: N workers on the router's one
    core show the cost of the split; spread over both cores they share the
    second with the load generator (1 worker over both cores is the fair
    reference for that)."""
    label = f"ingest HTTP protobuf, {WORKERS_N} workers"
    spool = pipeline.memory_spool(bench.workdir / "workers")
    discard = pipeline.one_destination(spool, "{type: discard}")
    refusal = harness.config_refused(f"workers: {WORKERS_N}\n" + discard)
    if refusal is not None:
        return [Row(label, 0.0, payload="traces", note=f"n/a (workers not implemented): {refusal}",
                    extra={"kind": "n/a"})]  # fmt: skip
    both = f"{bench.cpus.server},{bench.cpus.loadgen}" if bench.cpus.server is not None else None
    variants = [(f"{WORKERS_N} workers, router core", WORKERS_N, None)]
    if both is not None:
        variants += [("1 worker, both cores", 1, both), (f"{WORKERS_N} workers, both cores", WORKERS_N, both)]
    case = ingest.Case("router", "http", "protobuf")
    rows: list[Row] = []
    for what, workers, cpus in variants:
        name, label = f"workers-{workers}-{'both' if cpus else 'one'}", f"ingest HTTP protobuf, {what}"
        rest = f"workers: {workers}\n" + pipeline.one_destination(pipeline.memory_spool(bench.workdir / name),
                                                                   "{type: discard}")  # fmt: skip
        measured = pipeline.measured(bench, label, "traces", case)
        rows += pipeline.router_case(bench, name, rest, measured, "traces", cpus)
    for row in rows:
        if "both cores" in row.case:
            # The router runs on the load core too: "other processes" there is the router itself.
            row.noisy = False
            row.note = "router over both cores, sharing the load generator's"
        if one_worker is not None and one_worker.items_per_s and row.items_per_s:
            ratio = row.items_per_s / one_worker.items_per_s
            row.note = pipeline.join(f"{ratio:.2f}x ingest HTTP protobuf (1 worker, router core)", row.note)
    return rows


# --- ratios and aims --------------------------------------------------------


def add_codec_ratios(rows: list[Row], rates: dict[str, float]) -> None:
    for row in rows:
        kind = row.extra.get("kind")
        if row.items_per_s and kind not in ("micro", "n/a", "latency") and row.payload in rates:
            row.extra["vs_codec"] = row.items_per_s / rates[row.payload]


def aim(row: Row) -> str:
    """The issue's aim for this row and whether it was met."""
    if row.case in ABSOLUTE_AIMS:
        target, value = ABSOLUTE_AIMS[row.case], pipeline.sustained(row)
        if not value:
            return f">= {target / 1000:.0f}k: no figure"
        if value >= target:
            return f">= {target / 1000:.0f}k: met"
        return f">= {target / 1000:.0f}k: MISSED by {(target - value) / 1000:.0f}k"
    if row.extra.get("kind") == "micro":
        ratio = float(row.extra["ratio"])  # type: ignore[arg-type]
        return "< 1x decode: met" if ratio < 1 else f"< 1x decode: MISSED ({ratio:.1f}x)"
    return pipeline.verdict(row)


# --- output -----------------------------------------------------------------


def format_table(rows: list[Row], rates: dict[str, float], header: str) -> str:
    lines = [
        header,
        "codec (in-process upb parse+serialize, items/s): "
        + ", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items()),
        (
            f"{'case':<46} {'items/s':>10} {'out/s':>10} {'vs codec':>8} {'vs ingest':>9} {'us/item':>8} "
            f"{'cpu':>5} {'RSS MB':>7}  {'aim':<32} note"
        ),
    ]
    for r in rows:
        items = "n/a" if r.extra.get("kind") == "n/a" else f"{r.items_per_s:,.0f}"
        vs_codec = r.extra.get("vs_codec")
        assert vs_codec is None or isinstance(vs_codec, float)
        errors = f"{r.errors} errors" if r.errors else ""
        lines.append(
            f"{r.case:<46} {items:>10} {pipeline.cell(r.out_per_s, ',.0f'):>10} {pipeline.cell(vs_codec, '.2f'):>8} "
            f"{pipeline.cell(r.vs_ingest, '.2f'):>9} {pipeline.cell(r.router_cpu_us, '.2f'):>8} "
            f"{pipeline.cpu_cell(r):>5} {pipeline.cell(r.rss_peak_mb, '.0f'):>7}  {aim(r):<32} "
            f"{pipeline.join(errors, pipeline.lag_note(r), r.note)}"
        )
    lines.append(
        "items/s: acknowledged; out/s: left the router's spools in the same window (delivered, written, "
        "discarded); ratio aims are judged on the lesser of the two; cpu: router cores used (1.00 = its core "
        "saturated); NOISY: other processes took > 10% of a bench core (a shared machine)"
    )
    return "\n".join(lines)


def header(bench: ingest.Bench, settings: Settings, load: str) -> str:
    return (
        f"run_all: {settings.duration}s per case after {bench.options.warmup}s warm-up; router pinned to cpu "
        f"{bench.cpus.server}, wrk/h2load/paced client/forwarding sink on cpu {bench.cpus.loadgen}; "
        f"load average before: {load}"
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- whole run --------------------------------------------------------------


def run(settings: Settings) -> tuple[list[Row], dict[str, float], list[str], str]:
    options = ingest.Options(only="router", duration=settings.duration, connections=settings.connections,
                             keep=settings.keep, json=settings.json)  # fmt: skip
    load = load_average()
    with harness.open_bench(options) as bench:
        rates = codec_rates()
        rows = ingest_rows(bench)
        rows += pipeline.run_groups(pipeline.new_context(bench, settings.drain_timeout), pipeline.GROUPS)
        rows += workers_rows(bench, next((r for r in rows if r.case == HTTP_PROTOBUF), None))
        add_codec_ratios(rows, rates)
        return rows, rates, list(bench.failures), header(bench, settings, load)


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="measured seconds per case (default 8)")
    parser.add_argument("--quick", action="store_true", help="3 s per case")
    parser.add_argument("--json", action="store_true", help="print rows as JSON on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, router logs)")
    parser.add_argument("--connections", type=int, default=None, help="wrk connections (default: auto)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds for spools to empty (default 120)")
    args = parser.parse_args(argv)
    duration = 3 if args.quick else args.duration
    if duration < 1:
        parser.error("--duration is whole seconds, at least 1")
    return Settings(duration, args.json, args.keep, args.connections, args.drain_timeout)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    exit_on_signals()
    started = time.monotonic()
    try:
        rows, rates, failures, head = run(settings)
    except BenchError as error:
        log(f"run_all failed: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; children stopped")
        return 130
    log(f"done in {time.monotonic() - started:.0f}s; load average now {load_average()}")
    if settings.json:
        doc = {"header": head, "codec_rates": rates, "rows": [asdict(r) for r in rows], "failures": failures}
        print(json.dumps(doc, indent=2))
    else:
        print(format_table(rows, rates, head))
        for failure in failures:
            print(f"\nFAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
