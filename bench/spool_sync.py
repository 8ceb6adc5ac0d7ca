"""The durable spool alone: appends of the peers bench's request (100 spans x 10 attributes)
from 8 concurrent writers, as 8 keep-alive connections make them, with `fsync: batch` (group
commit), delivered and acknowledged as they come, the way a discard destination does.

Two spools in one run, one after the other, on the same file system:
  - reuse:    delivered segments are kept and written over (the router's default);
  - no reuse: every segment is a new file that grows (`pool_segments = 0`), the baseline.
An fdatasync of a file that grows journals its size and block map; one over blocks the file
already has writes only the data. Prints spans/s, the CPU seconds per million spans of the
process, and reuse / no reuse.

    python bench/spool_sync.py [--seconds 5] [--dir DIR]   # DIR: e.g. another file system

Not a test: nothing in tests/ imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import payloads  # noqa: E402
from otlp_router.model.batch import Batch  # noqa: E402
from otlp_router.model.signals import TRACES  # noqa: E402
from otlp_router.spool.disk import DiskSpool  # noqa: E402

WRITERS = 8
SPANS = 100


async def measure(directory: Path, reuse: bool, seconds: float, wire: bytes) -> tuple[float, float]:
    """Spans/s appended and CPU seconds per million spans."""
    spool = DiskSpool("bench", directory, 1 << 30, fsync="batch", segment_bytes=8 << 20)
    if not reuse:
        spool.pool_segments = 0
    spool.open()
    appended = 0
    stop = False

    async def writer() -> None:
        nonlocal appended
        while not stop:
            await spool.append(Batch(TRACES, None, SPANS, wire))
            appended += SPANS

    async def deliver() -> None:
        while not stop:
            spool.ack(await spool.read(1000, 1 << 30))

    tasks = [asyncio.create_task(writer()) for _ in range(WRITERS)] + [asyncio.create_task(deliver())]
    await asyncio.sleep(1.0)  # warm-up: the first segments are new files either way
    start, cpu, counted = time.perf_counter(), time.process_time(), appended
    await asyncio.sleep(seconds)
    spans = appended - counted
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    stop = True
    spool.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    spool.release()
    return spans / wall, used / spans * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--dir", help="where the spools go (default: the temporary directory)")
    args = parser.parse_args()
    wire = payloads.build_payloads(SPANS).protobuf
    work = Path(tempfile.mkdtemp(prefix="otlp-spool-sync-", dir=args.dir))
    try:
        results = {}
        for name, reuse in (("no reuse", False), ("reuse", True)):
            results[name] = asyncio.run(measure(work / name.replace(" ", "-"), reuse, args.seconds, wire))
            rate, cpu = results[name]
            print(f"{name:9s} {rate:10,.0f} spans/s  {cpu:5.2f} CPU-s/M")
        print(f"reuse / no reuse: {results['reuse'][0] / results['no reuse'][0]:.2f}x spans/s, "
              f"{results['reuse'][1] / results['no reuse'][1]:.2f}x CPU per span "
              f"({len(wire):,} B requests, {WRITERS} writers, fsync batch)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
