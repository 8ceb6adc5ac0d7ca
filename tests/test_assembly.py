"""Trace assembly (otlp_router/destinations/assembly.py): what bounds the memory of a per-trace
store under a backlog, and that bounding it writes traces early, never drops them."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_router.destinations.assembly import OpenTrace, TraceAssembler
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.spool.base import Entry
from tests.support import make_request


def _entry(traces: int, spans: int, seq: int) -> Entry:
    """One request of `traces` traces of `spans` spans each."""
    request = ExportTraceServiceRequest()
    for t in range(traces):
        request.resource_spans.extend(make_request(spans=spans, seed=seq * 16 + t + 1).resource_spans)
    batch = Batch(TRACES, request, traces * spans, request.SerializeToString())
    return Entry(batch, batch.size, seq)


def _span_bytes(trace: OpenTrace) -> int:
    return sum(len(wire) for wire, *_ in trace.parts)


def test_open_bytes_count_the_spans_and_once_each_request_an_open_trace_keeps() -> None:
    assembler = TraceAssembler(idle=1.0, max_age=60.0, max_traces=1000, max_bytes=1 << 30)
    entry = _entry(traces=3, spans=2, seq=1)
    assert assembler.add(entry, 0.0, lambda e: None) == []
    traces = list(assembler.open.values())
    spans = sum(map(_span_bytes, traces))
    # The request stays in memory (for the dead letter) while any of its traces is open.
    assert assembler.bytes == spans + entry.size
    first = traces[0]
    assembler._close(first)
    assert assembler.bytes == spans - _span_bytes(first) + entry.size
    for trace in traces[1:]:
        assembler._close(trace)
    assert assembler.bytes == 0


def test_past_max_open_bytes_the_oldest_traces_are_written_early_and_none_is_lost() -> None:
    one = _entry(traces=4, spans=3, seq=1)
    assembler = TraceAssembler(idle=60.0, max_age=600.0, max_traces=1000, max_bytes=2 * one.size)
    written: list[OpenTrace] = []
    for seq in range(1, 9):
        assembler.add(_entry(traces=4, spans=3, seq=seq), float(seq), lambda e: None)
        written += assembler.due(float(seq))
        # What stays open is within the bound (and so is what its requests keep in memory).
        assert assembler.bytes <= 2 * one.size
    assert written, "the bound wrote traces before they were idle"
    assert all(w.opened <= o.opened for w in written[:1] for o in assembler.open.values())
    written += assembler.due(100.0, everything=True)
    assert sorted(w.trace_id for w in written) == sorted(bytes([seq * 16 + t + 1] * 16)
                                                       for seq in range(1, 9) for t in range(4))
    assert sum(w.items for w in written) == 8 * 4 * 3
    assert assembler.bytes == 0 and not len(assembler._kept)
