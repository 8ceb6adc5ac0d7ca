"""Aperture CBOR+zstd to a local directory, in-process: CPU per span for the delivery engine to
take GenAI requests from a durable spool, make their records and write the objects (`type:
file, format: cbor_zstd`, every 1s, limit 10000, as bench/peers.py's genai-cbor row, with its
payload), against the format's own work on the same requests measured in the same run: the
core's records and their zstd compression, nothing else. The ratio says how close the whole
path comes to the format alone, i.e. what the spool (a backlog past its resident budget is
read back), the assembly and the store add. CPU time of every thread of the process; the
best of `--runs`.

    python bench/aperture_files.py [--requests 1000] [--runs 3] [--every 1s] [--limit 10000]
    TMPDIR=/mnt/fresh python bench/aperture_files.py   # on another file system (see file_create.py)

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import inprocess  # noqa: E402
import peers  # noqa: E402

from otlp_router.destinations.formats.aperture import RecordStream, decode_records  # noqa: E402
from otlp_router.destinations.storage import APERTURE_LIMIT_CAP  # noqa: E402
from otlp_router.model import genai  # noqa: E402

SPANS = 100


async def _router(requests: list[bytes], directory: Path, every: str, limit: int) -> tuple[float, int]:
    """CPU seconds to write the records of `requests` from the spool; records written."""
    out = directory / "out"
    seconds = await inprocess.drain(requests, SPANS, directory, {"type": "file", "dir": str(out),
                                                                 "format": "cbor_zstd", "every": every, "limit": limit})
    return seconds, sum(1 for path in out.iterdir() for _ in decode_records(path.read_bytes()))


def _format(requests: list[bytes]) -> tuple[float, int]:
    """CPU seconds for the core to make the records of `requests` and zstd to compress them,
    objects of APERTURE_LIMIT_CAP records; records made."""
    core = genai.native_table()
    started = time.process_time()
    stream, records = RecordStream(), 0
    for wire in requests:
        cbor, made, _ = core.aperture_records(wire, 0, 0, 1, False, None)
        stream.extend(cbor, [length for _, _, length, _ in made])
        records += len(made)
        if len(stream) >= APERTURE_LIMIT_CAP:
            stream.finish()
            stream = RecordStream()
    stream.finish()
    return time.process_time() - started, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="GenAI requests of 100 spans per run (default 1000: past the spool's resident budget)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--every", default="1s", help="the destination's `every` (default 1s)")
    parser.add_argument("--limit", type=int, default=APERTURE_LIMIT_CAP,
                        help=f"the destination's `limit` (default {APERTURE_LIMIT_CAP}); smaller: more objects a second")
    args = parser.parse_args()
    requests = [peers.genai_request().SerializeToString()] * args.requests
    routers, formats = [], []
    for _ in range(args.runs):
        directory = Path(tempfile.mkdtemp(prefix="bench-aperture-files-"))
        try:
            seconds, written = asyncio.run(_router(requests, directory, args.every, args.limit))
            routers.append(seconds)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        seconds, made = _format(requests)
        formats.append(seconds)
        if written != made:
            raise SystemExit(f"wrote {written:,} records of {made:,}")
    spans = len(requests) * SPANS
    print(f"{len(requests)} GenAI requests of {SPANS} spans ({len(requests[0]):,} B each), {made:,} records, "
          f"best of {args.runs} runs, in {tempfile.gettempdir()}")
    inprocess.report(spans, "span", spans, [("records + zstd alone (baseline)", min(formats)),
                                            ("router: spool -> Aperture objects", min(routers))])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
