"""Per-trace JSON to a local directory, in-process: CPU per trace for the delivery engine to
take GenAI requests from a durable spool and write each trace as its own synced file
(`type: file, format: json`), against the bare durable write of as many files of the same
size measured in the same run: a temporary file written, fdatasync'd, linked into place and
unlinked, in 16 threads, with a directory sync per 64 files. The ratio says how close the
router comes to what the file system itself costs (CPU time of every thread of the process;
the best of `--runs`).

    python bench/trace_files.py [--requests 300] [--runs 3]
    TMPDIR=/mnt/fresh python bench/trace_files.py   # on another file system (see file_create.py)

Not a test: nothing in tests/ imports it."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import inprocess  # noqa: E402
import pipeline_payloads  # noqa: E402

from otlp_router.spool.disk import fsync_dir  # noqa: E402

SPANS = pipeline_payloads.ITEMS


def _requests(count: int) -> tuple[list[bytes], int]:
    """`count` copies of the bench GenAI request, each with trace ids of its own; and the
    number of traces in one."""
    request = pipeline_payloads.genai_request()
    wire = request.SerializeToString()
    offsets = pipeline_payloads.trace_id_offsets(request, wire)
    traces = len({number for _, number in offsets})
    out = []
    for n in range(count):
        body = bytearray(wire)
        for at, number in offsets:
            body[at:at + 16] = (n * traces + number + 1).to_bytes(16, "big")
        out.append(bytes(body))
    return out, traces


async def _router(requests: list[bytes], directory: Path) -> tuple[float, int]:
    """CPU seconds to write every trace of `requests` from the spool; files written."""
    out = directory / "out"
    seconds = await inprocess.drain(requests, SPANS, directory,
                                    {"type": "file", "dir": str(out), "format": "json", "trace_idle": "1ms"})
    return seconds, sum(1 for _ in out.rglob("*.json"))


def _bare(sizes: list[int], directory: Path, threads: int = 16, per_sync: int = 64) -> float:
    """CPU seconds to write files of `sizes` durably with nothing but the system calls."""
    directory.mkdir()
    names = iter(range(len(sizes)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                n = next(names, None)
            if n is None:
                return
            tmp, name = f"{directory}/.{n}.tmp", f"{directory}/{n:08d}.json"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            os.write(fd, b"x" * sizes[n])
            os.fdatasync(fd)
            os.close(fd)
            os.link(tmp, name)
            os.unlink(tmp)
            if n % per_sync == 0:
                fsync_dir(directory)

    started = time.process_time()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    fsync_dir(directory)
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="GenAI requests of 100 spans per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    requests, traces = _requests(args.requests)
    routers, bares = [], []
    for _ in range(args.runs):
        directory = Path(tempfile.mkdtemp(prefix="bench-trace-files-"))
        try:
            seconds, files = asyncio.run(_router(requests, directory))
            if files != len(requests) * traces:
                raise SystemExit(f"wrote {files} files of {len(requests) * traces} traces")
            routers.append(seconds)
            sizes = [p.stat().st_size for p in (directory / "out").rglob("*.json")]
            bares.append(_bare(sizes, directory / "bare"))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    files = len(requests) * traces
    spans = len(requests) * SPANS
    print(f"{len(requests)} GenAI requests, {files:,} traces of {SPANS // traces} spans "
          f"(~{sum(sizes) // len(sizes):,} B a file), best of {args.runs} runs, in {tempfile.gettempdir()}")
    inprocess.report(spans, "trace", files, [("bare durable files (baseline)", min(bares)),
                                              ("router: spool -> per-trace JSON files", min(routers))])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
