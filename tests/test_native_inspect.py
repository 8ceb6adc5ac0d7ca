"""The native intake check (`_native.inspect`) against upb and `Signal.inspect`.

`payload.decode` trusts the core's count of a protobuf request and skips upb when the core
returns n >= 0, so the property is one-sided and strict:

* whenever the core returns n >= 0, upb parses the bytes, `signal.inspect` rejects nothing and
  counts n (so nothing the receiver accepts can fail to parse later);
* whenever upb refuses the bytes, the core returns -1;
* for a request upb itself wrote (canonical bytes) whose items are all acceptable, the core
  returns the count: the fast path is taken for every ordinary request;
* `payload.decode` answers every body exactly as the former upb-first path did (same error,
  items, partial_success and message);
* on the transcoder's bytes, the check the receiver runs for OTLP JSON (`transcoded`, which
  steps over strings and messages without items) answers as the full one.

Inputs: valid requests (make_request and the proto_tests strategies), requests with bad ids,
the damaged-protobuf strategies of proto_tests/test_fuzz_decoders.py, OTLP JSON turned into
protobuf by the transcoder, garbage, and hand-made edge cases of the wire format.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from otlp_router import _native
from otlp_router.model import otlp_json
from otlp_router.model.signals import LOGS, METRICS, SIGNALS, TRACES, Signal
from otlp_router.receivers import payload
from proto_tests.test_fuzz_decoders import (
    FUZZ,
    in_resource_attribute_wire,
    length_delimited,
    mutated_json,
    mutated_protobuf,
    nested_anyvalue_wire,
    nested_protobuf,
    tag,
    valid_requests,
    varint,
)
from tests.support import make_request

ALL_SIGNALS = pytest.mark.parametrize("signal", list(SIGNALS.values()), ids=lambda s: s.name)
ROOT = Path(__file__).resolve().parents[1]


def reference(signal: Signal, wire: bytes) -> tuple[int, int] | None:
    """(items kept, items rejected) as upb + signal.inspect see the bytes; None if upb refuses."""
    try:
        message = signal.request_type.FromString(wire)
    except DecodeError:
        return None
    items, rejection = signal.inspect(message)
    return items, rejection.count


def check(signal: Signal, wire: bytes, canonical: bool = False) -> int:
    n = _native.inspect(signal.name, wire)
    ref = reference(signal, wire)
    if n >= 0:
        assert ref is not None, "the core vouched for bytes upb refuses"
        assert ref == (n, 0), (n, ref)
    else:
        assert n == -1
        if canonical and ref is not None:
            assert ref[1] != 0, f"a clean canonical request fell back (upb counts {ref[0]})"
    return n


# ---------------------------------------------------------------------------------------------
# Differential: hypothesis
# ---------------------------------------------------------------------------------------------

@ALL_SIGNALS
@FUZZ
@given(data=st.data())
def test_valid_requests_agree_and_clean_ones_take_the_fast_path(signal: Signal, data: st.DataObject) -> None:
    request = data.draw(valid_requests(signal))
    check(signal, request.SerializeToString(), canonical=True)


@ALL_SIGNALS
@FUZZ
@given(data=st.data())
def test_damaged_protobuf_never_passes_where_upb_refuses(signal: Signal, data: st.DataObject) -> None:
    check(signal, data.draw(mutated_protobuf(signal)))


@ALL_SIGNALS
@FUZZ
@given(data=st.data())
def test_deep_nesting_agrees_with_upb(signal: Signal, data: st.DataObject) -> None:
    check(signal, data.draw(nested_protobuf(signal)), canonical=True)


@ALL_SIGNALS
@FUZZ
@given(wire=st.binary(max_size=96))
def test_garbage(signal: Signal, wire: bytes) -> None:
    check(signal, wire)


@ALL_SIGNALS
@FUZZ
@given(data=st.data())
def test_otlp_json_wire_agrees(signal: Signal, data: st.DataObject) -> None:
    body = data.draw(mutated_json(signal))
    try:
        wire = otlp_json.to_wire(signal.request_type, body)
    except otlp_json.JsonDecodeError:
        return
    # What the receiver runs on the transcoder's bytes reads less of them, with the same answer.
    assert _native.inspect(signal.name, wire, True) == check(signal, wire, canonical=True)


@ALL_SIGNALS
@FUZZ
@given(data=st.data())
def test_the_check_of_transcoded_json_answers_as_the_full_one(signal: Signal, data: st.DataObject) -> None:
    request = data.draw(valid_requests(signal))
    wire = otlp_json.to_wire(signal.request_type, otlp_json.encode(request))
    assert _native.inspect(signal.name, wire, True) == check(signal, wire, canonical=True)


def _old_decode(signal: Signal, kind: str, data: bytes) -> tuple[str, object]:
    """The former `payload.decode` (upb first, then signal.inspect), as an outcome."""
    wire = data
    if kind != payload.PROTOBUF:
        try:
            wire = otlp_json.to_wire(signal.request_type, data)
        except otlp_json.JsonDecodeError as e:
            return "error", f"invalid OTLP JSON: {e}"
    try:
        message = signal.request_type.FromString(wire)
    except DecodeError as e:
        if kind != payload.PROTOBUF:
            return "error", "json protobuf failure"
        return "error", f"invalid protobuf {signal.request_type.DESCRIPTOR.name}: {e}"
    items, rejection = signal.inspect(message)
    return "ok", (items, rejection, message.SerializeToString())


def _new_decode(signal: Signal, kind: str, data: bytes) -> tuple[str, object]:
    try:
        batch, rejection = payload.decode(signal, kind, data)
    except payload.PayloadError as e:
        return "error", e.message
    assert batch.json_body == (data if kind == payload.JSON else None)
    return "ok", (batch.items, rejection, batch.message.SerializeToString())


@ALL_SIGNALS
@FUZZ
@given(data=st.data())
def test_payload_decode_answers_as_before(signal: Signal, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from([payload.PROTOBUF, payload.JSON]))
    if kind == payload.PROTOBUF:
        body = data.draw(st.one_of(mutated_protobuf(signal),
                                   valid_requests(signal).map(lambda m: m.SerializeToString())))
    else:
        body = data.draw(mutated_json(signal))
    assert _new_decode(signal, kind, body) == _old_decode(signal, kind, body)


# ---------------------------------------------------------------------------------------------
# The fast path itself
# ---------------------------------------------------------------------------------------------

def test_a_clean_request_is_counted_without_building_the_message() -> None:
    wire = make_request(spans=5, attributes=3).SerializeToString()
    assert _native.inspect("traces", wire) == 5
    batch, rejection = payload.decode(TRACES, payload.PROTOBUF, wire)
    assert batch.items == 5 and not rejection.count
    assert batch._message is None and batch.wire_if_known is wire
    assert batch.message == TRACES.request_type.FromString(wire)   # built when asked for


def test_a_request_with_a_bad_span_takes_upb_and_gets_partial_success() -> None:
    request = make_request(spans=3)
    request.resource_spans[0].scope_spans[0].spans[1].span_id = bytes(8)
    wire = request.SerializeToString()
    assert _native.inspect("traces", wire) == -1
    batch, rejection = payload.decode(TRACES, payload.PROTOBUF, wire)
    assert (batch.items, rejection.count) == (2, 1) and "span_id is all zeroes" in rejection.message


def test_json_ingest_takes_the_fast_path_too() -> None:
    body = otlp_json.encode(make_request(spans=4))
    batch, rejection = payload.decode(TRACES, payload.JSON, body)
    assert batch.items == 4 and not rejection.count and batch._message is None
    assert batch.json_body is body


def test_bench_request_takes_the_fast_path() -> None:
    from bench.payloads import build_payloads

    built = build_payloads(100)
    assert _native.inspect("traces", built.protobuf) == 100
    assert _native.inspect("traces", otlp_json.to_wire(TRACES.request_type, built.json)) == 100
    assert _native.inspect("traces", otlp_json.to_wire(TRACES.request_type, built.json), True) == 100


def test_kinds_and_buffers() -> None:
    wire = make_request(spans=2).SerializeToString()
    assert _native.inspect(TRACES.request_type.DESCRIPTOR.full_name, wire) == 2
    assert _native.inspect("traces", bytearray(wire)) == -1     # not bytes: upb decides
    assert _native.inspect("traces", memoryview(wire)) == -1
    for kind in ("spans", "opentelemetry.proto.trace.v1.Span"):
        with pytest.raises(TypeError):
            _native.inspect(kind, wire)


def test_field_tables_match_the_installed_descriptors(tmp_path: Path) -> None:
    """The core reads every level by native/src/json/tables.rs: a field upb knows and the
    tables do not (after an opentelemetry-proto upgrade) would be skipped unchecked."""
    spec = importlib.util.spec_from_file_location("gen_tables", ROOT / "native" / "gen_tables.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.OUT = tmp_path / "tables.rs"
    gen.main()
    assert gen.OUT.read_text() == (ROOT / "native" / "src" / "json" / "tables.rs").read_text()


# ---------------------------------------------------------------------------------------------
# Hand-made edge cases of the wire format
# ---------------------------------------------------------------------------------------------

def _span(trace: bytes = b"\x01" * 16, span: bytes = b"\x02" * 8, parent: bytes = b"", extra: bytes = b"") -> bytes:
    out = length_delimited(1, trace) + length_delimited(2, span)
    if parent:
        out += length_delimited(4, parent)
    return out + length_delimited(5, b"op") + extra


def _traces(*spans: bytes, scope_extra: bytes = b"", resource_extra: bytes = b"", top_extra: bytes = b"") -> bytes:
    scope = b"".join(length_delimited(2, s) for s in spans) + scope_extra
    return length_delimited(1, length_delimited(2, scope) + resource_extra) + top_extra


def _kv(key: bytes, value: bytes) -> bytes:
    return length_delimited(1, key) + length_delimited(2, value)


EDGE_TRACES = {
    "clean": _traces(_span(), _span(parent=b"\x03" * 8)),
    "empty": b"",
    "field 0": _traces(_span()) + b"\x00\x00",
    "field 0 in a span": _traces(_span(extra=b"\x00\x00")),
    "tag of 5 bytes": _traces(_span()) + b"\xf8\xff\xff\xff\x0f\x00",
    "tag of 6 bytes": _traces(_span()) + b"\x88\x80\x80\x80\x80\x00\x00",
    "tag past 32 bits": _traces(_span()) + b"\x88\x80\x80\x80\x10\x00",
    "varint of 10 bytes": _traces(_span(extra=tag(99, 0) + b"\xff" * 9 + b"\x01")),
    "varint of 11 bytes": _traces(_span(extra=tag(99, 0) + b"\xff" * 10 + b"\x01")),
    "non-minimal varint": _traces(_span(extra=tag(6, 0) + b"\x83\x80\x80\x00")),
    "kind as 10-byte negative": _traces(_span(extra=tag(6, 0) + varint(-1))),
    "unknown fields everywhere": _traces(_span(extra=tag(100, 1) + bytes(8) + tag(101, 5) + bytes(4)
                                               + length_delimited(102, b"\xff\xfe") + tag(103, 0) + b"\x01"),
                                         scope_extra=length_delimited(9, b"\xff"), resource_extra=tag(7, 0) + b"\x00",
                                         top_extra=length_delimited(2**29 - 1, b"\xc0")),
    "group": _traces(_span(extra=tag(50, 3) + tag(50, 4))),
    "end group": _traces(_span(extra=tag(50, 4))),
    "wire type 6": _traces(_span()) + tag(9, 6),
    "wire type 7": _traces(_span(extra=tag(9, 7))),
    "known field, other wire type": _traces(_span(extra=tag(7, 0) + b"\x01")),
    "string as varint": _traces(_span(extra=tag(5, 0) + b"\x01")),
    "length past the end": _traces(_span()) + tag(1, 2) + b"\x05\x00",
    "length 2^31": _traces(_span()) + tag(1, 2) + varint(2**31),
    "truncated fixed64": _traces(_span(extra=tag(7, 1) + bytes(7))),
    "invalid UTF-8 name": _traces(_span(extra=length_delimited(5, b"\xc0\x80"))),
    "surrogate in trace_state": _traces(_span(extra=length_delimited(3, b"\xed\xa0\x80"))),
    "invalid UTF-8 attribute key": _traces(_span(extra=length_delimited(9, _kv(b"\xff", b"")))),
    "invalid UTF-8 in a kvlist in an array": _traces(_span(extra=length_delimited(9, _kv(b"k", length_delimited(
        5, length_delimited(1, length_delimited(6, length_delimited(1, _kv(b"\xf4\x90\x80\x80", b""))))))))),
    "invalid UTF-8 string_value in an array": _traces(_span(extra=length_delimited(9, _kv(b"k", length_delimited(
        5, length_delimited(1, length_delimited(1, b"\xe2\x82"))))))),
    "invalid UTF-8 bytes_value": _traces(_span(extra=length_delimited(9, _kv(b"k", length_delimited(7, b"\xff"))))),
    "invalid UTF-8 in unknown field of AnyValue": _traces(_span(extra=length_delimited(9, _kv(
        b"k", length_delimited(40, b"\xff"))))),
    "invalid UTF-8 scope name": _traces(_span(), scope_extra=length_delimited(1, length_delimited(1, b"\xff"))),
    "invalid UTF-8 resource schema_url": _traces(_span(), resource_extra=length_delimited(3, b"\x80")),
    "invalid UTF-8 entity ref id key": _traces(_span(), resource_extra=length_delimited(1, length_delimited(
        3, length_delimited(3, b"ok") + length_delimited(3, b"\xff")))),
    "invalid UTF-8 event name": _traces(_span(extra=length_delimited(11, length_delimited(2, b"\xff")))),
    "invalid UTF-8 link trace_state": _traces(_span(extra=length_delimited(13, length_delimited(3, b"\xff")))),
    "invalid UTF-8 status message": _traces(_span(extra=length_delimited(15, length_delimited(2, b"\xff")))),
    "bad link ids are fine": _traces(_span(extra=length_delimited(13, length_delimited(1, b"x")))),
    "zero trace id": _traces(_span(trace=bytes(16))),
    "short trace id": _traces(_span(trace=b"\x01" * 15)),
    "no span id": _traces(length_delimited(1, b"\x01" * 16)),
    "zero span id": _traces(_span(span=bytes(8))),
    "parent of 4": _traces(_span(parent=b"\x01" * 4)),
    "bad id given again right": _traces(length_delimited(1, bytes(16)) + _span()),   # the last one counts
    "good id given again wrong": _traces(_span(extra=length_delimited(2, bytes(8)))),
    "span as varint": length_delimited(1, length_delimited(2, tag(2, 0) + b"\x01")),
    "status given twice": _traces(_span(extra=length_delimited(15, tag(3, 0) + b"\x01") * 2)),
}


@pytest.mark.parametrize("name", list(EDGE_TRACES))
def test_edge_cases(name: str) -> None:
    check(TRACES, EDGE_TRACES[name])


def test_edge_cases_take_the_paths_expected() -> None:
    n = {name: _native.inspect("traces", wire) for name, wire in EDGE_TRACES.items()}
    assert n["clean"] == 2 and n["empty"] == 0 and n["unknown fields everywhere"] == 1
    assert n["tag of 5 bytes"] == 1 and n["varint of 10 bytes"] == 1 and n["non-minimal varint"] == 1
    assert n["bad link ids are fine"] == 1 and n["bad id given again right"] == 1 and n["status given twice"] == 1
    assert n["invalid UTF-8 bytes_value"] == 1 and n["invalid UTF-8 in unknown field of AnyValue"] == 1
    fallback = [k for k, v in n.items() if v < 0]
    assert set(fallback) >= {"group", "known field, other wire type", "zero trace id", "good id given again wrong",
                             "invalid UTF-8 in a kvlist in an array", "invalid UTF-8 entity ref id key"}


def _log(trace: bytes = b"", span: bytes = b"", extra: bytes = b"") -> bytes:
    out = length_delimited(3, b"INFO")
    if trace:
        out += length_delimited(9, trace)
    if span:
        out += length_delimited(10, span)
    return out + extra


@pytest.mark.parametrize("record,expected", [
    (_log(), 1), (_log(b"\x01" * 16, b"\x02" * 8), 1), (_log(b"\x01" * 16), 1), (_log(span=b"\x02" * 8), 1),
    (_log(bytes(16)), -1), (_log(b"\x01" * 8), -1), (_log(span=bytes(8)), -1), (_log(span=b"\x01" * 16), -1),
    (_log(extra=length_delimited(5, length_delimited(1, b"\xff"))), -1),          # body string
    (_log(extra=tag(8, 5) + bytes(4) + tag(1, 1) + bytes(8) + tag(2, 0) + varint(-5)), 1),
])
def test_log_records(record: bytes, expected: int) -> None:
    wire = length_delimited(1, length_delimited(2, length_delimited(2, record)))
    assert check(LOGS, wire) == expected


def _metric(*members: tuple[int, bytes]) -> bytes:
    return length_delimited(1, b"m") + b"".join(length_delimited(number, body) for number, body in members)


_POINT = length_delimited(1, tag(3, 1) + bytes(8))   # one data point (number 1 of every data member)


def _hist(point: bytes) -> tuple[int, bytes]:
    return 9, length_delimited(1, point)


def _exp_hist(buckets: bytes) -> tuple[int, bytes]:
    return 10, length_delimited(1, length_delimited(8, buckets))   # one point, its `positive` buckets


_BAD_EXEMPLAR = length_delimited(1, length_delimited(5, length_delimited(7, _kv(b"\xff", b""))))


@pytest.mark.parametrize("metric,expected", [
    (_metric(), 0),
    (_metric((5, _POINT * 3)), 3),                                 # gauge
    (_metric((7, _POINT * 2 + tag(2, 0) + b"\x02")), 2),           # sum
    (_metric((5, _POINT), (7, _POINT * 2)), -1),                   # two members: upb keeps the last
    (_metric((5, _POINT), (5, _POINT * 2)), -1),                   # the same member twice: merged
    # histogram: bucket_counts and explicit_bounds packed, unpacked, cut short, empty
    (_metric(_hist(length_delimited(6, bytes(16)) + length_delimited(7, bytes(8)))), 1),
    (_metric(_hist(tag(6, 1) + bytes(8) + tag(7, 1) + bytes(8))), 1),
    (_metric(_hist(length_delimited(6, bytes(12)))), -1),
    (_metric(_hist(length_delimited(7, b""))), 1),
    (_metric(_hist(tag(6, 0) + b"\x01")), -1),                     # fixed64 as a varint
    # exponential histogram buckets: packed varints, unpacked, truncated varint
    (_metric(_exp_hist(length_delimited(2, varint(5) + varint(2**64 - 1)))), 1),
    (_metric(_exp_hist(tag(2, 0) + varint(7))), 1),
    (_metric(_exp_hist(length_delimited(2, b"\x80"))), -1),
    (_metric((11, _POINT + length_delimited(1, length_delimited(6, tag(1, 1) + bytes(8))))), 2),   # summary
    (_metric((5, _BAD_EXEMPLAR)), -1),
    (_metric((5, _POINT)) + length_delimited(12, _kv(b"k", length_delimited(1, b"v"))), 1),  # metadata
])
def test_metrics(metric: bytes, expected: int) -> None:
    wire = length_delimited(1, length_delimited(2, length_delimited(2, metric)))
    assert check(METRICS, wire) == expected


def _depth_of(levels: list[str]) -> int:
    """Message levels below the root of a request holding this AnyValue nesting in a resource
    attribute: request > ResourceX > Resource > KeyValue > AnyValue is 4."""
    return 4 + sum(2 if level == "array" else 3 for level in levels)


@ALL_SIGNALS
def test_nesting_limit_is_upbs(signal: Signal) -> None:
    for depth in range(94, 106):
        below = depth - 4
        shapes = [["array"] * (below // 2)] if below % 2 == 0 else []
        if below >= 3 and (below - 3) % 2 == 0:
            arrays = (below - 3) // 2
            shapes += [["kvlist"] + ["array"] * arrays, ["array"] * arrays + ["kvlist"]]
        for levels in shapes:
            assert _depth_of(levels) == depth
            wire = in_resource_attribute_wire(signal, nested_anyvalue_wire(levels))
            ok = reference(signal, wire) is not None
            assert ok == (depth <= 100), (levels, depth)
            assert (check(signal, wire) >= 0) == ok, depth


def test_anyvalue_strategies_nest_as_described() -> None:
    value = AnyValue(array_value=ArrayValue(values=[AnyValue(kvlist_value=KeyValueList(values=[
        KeyValue(key="k", value=AnyValue(string_value="x"))]))]))
    request = TRACES.request_type()
    request.resource_spans.add().resource.attributes.add(key="a", value=value)
    assert _native.inspect("traces", request.SerializeToString()) == 0
    metric = Metric(name="m")
    metric.gauge.data_points.add()
    request = METRICS.request_type()
    request.resource_metrics.add().scope_metrics.add().metrics.append(metric)
    assert _native.inspect("metrics", request.SerializeToString()) == 1


def test_shaping_builds_the_message_only_for_a_transform_that_runs() -> None:
    from otlp_router.routing.shaping import Shaping, shape

    wire = make_request(spans=3).SerializeToString()   # no content key: privacy has nothing to do
    batch, _ = payload.decode(TRACES, payload.PROTOBUF, wire)
    copy, sampled = shape(batch, [Shaping(privacy=True)], shared=True)
    assert sampled == 0 and copy is not batch and copy.items == 3
    assert batch._message is None and copy._message is None and copy.wire_if_known is wire
    copy.message.resource_spans[0].scope_spans[0].spans[0].name = "changed"   # a copy: the original keeps its own
    copy.modified()
    assert batch.message.resource_spans[0].scope_spans[0].spans[0].name == "span-0"
