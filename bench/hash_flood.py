"""A span of thousands of attributes, with keys chosen to collide under a fast unseeded hash
and with random ones: what the core spends per attribute on each. The core's maps keyed by
client data (`ClientMap` in native/src/lib.rs) are seeded per process: under the Fx hash they
had, such keys made every insertion scan the keys already in the map (privacy: 12x the CPU per
attribute at 20,000, and growing with the count). The per-trace JSON document of such a span
was quadratic in its attributes whatever the keys (linear searches; 38 µs an attribute at
20,000), and is linear now.

    python bench/hash_flood.py [--attributes 20000]

Each case runs in a fresh process (the core keeps its decisions per key across requests): one
request of one span with `--attributes` attributes through privacy (`strip_wire`), whose
decisions are cached per key, then through the per-trace JSON document. The colliding keys are
8 bytes with the same first four, which gives every one the same low 32 bits under Fx. Prints
microseconds of CPU per attribute for each and the ratio colliding / random (near 1: no
flooding).

Not a test: nothing in tests/ imports it.
"""

from __future__ import annotations

import argparse
import itertools
import random
import string
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASE = r"""
import sys, time
sys.path.insert(0, {root!r})
keys = sys.stdin.read().split()
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_router.destinations.formats.trace_json import encode_trace
from otlp_router.model.signals import TRACES
from otlp_router.routing.privacy import strip_wire

request = ExportTraceServiceRequest()
span = request.resource_spans.add().scope_spans.add().spans.add()
span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "chat"
for key in keys:
    kv = span.attributes.add()
    kv.key, kv.value.string_value = key, "v"
wire = request.SerializeToString()
started = time.process_time()
strip_wire(wire, TRACES)
privacy = time.process_time() - started
started = time.process_time()
encode_trace(span.trace_id, [(span.SerializeToString(), b"", "", "")])
document = time.process_time() - started
print(privacy / len(keys) * 1e6, document / len(keys) * 1e6)
"""


def keys(count: int, colliding: bool, rng: random.Random) -> list[str]:
    alphabet = string.ascii_letters + string.digits
    tails = ("".join(t) for t in itertools.product(alphabet, repeat=4))
    if colliding:
        return ["gen_" + tail for tail, _ in zip(tails, range(count))]
    return ["".join(rng.choices(alphabet, k=8)) for _ in range(count)]


def run(case_keys: list[str]) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CASE.format(root=str(ROOT))], input="\n".join(case_keys),
                         capture_output=True, text=True, check=True)
    privacy, document = map(float, out.stdout.split())
    return privacy, document


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attributes", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(7)
    random_keys, colliding_keys = run(keys(args.attributes, False, rng)), run(keys(args.attributes, True, rng))
    print(f"one span of {args.attributes:,} attributes; µs of CPU per attribute")
    print(f"{'step':<28}{'random keys':>12}{'colliding':>12}{'ratio':>8}")
    for name, r, c in (("privacy (strip_wire)", random_keys[0], colliding_keys[0]),
                       ("per-trace JSON document", random_keys[1], colliding_keys[1])):
        print(f"{name:<28}{r:>12.3f}{c:>12.3f}{c / r:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
