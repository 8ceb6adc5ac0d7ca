"""What zstd costs an Aperture object when the content differs from request to request, in
process: the core's records of the peers.py GenAI request (`aperture_records`), compressed as a
RecordStream does (one zstd stream an object, level 3 by default), CPU microseconds per span.

peers.py's genai-cbor row sends the same content in every request (only the trace ids change),
so zstd finds each record's bodies again in the previous request's and compresses them almost
for nothing. Rows: `same request` is that case; `distinct requests` cycles through `--distinct`
requests of other seeds, as far apart as the window allows, which is nearer to real prompts.
Each row prints the records alone, zstd alone on the records made beforehand, the two
together, and the compression ratio.

    python bench/aperture_zstd.py [--rounds 400] [--distinct 8] [--level 3]

Not a test: nothing in tests/ imports it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.peers import genai_request  # noqa: E402
from otlp_router.model import genai  # noqa: E402

SPANS = 100
OBJECT_REQUESTS = 12   # an object of the default 1000 records is about 12 of these requests


def records(wire: bytes) -> bytes:
    return genai.native_table().aperture_records(wire, 0, 0, 1, False, None)[0]


def run(wires: list[bytes], rounds: int, level: int, make: bool, squeeze: bool) -> tuple[float, float]:
    """CPU µs per span, and the compression ratio (1 when nothing is compressed)."""
    made = [records(w) for w in wires]
    compressor = zstandard.ZstdCompressor(level=level)
    stream, raw, out = compressor.compressobj(), 0, 0
    start = time.process_time()
    for i in range(rounds):
        cbor = records(wires[i % len(wires)]) if make else made[i % len(made)]
        if squeeze:
            raw += len(cbor)
            out += len(stream.compress(cbor))
            if i % OBJECT_REQUESTS == OBJECT_REQUESTS - 1:
                out += len(stream.flush())
                stream = compressor.compressobj()
    spent = (time.process_time() - start) / rounds / SPANS * 1e6
    return spent, raw / out if out else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--distinct", type=int, default=8, help="requests of distinct content to cycle through")
    parser.add_argument("--level", type=int, default=3, help="zstd level (the router's: 3)")
    args = parser.parse_args(argv)
    same = [genai_request().SerializeToString()]
    distinct = [genai_request(seed=seed).SerializeToString() for seed in range(args.distinct)]
    print(f"{'case':20} {'records':>9} {'zstd':>9} {'both':>9}  ratio   (CPU us a span, level {args.level})")
    for name, wires in (("same request", same), ("distinct requests", distinct)):
        alone, _ = run(wires, args.rounds, args.level, make=True, squeeze=False)
        squeezed, ratio = run(wires, args.rounds, args.level, make=False, squeeze=True)
        both, _ = run(wires, args.rounds, args.level, make=True, squeeze=True)
        print(f"{name:20} {alone:9.2f} {squeezed:9.2f} {both:9.2f}  {ratio:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
