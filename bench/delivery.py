"""The spool and the delivery engine alone, in-process: CPU per span to append
to a durable spool (group commit) and to deliver from it to `discard`, as
spans per CPU-second and as a ratio to the upb parse + serialize of the same
request measured in the same run (CPU time of every thread of the process,
so the spool's fsync threads count; the best of `--runs`).

    python bench/delivery.py [--batches 24000] [--runs 5]

Not a test: nothing in tests/ imports it."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from otlp_router.destinations import build  # noqa: E402
from otlp_router.destinations.delivery import BatchSettings, Delivery, RetrySettings  # noqa: E402
from otlp_router.model.batch import Batch  # noqa: E402
from otlp_router.model.signals import TRACES  # noqa: E402
from otlp_router.settings import Section  # noqa: E402
from otlp_router.spool.disk import DiskSpool  # noqa: E402
from tests.support import make_request  # noqa: E402

SPANS = 100


async def _once(batches: int, wire: bytes) -> tuple[float, float]:
    directory = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    try:
        spool = DiskSpool("discard", directory / "spool", 1 << 40, fsync="batch")
        spool.open()
        destination = build("discard", Section({"type": "discard"}, "bench.yaml", "destinations.discard"))
        delivery = Delivery(destination, spool, RetrySettings(), BatchSettings())
        started = time.process_time()
        for _ in range(batches // 8):   # eight clients at a time share each group commit
            await asyncio.gather(*(spool.append(Batch(TRACES, None, SPANS, wire)) for _ in range(8)))
        appended = time.process_time()
        await delivery.start()
        while spool.pending_items:
            await asyncio.sleep(0.001)
        delivered = time.process_time()
        await delivery.stop(5.0)
        return appended - started, delivered - appended
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _codec_seconds(wire: bytes, batches: int) -> float:
    started = time.process_time()
    for _ in range(batches):
        ExportTraceServiceRequest.FromString(wire).SerializeToString()
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=24_000, help="requests of 100 spans per run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    wire = make_request(spans=SPANS, attributes=10).SerializeToString()
    runs = [asyncio.run(_once(args.batches, wire)) for _ in range(args.runs)]
    codec = min(_codec_seconds(wire, args.batches // 4) for _ in range(args.runs)) * 4
    spans = args.batches * SPANS
    print(f"{spans:,} spans of 10 attributes, best of {args.runs} runs (CPU seconds of the whole process)")
    print(f"{'stage':<34}{'spans/CPU-s':>14}{'ns/span':>10}{'vs codec':>10}")
    for name, seconds in (("upb parse + serialize (baseline)", codec),
                          ("append to the disk spool", min(r[0] for r in runs)),
                          ("deliver from it to discard", min(r[1] for r in runs))):
        print(f"{name:<34}{spans / seconds:>14,.0f}{seconds / spans * 1e9:>10.0f}{codec / seconds:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
