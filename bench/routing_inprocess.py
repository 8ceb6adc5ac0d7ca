"""Routing in process: µs (wall and CPU) per 100-span GenAI request for the routing table's
`route` (match rules, and the split when items part ways) and the workers' split by trace id,
beside a upb parse of the same request measured in the same run (the ratio is what compares
across machines and loads).

    PYTHONPATH=/work/main python bench/routing_inprocess.py        # the tree under test
    PYTHONPATH=. python bench/routing_inprocess.py

The request is bench/pipeline_payloads.py's `genai_request()`; the routes are bench/peers.py's
genai-route-privacy route (`gen_ai.provider.name` in the payload's providers: every span matches,
nothing splits), and one that splits the request three ways (openai spans with stop, `chat` spans
by a regex on the span name, the rest by default). Every run routes a fresh batch of the wire
bytes, as a batch read from the spool is.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # bench's own modules, after PYTHONPATH: otlp_router comes from there

from bench.payloads import PROVIDERS  # noqa: E402
from bench.pipeline_payloads import genai_request  # noqa: E402
from otlp_router.model.batch import Batch  # noqa: E402
from otlp_router.model.signals import TRACES  # noqa: E402
from otlp_router.peers import Peers  # noqa: E402
from otlp_router.routing.table import RoutingTable  # noqa: E402

ROUTES = {
    "peers.py route (match, no split)": [
        {"name": "by-provider", "match": {"attribute": "gen_ai.provider.name", "in": list(PROVIDERS)},
         "destinations": ["sink"]}],
    "match + split three ways": [
        {"name": "openai", "match": {"attribute": "gen_ai.provider.name", "equals": "openai"},
         "destinations": ["a"], "stop": True},
        {"name": "chat", "match": {"span": "name", "regex": "^chat "}, "destinations": ["b"]},
        {"name": "rest", "default": True, "destinations": ["c"]}],
}


def measure(run: Callable[[], Any], seconds: float = 2.0) -> tuple[float, float]:
    """(wall µs, CPU µs) per call, best of 5 rounds."""
    best_wall = best_cpu = float("inf")
    n = 1
    while True:  # calibrate to ~seconds/5 per round
        t = time.perf_counter()
        for _ in range(n):
            run()
        if time.perf_counter() - t > seconds / 25:
            break
        n *= 2
    n = max(1, int(n * (seconds / 5) / max(time.perf_counter() - t, 1e-9)))
    for _ in range(5):
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            run()
        best_wall = min(best_wall, (time.perf_counter() - w) / n * 1e6)
        best_cpu = min(best_cpu, (time.process_time() - c) / n * 1e6)
    return best_wall, best_cpu


def main() -> None:
    import otlp_router

    wire = genai_request(100).SerializeToString()
    items = 100
    print(f"otlp_router from {Path(otlp_router.__file__).parent.parent}; request {len(wire)} bytes, {items} spans")
    parse_wall, parse_cpu = measure(lambda: TRACES.request_type.FromString(wire))
    print(f"{'upb parse (FromString)':40s} {parse_wall:8.1f} µs wall {parse_cpu:8.1f} µs CPU   1.00x parse")
    accepts = {d: frozenset({"traces", "logs", "metrics"}) for d in ("sink", "a", "b", "c")}
    for label, routes in ROUTES.items():
        table = RoutingTable.read("bench.yaml", routes, accepts)
        parts = table.route(Batch(TRACES, None, items, wire))
        wall, cpu = measure(lambda: table.route(Batch(TRACES, None, items, wire)))
        print(f"{label:40s} {wall:8.1f} µs wall {cpu:8.1f} µs CPU {cpu / parse_cpu:6.2f}x parse"
              f"   ({len(parts)} destinations: {', '.join(f'{d} {b.items}' for d, b, _ in parts)})")
    peers = Peers(0, 3, Path("/tmp"), set())
    parts = peers.split(Batch(TRACES, None, items, wire))
    wall, cpu = measure(lambda: peers.split(Batch(TRACES, None, items, wire)))
    print(f"{'workers split by trace id (3 workers)':40s} {wall:8.1f} µs wall {cpu:8.1f} µs CPU "
          f"{cpu / parse_cpu:6.2f}x parse   ({len(parts)} parts)")


if __name__ == "__main__":
    main()
