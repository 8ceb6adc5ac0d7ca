"""What a destination is: something that takes one group of items at a time
(`export`) and says whether a failure is for good or for now. Queueing,
gathering, retries, dead letters and acknowledgement live once, in
`delivery.py`, around every destination; `assembler` says how the items read
from the spool are gathered into groups first (`assembly.py`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from otlp_router.settings import Section

if TYPE_CHECKING:
    from otlp_router.destinations.assembly import Assembler, Group


# Keys every destination has, read by the router around the destination itself
# (delivery, shaping); a destination's own settings are the rest.
COMMON_KEYS = ("type", "retry", "batch", "max_in_flight", "privacy", "redaction", "attributes", "sampling")


class ExportError(Exception):
    """An export failed. `permanent`: the data is refused as such and never
    retried (it goes to the dead letter); otherwise it is retried, no sooner
    than `retry_after` seconds when the destination said so (throttling)."""

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
    # Those a route that names no `signals` sends it; None: all it accepts.
    implied: frozenset[str] | None = None
    # How long delivery waits to fill a batch before exporting what it has.
    default_flush_interval: ClassVar[float] = 0.0
    # Concurrent exports; 1 keeps order (files), more hide a remote's latency.
    default_max_in_flight: int = 1
    # Needs every span of a trace in one process (per-trace JSON); with several
    # workers the spans are handed to the trace's owner worker.
    whole_traces: bool = False

    def __init__(self, name: str, settings: Section) -> None:
        self.name = name

    def assembler(self, max_items: int, max_bytes: int, flush_interval: float) -> Assembler:
        """How spool entries become exports: by default runs of one signal, cut
        at `max_items` / `max_bytes` or `flush_interval` after the first."""
        from otlp_router.destinations.assembly import Runs
        return Runs(max_items, max_bytes, flush_interval)

    async def start(self) -> None:
        """Open connections or files; called before the first export."""

    @abstractmethod
    async def export(self, group: Group) -> None:
        """Deliver one group (`group.batches()` for plain exports), or raise `ExportError`."""

    async def check(self) -> CheckResult:
        """Test that the destination can be reached and written (`otlp-router check`)."""
        return CheckResult(True, "nothing to check")

    async def stop(self) -> None:
        """Close connections; nothing is exported after this."""
