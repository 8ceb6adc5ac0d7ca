"""The GenAI storage formats in-process, on the bench GenAI payload (bench/pipeline_payloads.py
genai_request: 100 spans in ten traces, content on every other one): CPU microseconds per span
of what a file or S3 destination does once a trace or an object closes, against a upb parse of
the same request measured in the same run (these machines are noisy: the ratio holds).

    python bench/formats_inprocess.py [--rounds 200] [--profile] [--resource-attributes 15]

Rows: `per-trace JSON` is trace_json.trace_document + encode_document for each trace, from the
spans as the assembler keeps them (one protobuf per span, parsed again at close); `native
per-trace JSON` is the same document written by the core from those bytes (trace_json.encode_trace:
native/src/genai); `Aperture` is
the canonical view + aperture.record + encode_record for each model call, `native Aperture`
the records of the whole request made by the core from its bytes in one call (what the
RecordBatcher asks), and `Aperture batcher` all the destination does with the request: the
batcher's records, compressed into an object, and the object's bytes. `--profile` prints
where the per-trace JSON time goes (cProfile, by own time), the map of what to move into the
native core next. `--resource-attributes N` gives the request's Resource N more attributes of
the kind an OTel SDK sets (telemetry.sdk.*, host.*, process.*; the payload has service.name only).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pipeline_payloads  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from otlp_router.destinations import assembly  # noqa: E402
from otlp_router.destinations.formats import aperture, trace_json  # noqa: E402
from otlp_router.model import genai  # noqa: E402
from otlp_router.model.batch import Batch  # noqa: E402
from otlp_router.model.signals import TRACES  # noqa: E402
from otlp_router.spool.base import Entry  # noqa: E402

SPANS = pipeline_payloads.ITEMS


Kept = list[trace_json.KeptSpan]


def kept_spans(wire: bytes) -> dict[bytes, Kept]:
    """The request's spans by trace as the assembler keeps them: bytes, resource, scope."""
    traces: dict[bytes, Kept] = {}
    for rs in ExportTraceServiceRequest.FromString(wire).resource_spans:
        resource = rs.resource.SerializeToString()
        for ss in rs.scope_spans:
            for span in ss.spans:
                traces.setdefault(span.trace_id, []).append(
                    (span.SerializeToString(), resource, ss.scope.name, ss.scope.version))
    return traces


def per_trace_json(traces: dict[bytes, Kept]) -> None:
    for trace_id, parts in traces.items():
        trace_json.encode_document(trace_json.trace_document(trace_id, trace_json.span_refs(parts)))


def native_per_trace_json(traces: dict[bytes, Kept]) -> None:
    for trace_id, parts in traces.items():
        trace_json.encode_trace(trace_id, parts)


def aperture_records(traces: dict[bytes, Kept]) -> None:
    record_id = 0
    for parts in traces.values():
        for ref in trace_json.span_refs(parts):
            view = genai.view(ref.span, ref.resource, ref.scope_name, ref.scope_version)
            if view.is_genai:
                record_id += 1
                record = aperture.record(ref, view, record_id=record_id, privacy=False, api_key_name=None)
                if record is not None:
                    aperture.encode_record(record)


def native_aperture_records(wire: bytes) -> None:
    """The records of the whole request in one call, as the batcher asks for them."""
    _, made, stop = genai.native_table().aperture_records(wire, 0, 0, 1, False, None)
    assert made and stop is None


def aperture_batcher(batcher: assembly.RecordBatcher, wire: bytes) -> None:
    """What the destination does with a request: its records into the open object, and the
    bytes of each object that fills (10,000 records)."""
    batch = Batch(TRACES, None, SPANS, wire)
    batcher.add(Entry(batch, batch.size, 1), 0.0, lambda entry: None)
    for group in batcher.due(0.0):
        group.records.finish()


# What an OTel SDK and its resource detectors put on a Resource besides service.name.
SDK_RESOURCE = (("telemetry.sdk.language", "python"), ("telemetry.sdk.name", "opentelemetry"),
                ("telemetry.sdk.version", "1.27.0"), ("service.version", "2.4.1"),
                ("deployment.environment", "production"), ("host.name", "ip-10-0-3-17"), ("host.arch", "amd64"),
                ("os.type", "linux"), ("process.pid", "4242"), ("process.runtime.name", "cpython"),
                ("process.runtime.version", "3.11.7"), ("cloud.provider", "aws"), ("cloud.region", "eu-west-1"),
                ("k8s.namespace.name", "llm"), ("k8s.pod.name", "gateway-7d9f8c6b5-x2x4q"))


def cpu_per_span(run: Callable[[], None], rounds: int) -> float:
    """Process CPU microseconds per span, the minimum of 5 repeats."""
    run()
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(rounds):
            run()
        best = min(best, (time.process_time() - start) / rounds / SPANS * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--resource-attributes", type=int, default=0, choices=range(len(SDK_RESOURCE) + 1),
                        metavar=f"0..{len(SDK_RESOURCE)}")
    args = parser.parse_args()
    request = pipeline_payloads.genai_request()
    for key, value in SDK_RESOURCE[:args.resource_attributes]:
        attribute = request.resource_spans[0].resource.attributes.add()
        attribute.key, attribute.value.string_value = key, value
    wire = request.SerializeToString()
    traces = kept_spans(wire)
    batcher = assembly.RecordBatcher(every=float("inf"), limit=10_000, privacy=False)
    floor = cpu_per_span(lambda: ExportTraceServiceRequest.FromString(wire), args.rounds * 20)
    print(f"payload: {len(wire):,} B protobuf, {SPANS} spans in {len(traces)} traces")
    print(f"{'case':<24}{'µs CPU / span':>15}{'× upb parse':>13}")
    print(f"{'upb parse':<24}{floor:>15.2f}{1.0:>13.1f}")
    assert all(genai.native_table().trace_document(t, parts) is not None
               for t, parts in traces.items()), "the core leaves this payload to Python"
    for name, run in (("per-trace JSON", lambda: per_trace_json(traces)),
                      ("native per-trace JSON", lambda: native_per_trace_json(traces)),
                      ("Aperture", lambda: aperture_records(traces)),
                      ("native Aperture", lambda: native_aperture_records(wire)),
                      ("Aperture batcher", lambda: aperture_batcher(batcher, wire))):
        us = cpu_per_span(run, args.rounds)
        print(f"{name:<24}{us:>15.2f}{us / floor:>13.1f}")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [per_trace_json(traces) for _ in range(args.rounds)])
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
