"""CPU per request of the receiver's decode step, in process: `payload.decode` with the native
intake check (`_native.inspect`, no upb message built) against the former upb-first path
(upb `FromString`, then the Python id checks as they were before the core took them over),
for the bench request (bench/payloads.py, 100 spans x 10 attributes), in the same run.

    PYTHONPATH=. python bench/intake_check.py [--spans 100] [--rounds 7] [--seconds 1]
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from otlp_router.model import otlp_json
from otlp_router.model.signals import TRACES, Rejection
from otlp_router.receivers import payload

from bench.payloads import build_payloads

_ZERO_TRACE_ID, _ZERO_SPAN_ID = bytes(16), bytes(8)


def _bad_span_indexes(spans: Any) -> list[int]:
    # signals.py's hot path before the native check (commit 0c13d06), kept here to compare
    return [i for i, sp in enumerate(spans)
            if len(t := sp.trace_id) != 16 or t == _ZERO_TRACE_ID or len(s := sp.span_id) != 8
            or s == _ZERO_SPAN_ID or len(sp.parent_span_id) not in (0, 8)]


def old_decode(wire: bytes) -> tuple[int, Rejection]:
    """The former payload.decode of a protobuf trace request with no bad span."""
    message = TRACES.request_type.FromString(wire)
    accepted = 0
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            bad = _bad_span_indexes(ss.spans)
            assert not bad
            accepted += len(ss.spans)
    return accepted, Rejection()


def cpu_us(fn: Callable[[], object], seconds: float, rounds: int) -> float:
    """Best of `rounds` of the mean process CPU time per call, in µs."""
    n = 1
    while True:   # calibrate: calls per round of about `seconds`
        start = time.process_time()
        for _ in range(n):
            fn()
        took = time.process_time() - start
        if took > seconds / 10:
            n = max(1, int(n * seconds / took))
            break
        n *= 4
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    built = build_payloads(args.spans)
    wire, body = built.protobuf, built.json
    batch, _ = payload.decode(TRACES, payload.PROTOBUF, wire)
    assert batch.items == args.spans and batch._message is None, "the bench request fell back"
    assert old_decode(wire)[0] == args.spans

    def fallback() -> object:   # today's path for a request the core does not vouch for
        return TRACES.inspect(TRACES.request_type.FromString(wire))

    def old_json() -> object:
        return old_decode(otlp_json.to_wire(TRACES.request_type, body))

    cases = [
        ("protobuf: old (upb FromString + Python id checks)", lambda: old_decode(wire)),
        ("protobuf: new payload.decode (native inspect)", lambda: payload.decode(TRACES, payload.PROTOBUF, wire)),
        ("protobuf: fallback path now (FromString + signal.inspect)", fallback),
        ("json: old (transcode + FromString + Python id checks)", old_json),
        ("json: new payload.decode (transcode + native inspect)", lambda: payload.decode(TRACES, payload.JSON, body)),
    ]
    results = {}
    print(f"bench request: {args.spans} spans, {len(wire)} B protobuf, {len(body)} B JSON; "
          f"best of {args.rounds} rounds of ~{args.seconds} s, process CPU time")
    for name, fn in cases:
        results[name] = us = cpu_us(fn, args.seconds, args.rounds)
        print(f"  {name:60s} {us:9.2f} µs/request  {us / args.spans * 1000:8.1f} ns/span")
    old, new = results[cases[0][0]], results[cases[1][0]]
    print(f"protobuf decode: new / old = {new / old:.3f} ({old / new:.1f}x less CPU)")
    old, new = results[cases[3][0]], results[cases[4][0]]
    print(f"json decode:     new / old = {new / old:.3f} ({old / new:.2f}x less CPU)")


if __name__ == "__main__":
    main()
