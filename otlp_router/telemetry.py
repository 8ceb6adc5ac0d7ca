"""The router's own metrics, named in the Collector's spirit so dashboards carry over.

Counters are per request or per batch with the item count as the increment,
never per span, so they cost nothing measurable on the data path.

Beside the project's names, the OpenTelemetry Collector's own self-metrics
(`otelcol_receiver_accepted_spans_total`, `otelcol_exporter_sent_log_records_total`,
`otelcol_exporter_queue_size`, ...) with its `receiver` / `transport` /
`exporter` labels, so Collector dashboards and alerts work unchanged. They are
not a second bookkeeping: the project's counters below are `Counted`, whose
one `.labels(...).inc(n)` at each call site updates both.
"""

from __future__ import annotations

import collections
import platform
import sys
import threading
import time
from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics

from otlp_router import __version__, logs

# `_created` series only add noise here (and cannot be added up across workers).
disable_created_metrics()
VERSION = __version__
REGISTRY = CollectorRegistry(auto_describe=True)
# process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ... of this process
# (the supervisor of `workers: N` labels each process's with its worker and pid).
ProcessCollector(registry=REGISTRY)

build_info = Gauge("otlp_router_build_info", "Always 1; the labels say which build is running.",
                   ("version", "python"), registry=REGISTRY)
build_info.labels(VERSION, platform.python_version()).set(1)


# -- the Collector's names ---------------------------------------------------
# From the Collector's internal telemetry (receiverhelper / exporterhelper
# documentation.md): one metric per signal, in that signal's unit.
SIGNAL_UNITS = {"traces": "spans", "logs": "log_records", "metrics": "metric_points"}
_UNIT_NOUN = {"spans": "spans", "log_records": "log records", "metric_points": "metric points"}


def _per_signal(name: str, doc: str, labels: tuple[str, ...]) -> dict[str, Counter]:
    """`otelcol_<name>_<unit>` for each signal, e.g. otelcol_receiver_accepted_spans(_total)."""
    return {signal: Counter(f"otelcol_{name}_{unit}", doc.format(_UNIT_NOUN[unit]), labels, registry=REGISTRY)
            for signal, unit in SIGNAL_UNITS.items()}


otelcol_receiver_accepted = _per_signal(
    "receiver_accepted", "Number of {} successfully pushed into the pipeline.", ("receiver", "transport"))
otelcol_receiver_refused = _per_signal(
    "receiver_refused", "Number of {} that could not be pushed into the pipeline.", ("receiver", "transport"))
otelcol_exporter_sent = _per_signal(
    "exporter_sent", "Number of {} successfully sent to destination.", ("exporter",))
# As in the Collector, whose obsreport sits outside its retry sender: items of
# exports that failed for good (rejected, retries exhausted), not of each retried attempt.
otelcol_exporter_send_failed = _per_signal(
    "exporter_send_failed", "Number of {} in failed attempts to send to destination.", ("exporter",))
# In bytes (the Collector's `sizer: bytes`): the spool's limit is in bytes, so size and
# capacity share a unit and size / capacity is the fill ratio Collector alerts use.
otelcol_exporter_queue_size = Gauge(
    "otelcol_exporter_queue_size", "Current size of the retry queue (bytes waiting in the destination's spool).",
    ("exporter",), registry=REGISTRY)
otelcol_exporter_queue_capacity = Gauge(
    "otelcol_exporter_queue_capacity", "Fixed capacity of the retry queue (the spool's max_bytes).",
    ("exporter",), registry=REGISTRY)


class _CountedChild:
    __slots__ = ("own", "mirror", "after")

    def __init__(self, own: Any, mirror: Any | None, after: Callable[[float], None] | None) -> None:
        self.own, self.mirror, self.after = own, mirror, after

    def inc(self, amount: float = 1) -> None:
        self.own.inc(amount)
        if self.mirror is not None:
            self.mirror.inc(amount)
        if self.after is not None:
            self.after(amount)

    def __getattr__(self, name: str) -> Any:   # _value and the rest, as on the project's counter
        return getattr(self.own, name)


class Counted:
    """A project counter whose increments also count a Collector series.

    `mirror(label values)` picks the Collector counter child for a label set
    (None: nothing to mirror); `after(label values)` may return a callback that
    hears of each increment. Children are made once per label set, so an
    increment costs one dict lookup more than the bare counter."""

    def __init__(self, own: Counter, mirror: Callable[[tuple[str, ...]], Any | None] | None = None,
                 after: Callable[[tuple[str, ...]], Callable[[float], None] | None] | None = None) -> None:
        self._own, self._mirror, self._after = own, mirror, after
        self._children: dict[tuple[str, ...], _CountedChild] = {}

    def labels(self, *values: str, **named: str) -> _CountedChild:
        if named:
            values = tuple(named[n] for n in self._own._labelnames)
        child = self._children.get(values)      # the hot path: one lookup, no conversion
        if child is None:
            key = tuple(str(v) for v in values)
            child = self._children.get(key)
            if child is None:
                child = _CountedChild(self._own.labels(*key), self._mirror(key) if self._mirror else None,
                                      self._after(key) if self._after else None)
                self._children[key] = child
            self._children[values] = child
        return child

    def collect(self) -> Any:
        return self._own.collect()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._own, name)


def _signal_mirror(counters: dict[str, Counter], pick: Callable[[tuple[str, ...]], tuple[str, ...] | None]
                   ) -> Callable[[tuple[str, ...]], Any | None]:
    """Label values → the Collector child: `pick` gives (signal, *its labels) or None."""
    def mirror(values: tuple[str, ...]) -> Any | None:
        picked = pick(values)
        if picked is None or picked[0] not in counters:
            return None
        return counters[picked[0]].labels(*picked[1:])
    return mirror


class RecentRefusals:
    """The last refused requests, for the status page's "recent problems".

    Fed by `receiver_refused_requests`, so each refusal is noted where it is
    counted (the transports), with no log line per bad request: a client
    sending garbage must not flood the log. Repeats of the same refusal are
    one row with a count."""

    def __init__(self, size: int = 50) -> None:
        self._rows: collections.OrderedDict[tuple[str, ...], dict[str, Any]] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def note(self, receiver: str, transport: str, signal: str, status: str, message: str | None) -> None:
        if message:
            # Client-chosen text (a content type, a JSON path): masked and cut.
            message = logs.mask(message if len(message) <= 300 else message[:300] + "…")
        text = f"refused a {signal} request over {transport}: {status}" + (f" {message}" if message else "")
        key = (transport, signal, status, message or "")
        with self._lock:
            row = self._rows.pop(key, None)
            if row is None:
                row = {"level": "WARNING", "logger": "otlp_router.receivers", "message": text, "count": 0,
                       "status": status}
            row["count"] += 1
            row["time"] = time.time()
            self._rows[key] = row            # newest last
            while len(self._rows) > self._size:
                self._rows.popitem(last=False)

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._rows.values()]

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


refusals = RecentRefusals()


def _refusal_note(values: tuple[str, ...]) -> Callable[[float], None]:
    receiver, transport, signal, status = values

    def note(amount: float) -> None:
        # The transports count a refusal inside their `except Refused`: the
        # exception being handled carries the message the client was given.
        exc = sys.exc_info()[1]
        message = getattr(exc, "message", None) if exc is not None else None
        refusals.note(receiver, transport, signal, status, message if isinstance(message, str) else None)
    return note

_RECEIVER = ("receiver", "transport", "signal")

receiver_accepted = Counted(Counter(
    "otlp_router_receiver_accepted_items", "Items (spans, ...) accepted and acknowledged to the client.",
    _RECEIVER, registry=REGISTRY),
    _signal_mirror(otelcol_receiver_accepted, lambda v: (v[2], v[0], v[1])))
receiver_refused = Counted(Counter(
    "otlp_router_receiver_refused_items", "Items refused, by reason (partial_success, backpressure, ...).",
    _RECEIVER + ("reason",), registry=REGISTRY),
    _signal_mirror(otelcol_receiver_refused, lambda v: (v[2], v[0], v[1])))
receiver_refused_requests = Counted(Counter(
    "otlp_router_receiver_refused_requests", "Requests answered with an error, by status.",
    _RECEIVER + ("status",), registry=REGISTRY), after=_refusal_note)
routed = Counter(
    "otlp_router_routed_items", "Items sent on by a route.", ("route", "signal"), registry=REGISTRY)
unrouted = Counter(
    "otlp_router_unrouted_items", "Items no route matched (and no default route took).", ("signal",),
    registry=REGISTRY)
exporter_sent = Counted(Counter(
    "otlp_router_exporter_sent_items", "Items a destination confirmed.", ("destination", "signal"),
    registry=REGISTRY),
    _signal_mirror(otelcol_exporter_sent, lambda v: (v[1], v[0])))
exporter_failed = Counter(
    "otlp_router_exporter_send_failed_items", "Items of failed export attempts, by reason.",
    ("destination", "signal", "reason"), registry=REGISTRY)
exporter_dropped = Counted(Counter(
    "otlp_router_exporter_dropped_items", "Items given up on (permanent rejection, retries exhausted).",
    ("destination", "signal", "reason"), registry=REGISTRY),
    # Only items an export gave up on and no dead letter kept are a failed send;
    # a backend's partial_success or a memory spool's shutdown loss are not.
    _signal_mirror(otelcol_exporter_send_failed, lambda v: (v[1], v[0]) if v[2] == "no_dead_letter" else None))
spool_bytes = Gauge(
    "otlp_router_spool_bytes", "Bytes waiting in a destination's spool.", ("destination",), registry=REGISTRY)
spool_items = Gauge(
    "otlp_router_spool_items", "Items waiting in a destination's spool.", ("destination",), registry=REGISTRY)
sampled_out = Counter(
    "otlp_router_sampled_out_items", "Items a destination's sampling left out.", ("destination", "signal"),
    registry=REGISTRY)
spool_corrupt = Counter(
    "otlp_router_spool_corrupt_records", "Corrupt records found in the middle of a spool segment at start-up.",
    ("destination",), registry=REGISTRY)
spool_lost_records = Counter(
    "otlp_router_spool_lost_records", "Records start-up found torn (a cut final record) or missing (numbers no "
    "segment holds that were never acknowledged), by reason.", ("destination", "reason"), registry=REGISTRY)
spool_write_errors = Counter(
    "otlp_router_spool_write_errors", "Appends refused because the spool could not be written (disk full ...).",
    ("destination",), registry=REGISTRY)
dead_lettered = Counted(Counter(
    "otlp_router_dead_lettered_items",
    "Items kept in a destination's dead letter, by reason (rejected, exhausted: past retry.max_elapsed, "
    "poison: the router could not handle them).", ("destination", "signal", "reason"), registry=REGISTRY),
    _signal_mirror(otelcol_exporter_send_failed, lambda v: (v[1], v[0])))
limited_attributes = Counter(
    "otlp_router_receiver_limited_attributes", "Attributes dropped or values truncated by the receiver limits.",
    ("action",), registry=REGISTRY)
spool_oldest_age = Gauge(
    "otlp_router_spool_oldest_pending_age_seconds", "Age of the oldest item a destination has not confirmed.",
    ("destination",), registry=REGISTRY)
export_batch_items = Histogram(
    "otlp_router_exporter_batch_items", "Items per export request.", ("destination",),
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000), registry=REGISTRY)
export_latency = Histogram(
    "otlp_router_exporter_latency_seconds", "Time of one export attempt, success or not.", ("destination",),
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY)


def update_queue_gauges(queues: Iterable[tuple[str, int, int]]) -> None:
    """The Collector's queue gauges from (destination, pending bytes, max bytes); a
    destination a reload removed loses its series."""
    seen = set()
    for name, size, capacity in queues:
        seen.add((name,))
        otelcol_exporter_queue_size.labels(name).set(size)
        otelcol_exporter_queue_capacity.labels(name).set(capacity)
    for gauge in (otelcol_exporter_queue_size, otelcol_exporter_queue_capacity):
        for labels in [k for k in list(gauge._metrics) if k not in seen]:
            gauge.remove(*labels)
