"""The delivery engine in-process, for bench/trace_files.py and bench/aperture_files.py:
requests appended to a durable spool (eight at a time, as eight clients share each group
commit), then the CPU seconds (every thread of the process) for a destination to drain them;
and their table, each row against the baseline measured in the same run.

Not a test: nothing in tests/ imports it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from otlp_router.destinations import build
from otlp_router.destinations.delivery import BatchSettings, Delivery, RetrySettings
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.settings import Section
from otlp_router.spool.disk import DiskSpool


async def drain(requests: list[bytes], spans: int, directory: Path, destination: dict[str, Any]) -> float:
    """CPU seconds for `destination` (its settings) to take `requests` of `spans` spans each
    from a durable spool under `directory` until none is pending."""
    spool = DiskSpool("bench", directory / "spool", 1 << 40, fsync="batch")
    spool.open()
    for at in range(0, len(requests), 8):
        await asyncio.gather(*(spool.append(Batch(TRACES, None, spans, wire)) for wire in requests[at:at + 8]))
    delivery = Delivery(build("bench", Section(destination, "bench.yaml", "destinations.bench")), spool,
                        RetrySettings(), BatchSettings())
    started = time.process_time()
    await delivery.start()
    while spool.pending_items:
        await asyncio.sleep(0.001)
    seconds = time.process_time() - started
    await delivery.stop(5.0)
    return seconds


def report(spans: int, unit: str, per: int, rows: list[tuple[str, float]]) -> None:
    """Spans per CPU-second, µs per `unit` (`per` of them in the run) and the ratio to the
    first row, the baseline, for each (name, CPU seconds)."""
    baseline = rows[0][1]
    width = max(len(name) for name, _ in rows) + 4
    print(f"{'':<{width}}{'spans/CPU-s':>12}{'us/' + unit:>10}{'vs baseline':>13}")
    for name, seconds in rows:
        print(f"{name:<{width}}{spans / seconds:>12,.0f}{seconds / per * 1e6:>10.2f}{baseline / seconds:>13.2f}")
