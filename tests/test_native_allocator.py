"""The native core's allocator gives freed memory back (otlp_router/__init__.py): mimalloc
commits its arenas as they are used, set before the core loads; an operator's own setting wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _allocator_options(**env: str) -> str:
    """What mimalloc says it runs with when a process loads the core (MIMALLOC_VERBOSE)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MIMALLOC_")}
    result = subprocess.run([sys.executable, "-c", "import otlp_router._native"], cwd=ROOT,
                            env={**base, "MIMALLOC_VERBOSE": "1", **env}, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_the_core_loads_with_arenas_committed_as_used() -> None:
    assert "option 'arena_eager_commit': 0" in _allocator_options()


def test_an_operators_own_setting_wins() -> None:
    assert "option 'arena_eager_commit': 2" in _allocator_options(MIMALLOC_ARENA_EAGER_COMMIT="2")
