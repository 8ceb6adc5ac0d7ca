"""How long an fdatasync of a spool-sized write takes on this machine, idle and with a core
busy: why the durable rows of bench/peers.py wait for the disk rather than the CPU.

    python bench/fsync_latency.py [--size 370000] [--syncs 1500] [--dir DIR]

Writes `--size` bytes over blocks a preallocated file already has (as the spool's reused
segments do), then fdatasyncs, `--syncs` times with a short pause between (a group commit's
rhythm), pinned to the first core; four times: the machine idle, a CPU-bound process on the
same core, one on the other core, and one there at the lowest priority (nice 19). Prints p50
/ p90 / p99 in milliseconds and each p90 against the idle one measured in the same run.

If the last two of those are alike, the wait is not for CPU time (a nice-19 process gives its
core to anything that wants it) but for the disk's completion to reach a busy virtual CPU: on
the 2-core dev VM (a Firecracker guest, HZ=250) both take ~8.3 ms, about two ticks, against
0.3 ms idle. A fifth case swaps the cores: synced from the second, the first busy. It prints
which cores take the disk's interrupts; on the dev VM all go to cpu 1 (the guest cannot move
them), and synced from there with cpu 0 busy an fdatasync takes 0.24 ms: a busy core delays
only the completions delivered to it, which is why bench/procs.py puts the server on the
disk's core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.procs import disk_interrupts  # noqa: E402

SEGMENT = 64 * 1024 * 1024
BURN = "import time, zlib, os\nb = os.urandom(1 << 20)\nwhile True: zlib.compress(b, 6)\n"


def syncs(path: Path, size: int, count: int) -> list[float]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, bytes(SEGMENT), 0)
        os.fsync(fd)
        data, offset, took = os.urandom(size), 0, []
        for _ in range(count):
            os.pwrite(fd, data, offset)
            offset = (offset + size) % (SEGMENT - size)
            start = time.perf_counter()
            os.fdatasync(fd)
            took.append(time.perf_counter() - start)
            time.sleep(0.0015)
        return sorted(took)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=370_000, help="bytes per write (8 GenAI requests, privacy on)")
    parser.add_argument("--syncs", type=int, default=1500)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="a directory on the disk to measure")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("needs two cores", file=sys.stderr)
        return 1
    here, other = cpus[0], cpus[1]
    path = Path(args.dir) / f".fsync-latency-{os.getpid()}"
    idle_p90 = None
    interrupts = disk_interrupts(Path(args.dir))
    print(f"fdatasync of {args.size:,} B over existing blocks, {args.syncs} times ({args.dir}); "
          f"the disk's interrupts so far per cpu: {interrupts or 'unknown'}")
    print(f"{'machine':<40}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'p90 / idle':>12}")
    for label, sync_cpu, burner_cpu, niceness in (
            ("idle", here, None, 0), (f"a process busy on cpu {here}", here, here, 0),
            (f"a process busy on cpu {other}", here, other, 0), ("  the same at nice 19", here, other, 19),
            (f"synced on cpu {other}, cpu {here} busy", other, here, 0)):
        os.sched_setaffinity(0, {sync_cpu})
        burner = None
        if burner_cpu is not None:
            burner = subprocess.Popen([sys.executable, "-c", BURN],
                                      preexec_fn=lambda c=burner_cpu, n=niceness: (os.sched_setaffinity(0, {c}),
                                                                                   os.nice(n)))
            time.sleep(0.3)
        try:
            took = syncs(path, args.size, args.syncs)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
        p90 = percentile(took, 0.9)
        idle_p90 = idle_p90 or p90
        print(f"{label:<40}{percentile(took, 0.5):>8.2f}{p90:>8.2f}{percentile(took, 0.99):>8.2f}"
              f"{p90 / idle_p90:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
