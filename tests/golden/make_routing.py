"""Freeze routing's behaviour (`RoutingTable.route`: per-item route choices, what is counted where,
the split requests; and `partition` by trace id and by the loadbalance key) as golden files (issue
#17, before match rules, selection and partitioning moved into the native core).

Run once with the pure-Python routing in place (it was, at 3f07721, when the committed corpus was
made):

    python tests/golden/make_routing.py          # writes tests/golden/routing/*.jsonl
    python tests/golden/make_routing.py split    # only split-*.jsonl: requests of several items
                                                 # that rules tell apart (made with e827cbb's code)

Every routing case is one JSON line: ``source``, ``signal``, ``routes`` (the `routes:` list),
``api_key``, ``allowed`` (the key's routes, or null), ``wire`` (base64 of the request's
``SerializeToString(deterministic=True)``), ``choices`` (per item, the names of the routes it
takes), ``counts`` (route set, names joined by ",", to items counted: data points for metrics;
"" is unrouted) and ``out`` ([destination, base64 of the batch's deterministic bytes, items, shaping
route names, whether the request was passed on as is]).  A partition case has ``by``
(trace_id: the workers' split; lb-trace_id / lb-service: the loadbalance destination's) and
``parts`` ({owner: [base64, items]}).

Sources (tests/routing_cases.py): test_routing_table.py-style requests, the bench's GenAI payload
with peers.py's route on `gen_ai.provider.name`, and seeded hypothesis requests of every signal with
random rule sets.  Generation is seeded (hypothesis ``derandomize``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.pipeline_payloads import genai_request  # noqa: E402
from bench.payloads import PROVIDERS  # noqa: E402
from otlp_router.destinations.loadbalance import HashRing, LoadBalancedDestination  # noqa: E402
from otlp_router.model.batch import Batch, partition  # noqa: E402
from otlp_router.model.signals import SIGNALS  # noqa: E402
from otlp_router.routing.table import RoutingTable  # noqa: E402
from otlp_router.settings import ConfigError  # noqa: E402
from tests import routing_cases as rc  # noqa: E402
from tests.golden.make_privacy import b64, examples  # noqa: E402

OUT = Path(__file__).resolve().parent / "routing"
COUNTS = {"traces": 700, "logs": 400, "metrics": 250}
SPLITS = {"traces": 300, "logs": 200, "metrics": 150}
PARTITIONS = {"traces": 150, "logs": 100, "metrics": 60}


def table_of(routes: list[dict]) -> RoutingTable:
    return RoutingTable.read("golden.yaml", routes, {d: frozenset(SIGNALS) for d in rc.DESTINATIONS})


def route_case(source: str, signal: str, routes: list[dict], request: Any, api_key: str | None = None,
               allowed: frozenset[str] | None = None) -> dict | None:
    try:
        table = table_of(routes)
    except ConfigError:
        return None
    wire = request.SerializeToString(deterministic=True)
    sig = SIGNALS[signal]
    message = sig.request_type.FromString(wire)
    items, _ = sig.inspect(message)
    batch = Batch(sig, None, items, wire, api_key_name=api_key)
    batch.allowed_routes = allowed
    counted: dict[str, int] = {}

    def count(b: Batch, counts: dict[tuple[int, ...], int]) -> None:
        for chosen, n in counts.items():
            key = ",".join(r.name for r in table.routes_of(signal, chosen))
            counted[key] = counted.get(key, 0) + n

    table._count = count  # type: ignore[method-assign]
    out = [[dest, b64(b.message.SerializeToString(deterministic=True)), b.items, [r.name for r in via], b is batch]
           for dest, b, via in table.route(batch)]
    from otlp_router.routing.match import walk  # the code being frozen: gone once the core routes

    choices = []
    for _, ctx in walk(message, sig, table.needs, api_key):
        chosen = table.choose(ctx, signal, allowed)
        choices.append([r.name for r in table.routes_of(signal, chosen)])
    return {"source": source, "signal": signal, "routes": routes, "api_key": api_key,
            "allowed": sorted(allowed) if allowed is not None else None, "wire": b64(wire),
            "choices": choices, "counts": counted, "out": out}


def partition_case(source: str, signal: str, request: Any, by: str) -> dict:
    wire = request.SerializeToString(deterministic=True)
    sig = SIGNALS[signal]
    items, _ = sig.inspect(sig.request_type.FromString(wire))
    batch = Batch(sig, None, items, wire)
    if by == "trace_id":
        ring = HashRing([f"worker-{k}" for k in range(3)])
        parts = partition(batch, lambda resource, span: span.trace_id, ring.owner)
    else:
        lb = SimpleNamespace(by=by.removeprefix("lb-"))
        ring = HashRing(["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"])
        parts = partition(batch, lambda resource, item: LoadBalancedDestination._key(lb, resource, item), ring.owner)
    return {"source": source, "signal": signal, "by": by, "wire": b64(wire),
            "parts": {str(k): [b64(b.message.SerializeToString(deterministic=True)), b.items, b is batch]
                      for k, b in sorted(parts.items())}}


def write(name: str, cases: list[dict | None]) -> None:
    OUT.mkdir(exist_ok=True)
    kept = [c for c in cases if c is not None]
    with open(OUT / f"{name}.jsonl", "w") as f:
        for c in kept:
            f.write(json.dumps(c, sort_keys=True) + "\n")
    split = sum(len(c.get("out", c.get("parts", ()))) > 1 for c in kept)
    print(f"{name}: {len(kept)} cases, {split} split")


def fixed() -> list[dict | None]:
    bench = genai_request(100)
    peers_routes = [{"name": "by-provider", "match": {"attribute": "gen_ai.provider.name", "in": list(PROVIDERS)},
                     "destinations": ["a"]}]
    half = [{"name": "openai", "match": {"attribute": "gen_ai.provider.name", "equals": "openai"},
             "destinations": ["a"], "stop": True},
            {"name": "chat", "match": {"span": "name", "regex": "^chat "}, "destinations": ["b"]},
            {"name": "rest", "default": True, "destinations": ["c"]}]
    return [route_case("bench genai_request, peers.py's route", "traces", peers_routes, bench),
            route_case("bench genai_request, split three ways", "traces", half, bench),
            route_case("bench genai_request, a key that may take one route", "traces", half, bench,
                       "prod", frozenset({"chat"})),
            partition_case("bench genai_request", "traces", bench, "trace_id"),
            partition_case("bench genai_request", "traces", bench, "lb-trace_id"),
            partition_case("bench genai_request", "traces", bench, "lb-service")]


def main(only: str | None = None) -> None:
    """`only`: the prefix of the files to write (split: those added at e827cbb's successor)."""
    if only is not None:
        for signal, n in SPLITS.items():
            cases = examples(st.tuples(rc.SPLIT_REQUESTS[signal], rc.split_route_sets(), rc.api_keys,
                                       rc.allowed_sets), n)
            write(f"split-{signal}", [route_case("hypothesis, items rules tell apart", signal, routes, request, key,
                                                 allowed) for request, routes, key, allowed in cases])
        return
    write("fixed", fixed())
    for signal, n in COUNTS.items():
        cases = examples(st.tuples(rc.REQUESTS[signal], rc.route_sets(), rc.api_keys, rc.allowed_sets), n)
        write(signal, [route_case("hypothesis", signal, routes, request, key, allowed)
                       for request, routes, key, allowed in cases])
    for signal, n in PARTITIONS.items():
        ways = ["lb-trace_id", "lb-service"] + (["trace_id"] if signal != "metrics" else [])  # the workers split spans
        cases = examples(st.tuples(rc.REQUESTS[signal], st.sampled_from(ways)), n)
        write(f"partition-{signal}", [partition_case("hypothesis", signal, request, by) for request, by in cases])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
