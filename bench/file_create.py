"""What creating a file costs on a file system: per-trace JSON to a local directory makes one
file per trace, so a file system where that is slow bounds the `genai-json` row of peers.py.

Creates N files of 20 KB (no sync: the kernel's own cost), deletes them, creates N again,
and prints the CPU microseconds per file each time. On ext4 after many recent deletions
(a test suite, earlier bench runs) each create scans the inode bitmap past inodes deleted
within the last minutes (`recently_deleted` in perf), and can cost 20x what it costs on a
fresh file system.

    python bench/file_create.py                   # in the system's temporary directory
    python bench/file_create.py --dir /mnt/fresh  # e.g. a fresh loop-mounted ext4

The benches make their work directories (spools, written files) in the temporary directory,
so `TMPDIR=/mnt/fresh python bench/peers.py` measures the file rows on that file system.

Not a test: nothing in tests/ imports it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

DATA = b"x" * 20_000


def create(directory: Path, count: int) -> float:
    """CPU microseconds per file created and written."""
    directory.mkdir()
    started = time.process_time()
    for i in range(count):
        fd = os.open(directory / f"{i}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, DATA)
        os.close(fd)
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to create the files")
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="file-create-", dir=args.dir))
    try:
        first = create(base / "a", args.files)
        shutil.rmtree(base / "a")
        again = create(base / "b", args.files)
        print(f"{base}: {first:.0f} us CPU per file, {again:.0f} us after deleting them")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
