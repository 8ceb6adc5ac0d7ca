"""The OTLP signals the router carries, and what differs between them.

Receivers, the spool and destinations are written once against `Signal`; a
new signal is a new entry here (plus its item validation), not a new code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
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


def _inspect_spans(request: trace_service_pb2.ExportTraceServiceRequest) -> tuple[int, Rejection]:
    accepted = rejected = 0
    first = ""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            spans = ss.spans
            bad = [i for i, span in enumerate(spans) if _span_problem(span) is not None]
            if bad:
                first = first or f"span {spans[bad[0]].name!r}: {_span_problem(spans[bad[0]])}"
                for i in reversed(bad):
                    del spans[i]
                rejected += len(bad)
            accepted += len(spans)
    if not rejected:
        return accepted, Rejection()
    return accepted, Rejection(rejected, f"{rejected} span(s) rejected; first: {first}")


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
    inspect=_inspect_spans,
)

SIGNALS: dict[str, Signal] = {s.name: s for s in (TRACES,)}
