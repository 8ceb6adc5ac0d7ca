"""The OTLP signals the router carries, and what differs between them.

Receivers, the spool and destinations are written once against `Signal`; a
new signal is a new entry here (plus its item validation), not a new code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


@dataclass(frozen=True)
class Rejection:
    """What `Signal.inspect` removed from a request, for partial_success."""

    count: int = 0
    message: str = ""


@dataclass(frozen=True)
class Signal:
    name: str                    # "traces": config, metrics labels, key prefixes
    item_name: str               # "spans": what one accepted unit is called
    http_path: str               # "/v1/traces"
    grpc_service: str            # full gRPC service name
    request_type: type[Message]
    response_type: type[Message]
    rejected_field: str          # partial_success field counting rejected items
    # The three nesting levels of every OTLP request: resource → scope → items.
    resource_field: str          # "resource_spans"
    scope_field: str             # "scope_spans"
    items_field: str             # "spans"
    # Counts the items of a request and removes, in place, those a backend
    # would reject (bad ids ...), saying why: one pass for both.
    inspect: Callable[[Message], tuple[int, Rejection]]
    # The attribute lists of one item that attribute actions and redaction work on.
    attribute_lists: Callable[[Any], tuple[Any, ...]]
    # How many counted units one item is, when not one (metrics count data points).
    weight: Callable[[Any], int] | None = None

    def response(self, rejection: Rejection) -> Message:
        response = self.response_type()
        if rejection.count:
            partial = response.partial_success
            setattr(partial, self.rejected_field, rejection.count)
            partial.error_message = rejection.message
        return response


def _span_problem(span: Span) -> str | None:
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16:
        return f"trace_id must be 16 bytes, got {len(trace_id)}"
    if trace_id == _ZERO_TRACE_ID:
        return "trace_id is all zeroes"
    if len(span_id) != 8:
        return f"span_id must be 8 bytes, got {len(span_id)}"
    if span_id == _ZERO_SPAN_ID:
        return "span_id is all zeroes"
    if parent and len(parent) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(parent)}"
    return None


def _log_problem(record: LogRecord) -> str | None:
    # Logs need no trace context, but one that is there must be well formed.
    trace_id, span_id = record.trace_id, record.span_id
    if trace_id and (len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID):
        return f"trace_id must be empty or 16 non-zero bytes, got {len(trace_id)} bytes"
    if span_id and (len(span_id) != 8 or span_id == _ZERO_SPAN_ID):
        return f"span_id must be empty or 8 non-zero bytes, got {len(span_id)} bytes"
    return None


def _no_problem(item: Message) -> str | None:
    return None


def _data_points(metric: Metric) -> Any:
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind else ()


def _remove(items: Any, bad: list[int]) -> None:
    """Delete the items at these (sorted) indexes. Each deletion shifts what
    follows, so past a few, rebuilding the list keeps this linear."""
    if len(bad) <= 8:
        for i in reversed(bad):
            del items[i]
        return
    drop = set(bad)
    keep = [item for i, item in enumerate(items) if i not in drop]
    copies = [type(item)() for item in keep]
    for copy, item in zip(copies, keep):
        copy.CopyFrom(item)
    del items[:]
    items.extend(copies)


def _inspector(resource_field: str, scope_field: str, items_field: str, noun: str,
               problem: Callable[[Any], str | None], weight: Callable[[Any], int] | None = None
               ) -> Callable[[Message], tuple[int, Rejection]]:
    """Counts a request's items and removes, in place, those with a problem. The receiver
    only comes here for a request the native core did not vouch for (`_native.inspect`:
    bytes upb may refuse, or items to reject), so this is not the hot path."""

    def find(items: Any) -> list[int]:
        return [i for i, item in enumerate(items) if problem(item) is not None]

    def inspect(request: Message) -> tuple[int, Rejection]:
        accepted = rejected = 0
        first = ""
        for rs in getattr(request, resource_field):
            for ss in getattr(rs, scope_field):
                items = getattr(ss, items_field)
                bad = find(items)
                if bad:
                    item = items[bad[0]]
                    first = first or f"{noun} {getattr(item, 'name', '') or bad[0]!r}: {problem(item)}"
                    rejected += sum(weight(items[i]) for i in bad) if weight else len(bad)
                    _remove(items, bad)
                accepted += sum(weight(item) for item in items) if weight else len(items)
        if not rejected:
            return accepted, Rejection()
        return accepted, Rejection(rejected, f"{rejected} {noun}(s) rejected; first: {first}")

    return inspect


TRACES = Signal(
    name="traces",
    item_name="spans",
    http_path="/v1/traces",
    grpc_service="opentelemetry.proto.collector.trace.v1.TraceService",
    request_type=trace_service_pb2.ExportTraceServiceRequest,
    response_type=trace_service_pb2.ExportTraceServiceResponse,
    rejected_field="rejected_spans",
    resource_field="resource_spans",
    scope_field="scope_spans",
    items_field="spans",
    inspect=_inspector("resource_spans", "scope_spans", "spans", "span", _span_problem),
    attribute_lists=lambda span: (span.attributes,),
)

LOGS = Signal(
    name="logs",
    item_name="log records",
    http_path="/v1/logs",
    grpc_service="opentelemetry.proto.collector.logs.v1.LogsService",
    request_type=logs_service_pb2.ExportLogsServiceRequest,
    response_type=logs_service_pb2.ExportLogsServiceResponse,
    rejected_field="rejected_log_records",
    resource_field="resource_logs",
    scope_field="scope_logs",
    items_field="log_records",
    inspect=_inspector("resource_logs", "scope_logs", "log_records", "log record", _log_problem),
    attribute_lists=lambda record: (record.attributes,),
)

METRICS = Signal(
    name="metrics",
    item_name="data points",
    http_path="/v1/metrics",
    grpc_service="opentelemetry.proto.collector.metrics.v1.MetricsService",
    request_type=metrics_service_pb2.ExportMetricsServiceRequest,
    response_type=metrics_service_pb2.ExportMetricsServiceResponse,
    rejected_field="rejected_data_points",
    resource_field="resource_metrics",
    scope_field="scope_metrics",
    items_field="metrics",
    # Metrics are routed per metric but counted, like the Collector, in data points.
    inspect=_inspector("resource_metrics", "scope_metrics", "metrics", "metric", _no_problem,
                       weight=lambda metric: len(_data_points(metric))),
    attribute_lists=lambda metric: tuple(point.attributes for point in _data_points(metric)),
    weight=lambda metric: len(_data_points(metric)),
)

SIGNALS: dict[str, Signal] = {s.name: s for s in (TRACES, LOGS, METRICS)}
