"""`type: file` with OTLP JSON lines: on disk before acknowledged, never a half line."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import orjson
import pytest

from otlp_router.destinations import build
from otlp_router.destinations.assembly import Run
from otlp_router.destinations.base import ExportError
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.settings import Section
from otlp_router.spool.base import Entry
from tests.support import make_request, read_otlp_json_lines


def _group(*seeds: int) -> Run:
    group = Run(0.0, 0.0)
    for seed in seeds:
        request = make_request(spans=2, seed=seed)
        entry = Entry(Batch(TRACES, request, 2, request.SerializeToString()), 0, seed)
        group.take(entry, 0, 2, 0.0, lambda e: None)
    return group


def _destination(tmp_path: Path):
    return build("out", Section({"type": "file", "dir": str(tmp_path / "out"), "format": "otlp_json"},
                                "t.yaml", "destinations.out"))


def test_an_export_is_fsynced_before_it_returns(tmp_path, monkeypatch) -> None:
    """Issue 13, finding 11: it acknowledged after flush() alone."""
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    destination = _destination(tmp_path)
    asyncio.run(destination.export(_group(1)))
    files = [f._file for f in destination._files.values()]
    assert files and all(f.fileno() in synced for f in files)
    asyncio.run(destination.stop())
    assert len(read_otlp_json_lines(tmp_path / "out")) == 1


def test_a_failed_write_leaves_no_half_line_and_the_retry_no_repeat(tmp_path, monkeypatch) -> None:
    destination = _destination(tmp_path)
    asyncio.run(destination.export(_group(1)))
    rotating = destination._files["traces"]
    real_write = rotating._file.write
    calls = {"n": 0}

    def short_then_full(data):  # half of the second line goes out, then the disk is full
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(rotating._file, "write", short_then_full)
    with pytest.raises(ExportError) as failed:
        asyncio.run(destination.export(_group(2, 3)))
    assert not failed.value.permanent and "No space left" in str(failed.value)
    monkeypatch.undo()
    asyncio.run(destination.export(_group(2, 3)))
    asyncio.run(destination.stop())
    lines = read_otlp_json_lines(tmp_path / "out")
    assert len(lines) == 3 and all(orjson.loads(line) for line in lines)
