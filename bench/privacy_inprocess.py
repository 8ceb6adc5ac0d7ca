"""Privacy in-process on the bench GenAI payload (bench/pipeline_payloads.py genai_request: 100
spans, content on every other one): CPU microseconds per span of what a `privacy: true`
destination does, the native core (otlp_router/routing/privacy.py now) against an older
privacy.py loaded by path (the pure-Python one of 8dc7b67), in the same run.

    git show 8dc7b67:otlp_router/routing/privacy.py > /tmp/privacy_old.py
    python bench/privacy_inprocess.py --old /tmp/privacy_old.py [--rounds 2000]

Rows: `strip` is the privacy step alone (old: strip_content on a parsed message; new: strip_wire
on the bytes); `strip + bytes` adds what the spool then needs (old: serialising the changed
message; new: nothing more); `strip_content(message)` is the new message API (serialise, core,
parse, copy back), for callers holding a message. Process CPU time, the minimum of 5 repeats.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pipeline_payloads  # noqa: E402

from otlp_router.model.signals import TRACES  # noqa: E402
from otlp_router.routing import privacy as new  # noqa: E402


def load(path: str):
    spec = importlib.util.spec_from_file_location("privacy_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_span(run, rounds: int, spans: int) -> float:
    best = float("inf")
    for _ in range(5):
        spent = run(rounds)
        best = min(best, spent)
    return best / rounds / spans * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True, help="path of the old privacy.py")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    old = load(args.old)
    request = pipeline_payloads.genai_request()
    wire = request.SerializeToString()
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    parse = TRACES.request_type.FromString

    # the same output, first
    message = parse(wire)
    old_removed = old.strip_content(message, TRACES) if old.may_hold_content(wire) else 0
    got, removed = new.strip_wire(wire, TRACES)
    assert (parse(got), removed) == (message, old_removed), "old and new disagree"
    assert got == message.SerializeToString(deterministic=True)

    def old_strip(rounds: int, serialise: bool = False) -> float:
        spent = 0.0
        for _ in range(rounds):
            m = parse(wire)
            t = time.process_time()
            if old.may_hold_content(wire) and old.strip_content(m, TRACES) and serialise:
                m.SerializeToString()
            spent += time.process_time() - t
        return spent

    def new_strip(rounds: int) -> float:
        t = time.process_time()
        for _ in range(rounds):
            if new.may_hold_content(wire):
                new.strip_wire(wire, TRACES)
        return time.process_time() - t

    def new_message(rounds: int) -> float:
        spent = 0.0
        for _ in range(rounds):
            m = parse(wire)
            t = time.process_time()
            new.strip_content(m, TRACES)
            spent += time.process_time() - t
        return spent

    def decode(rounds: int) -> float:
        t = time.process_time()
        for _ in range(rounds):
            parse(wire)
        return time.process_time() - t

    for warm in (old_strip, new_strip):
        warm(50)
    rows = [
        ("old strip (Python on upb)", per_span(old_strip, args.rounds, spans)),
        ("new strip (core on the wire)", per_span(new_strip, args.rounds, spans)),
        ("old strip + bytes", per_span(lambda r: old_strip(r, True), args.rounds, spans)),
        ("new strip + bytes", per_span(new_strip, args.rounds, spans)),
        ("new strip_content(message)", per_span(new_message, args.rounds, spans)),
        ("upb decode, for scale", per_span(decode, args.rounds, spans)),
    ]
    print(f"bench GenAI payload: {spans} spans, {len(wire)} bytes, {removed} removed per request")
    for name, us in rows:
        print(f"  {name:32s} {us:7.3f} us CPU/span")
    print(f"  ratio old/new, strip:          {rows[0][1] / rows[1][1]:6.1f}x")
    print(f"  ratio old/new, strip + bytes:  {rows[2][1] / rows[3][1]:6.1f}x")


if __name__ == "__main__":
    main()
