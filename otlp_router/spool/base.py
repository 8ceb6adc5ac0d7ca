"""The spool interface every implementation (memory, disk) provides."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from otlp_router.model.batch import Batch

# Fault injection for tests: a spool (or dead letter) with a `fault` hook set
# calls it with the name of each step below just before taking it; the hook
# raises OSError (ENOSPC ...) to fail that step, or its own exception to stand
# for a crash there. Unset (None) it costs one attribute test per step.
FaultHook = Callable[[str], None]
FAULT_POINTS = (
    "append.write",        # before a record is written
    "append.after_write",  # written, not yet handed out (an OSError here cuts it like a short write)
    "commit.fsync",        # before a group commit / `always` fsync (on the spool executor)
    "segment.create",      # before a segment file is created
    "ack.save",            # before the acknowledged mark is written (on the spool executor)
    "ack.after_save",      # the mark is on disk, the segments it frees not yet deleted
    "segment.delete",      # before each acknowledged segment is deleted
    "deadletter.write",    # before a dead letter's temporary file is written
    "deadletter.rename",   # before it is renamed into place
)


class SpoolFull(Exception):
    """The destination cannot take more now; the client should retry later."""

    def __init__(self, destination: str, reason: str, retry_after: float) -> None:
        super().__init__(f"destination {destination}: {reason}")
        self.destination = destination
        self.reason = reason
        self.retry_after = retry_after


@dataclass(slots=True)
class Entry:
    batch: Batch
    size: int
    seq: int
    # Where a disk spool left the payload instead of memory (segment, offset of the record); None: in memory.
    on_disk: tuple[Path, int] | None = None
    # Where a disk spool wrote the record, payload in memory or not.
    stored_at: tuple[Path, int] | None = None


class Spool(ABC):
    """Per-destination queue of batches, bounded in bytes."""

    durable = False  # True: what is appended survives a restart

    def __init__(self, destination: str, max_bytes: int, retry_after: float) -> None:
        self.destination = destination
        self.max_bytes = max_bytes
        self.retry_after = retry_after

    def check_room(self, size: int) -> None:
        """Raise `SpoolFull` unless an entry of `size` bytes fits now.

        Checked for every destination of a request before appending to any, so
        a refused request leaves no partial copies behind."""
        if self.pending_bytes and self.pending_bytes + size > self.max_bytes:
            raise SpoolFull(self.destination, f"spool is full ({self.pending_bytes} of {self.max_bytes} bytes)",
                            self.retry_after)

    @abstractmethod
    async def append(self, batch: Batch) -> None:
        """Store a batch; when this returns the batch is as safe as the spool makes it."""

    @abstractmethod
    async def read(self, max_items: int, max_bytes: int) -> list[Entry]:
        """Wait for entries not yet handed out; [] once the spool is closed and drained."""

    @abstractmethod
    def ack(self, entries: list[Entry]) -> None:
        """The destination has them: forget these entries."""

    def let_go(self, entry: Entry) -> bool:
        """Keep a handed-out entry's payload on disk only, until `reload`: for a destination that
        gathered its own copy of what it needs and wants the entry again only for a dead letter.
        False where the spool cannot (a memory spool keeps every payload)."""
        return False

    async def reload(self, entries: list[Entry]) -> list[Entry]:
        """Read back the payloads of these entries held on disk only; returns those that cannot be
        read (logged and counted here; still the caller's to acknowledge)."""
        return []

    @abstractmethod
    def requeue(self, entries: list[Entry]) -> None:
        """Handed out but not delivered (shutdown): hand them out again first."""

    async def flush_acks(self) -> bool:
        """Make the acknowledgements so far durable now (a durable spool saves them
        by itself within a moment); False if that failed (it is retried)."""
        return True

    @abstractmethod
    def close(self) -> None:
        """No more appends; readers get what is left, then []."""

    @property
    @abstractmethod
    def oldest_pending(self) -> float | None:
        """Unix time the oldest unconfirmed batch arrived, if any."""

    @property
    @abstractmethod
    def pending_bytes(self) -> int: ...

    @property
    @abstractmethod
    def pending_items(self) -> int: ...
