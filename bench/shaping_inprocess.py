"""Shaping in-process on the bench GenAI payload (bench/pipeline_payloads.py genai_request: 100
spans): CPU microseconds per span of what a destination with each transform does to a batch
that arrived as bytes, up to the bytes the spool then needs (`Shaping.apply` and `batch.wire`).
Run it on each tree to compare, e.g. before and after the transforms moved into the core:

    PYTHONPATH=/work/main python bench/shaping_inprocess.py
    PYTHONPATH=. python bench/shaping_inprocess.py

Each row also gives its ratio to upb decoding the same payload, measured in the same run (the
baseline that makes runs on a loaded machine comparable). Process CPU time, the minimum of 5
repeats.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline_payloads  # noqa: E402

from otlp_router.model.batch import Batch  # noqa: E402
from otlp_router.model.signals import TRACES  # noqa: E402
from otlp_router.routing.shaping import Shaping  # noqa: E402
from otlp_router.settings import Section  # noqa: E402

CONFIGS = {
    "sampling rate 0.5": {"sampling": {"rate": 0.5}},
    "sampling by session.id": {"sampling": {"rate": 0.5, "by": "session.id"}},
    "redaction (all masks)": {"redaction": {}},
    "redaction blocked keys": {"redaction": {"blocked_keys": ["*.password", "gen_ai.prompt*"], "mask": []}},
    "redaction allow-list + masks": {"redaction": {"allowed_keys": ["gen_ai.*", "llm.*"]}},
    "attributes (5 actions)": {"attributes": [
        {"action": "insert", "key": "deployment.environment", "value": "prod"},
        {"action": "update", "key": "gen_ai.request.model", "value": "m"},
        {"action": "rename", "key": "llm.user", "to": "user.id"},
        {"action": "delete", "pattern": "^internal\\."},
        {"action": "hash", "key": "gen_ai.response.id", "hash_key": "k"}]},
}


def best(run, rounds: int) -> float:
    return min(run(rounds) for _ in range(5))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    request = pipeline_payloads.genai_request()
    wire = request.SerializeToString()
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)

    def decode(rounds: int) -> float:
        t = time.process_time()
        for _ in range(rounds):
            TRACES.request_type.FromString(wire)
        return time.process_time() - t

    def shaped(config: dict) -> float:
        def run(rounds: int) -> float:
            shaping = Shaping.read(Section(config, "bench.yaml", "destinations.d"))
            t = time.process_time()
            for _ in range(rounds):
                batch = Batch(TRACES, None, spans, wire)
                shaping.apply(batch)
                batch.wire
            return time.process_time() - t
        return run

    base = best(decode, args.rounds) / args.rounds / spans * 1e6
    print(f"bench GenAI payload: {spans} spans, {len(wire)} bytes")
    print(f"  {'upb decode (baseline)':32s} {base:7.3f} us CPU/span   1.00x decode")
    for name, config in CONFIGS.items():
        shaped(config)(20)
        us = best(shaped(config), args.rounds) / args.rounds / spans * 1e6
        print(f"  {name:32s} {us:7.3f} us CPU/span  {us / base:5.2f}x decode")


if __name__ == "__main__":
    main()
