"""Where accepted batches wait for their destination: one spool per destination.

Receivers append and answer the client once `append` returns; a delivery loop
reads, exports and acknowledges. Only acknowledged entries are forgotten.
"""

from otlp_router.spool.base import FAULT_POINTS, Entry, FaultHook, Spool, SpoolFull
from otlp_router.spool.disk import DiskSpool, Recovery, spool_executor
from otlp_router.spool.memory import MemorySpool

__all__ = ["FAULT_POINTS", "DiskSpool", "Entry", "FaultHook", "MemorySpool", "Recovery", "Spool", "SpoolFull",
           "spool_executor"]
