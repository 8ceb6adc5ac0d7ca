"""What a destination is. An `Exporter` takes batches and says whether it failed
for good or for now; queueing, retries and acknowledgement live once, in
`delivery.py`, around every exporter. A `Gatherer` (stored formats) gathers
spool entries into objects and acknowledges them itself once they are written."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar

from otlp_router.model.batch import Batch
from otlp_router.settings import Section
from otlp_router.spool.base import Entry


# Keys every destination has, read by the router around the destination itself
# (delivery, shaping); a destination's own settings are the rest.
COMMON_KEYS = ("type", "retry", "batch", "max_in_flight", "privacy", "redaction", "attributes", "sampling")


class ExportError(Exception):
    """An export failed. `permanent` failures are never retried (the data is
    rejected as such); others are retried, after `retry_after` if the
    destination said when."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


class Destination(ABC):
    """A configured destination. Subclasses read their settings in __init__
    (refusing unknown keys)."""

    type_name: ClassVar[str]
    # The signals this destination takes (an instance may narrow it by format).
    accepts: frozenset[str] = frozenset({"traces", "logs", "metrics"})
    # How long delivery waits to fill a batch before exporting what it has.
    default_flush_interval: ClassVar[float] = 0.0
    # Concurrent exports; 1 keeps order (files), more hide a remote's latency.
    default_max_in_flight: ClassVar[int] = 1
    # Needs every span of a trace in one process (per-trace JSON); with several
    # workers the spans are handed to the trace's owner worker.
    whole_traces: bool = False

    def __init__(self, name: str, settings: Section) -> None:
        self.name = name

    async def start(self) -> None:
        """Open connections or files; called before the first batch."""

    async def check(self) -> CheckResult:
        """Test that the destination can be reached and written (`otlp-router check`)."""
        return CheckResult(True, "nothing to check")

    async def stop(self) -> None:
        """Flush and close; nothing is exported after this."""


class Exporter(Destination):
    @abstractmethod
    async def export(self, batches: list[Batch]) -> None:
        """Deliver these batches, or raise `ExportError`."""


class Gatherer(Destination):
    @abstractmethod
    def bind(self, ack: Callable[[list[Entry]], None]) -> None:
        """Receive the callback that acknowledges entries once they are written."""

    @abstractmethod
    async def take(self, entries: list[Entry]) -> None:
        """Take entries into the objects being gathered."""
