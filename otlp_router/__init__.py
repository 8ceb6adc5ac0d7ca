"""otlp-router: an OTLP receiver and router for LLM traces."""

import os

# The native core's allocator (mimalloc) commits its arenas whole on Linux by default, and then
# gives freed memory back with MADV_FREE, which the kernel takes only under pressure: the
# resident size keeps the peak of the core's allocations. Committed as used, freed memory is
# decommitted and leaves the resident size (bench/peers.py genai-json: 190-193 -> 172-173 MB,
# at the same throughput). mimalloc reads it when the core loads, so it is set before anything
# imports it; an operator's own setting wins.
os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")

__version__ = "0.1.0"
