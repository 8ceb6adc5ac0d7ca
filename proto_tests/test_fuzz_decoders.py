"""Fuzzing the request decoders: hostile bodies in, only `PayloadError` out.

For every signal the router carries (`SIGNALS`), `payload.decompress` followed by
`payload.decode` is a total function on bytes:

* it returns, or raises `payload.PayloadError` with status 400, 413 or 415 and a message;
  no other exception escapes (no RecursionError, UnicodeError, OverflowError, ...);
* what it returns is consistent: every kept span has a non-zero 16-byte trace id, a non-zero
  8-byte span id and an empty or 8-byte parent id; the batch counts the items its message
  holds; kept + rejected equals the items in the input, counted independently (a small wire
  format walker for protobuf, the parsed document for JSON); the answer (partial_success)
  serialises, and the kept message survives an OTLP JSON round trip (what file destinations
  write);
* decompression is faithful: an intact compressed body gives back exactly what was
  compressed when that fits the cap, and 413 when it does not (gzip bombs stop at the cap);
  an unknown Content-Encoding is 415.

Inputs start from valid requests (`make_request` and hypothesis-built ones) and are then
damaged: byte flips, truncations, insertions, duplicated fields, stray varints and groups,
over-long length prefixes, invalid UTF-8 in string fields, AnyValue nesting past the protobuf
limit; for OTLP JSON wrong types at random paths, huge and non-finite number literals,
duplicate keys, nulls, unknown fields, malformed ids, invalid UTF-8, truncation and deep
nesting; then optionally compressed, truncated or mislabelled.

The strategies and `check_decoding` are shared with test_fuzz_router.py and bench/fuzz.py.
"""

from __future__ import annotations

import gzip
import sys
import tracemalloc
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, TypeVar

import orjson
import pytest
import zstandard
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_router.model import otlp_json
from otlp_router.model.signals import SIGNALS, TRACES, Signal
from otlp_router.receivers import payload
from tests.support import make_request

T = TypeVar("T")

# Thousands of cases per run in all, well inside the ~30 s budget of this file.
FUZZ = settings(max_examples=300, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])
DEFAULT_CAP = 1 << 20
KNOWN_ENCODINGS = frozenset({"", "identity", "none", "gzip", "x-gzip", "deflate", "zstd"})
ALL_SIGNALS = pytest.mark.parametrize("signal", list(SIGNALS.values()), ids=lambda s: s.name)


# ---------------------------------------------------------------------------------------------
# Protobuf wire format, read and written independently of upb
# ---------------------------------------------------------------------------------------------

class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


@dataclass(frozen=True)
class WireField:
    """One field of a message, as offsets into the bytes it was read from."""

    number: int
    wire_type: int
    tag_start: int
    value_start: int     # after the tag, and after the length prefix for wire type 2
    end: int
    length_start: int = -1  # wire type 2 only: where the length prefix starts


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32/int64 are written as their 64-bit two's complement
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, body: bytes) -> bytes:
    return tag(number, 2) + varint(len(body)) + body


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    for j in range(i, min(i + 10, len(data))):  # protobuf varints are at most 10 bytes
        value |= (data[j] & 0x7F) << shift
        if data[j] < 0x80:
            return value & ((1 << 64) - 1), j + 1
        shift += 7
    raise WireError(f"bad varint at {i}")


def read_field(data: bytes, i: int, end: int) -> WireField:
    """The field starting at data[i], which must end by `end`."""
    key, j = read_varint(data, i)
    number, wire_type = key >> 3, key & 7
    if not 1 <= number < 1 << 29:
        raise WireError(f"field number {number} at {i}")
    length_start = -1
    if wire_type == 0:
        after = read_varint(data, j)[1]
    elif wire_type == 1:
        after = j + 8
    elif wire_type == 5:
        after = j + 4
    elif wire_type == 2:
        length_start = j
        length, j = read_varint(data, j)
        after = j + length
    elif wire_type == 3:
        after = _skip_group(data, j, end, number)
    else:  # 4 (an end-group with no start) and the undefined 6 and 7
        raise WireError(f"wire type {wire_type} at {i}")
    if after > end:
        raise WireError(f"field at {i} runs past the end")
    return WireField(number, wire_type, i, j, after, length_start)


def wire_fields(data: bytes, start: int = 0, end: int | None = None) -> list[WireField]:
    """The fields of one message level in data[start:end] (groups are skipped whole)."""
    end = len(data) if end is None else end
    fields = []
    while start < end:
        fields.append(read_field(data, start, end))
        start = fields[-1].end
    return fields


def _skip_group(data: bytes, i: int, end: int, number: int) -> int:
    """Index after the end-group tag that closes group `number`, whose fields start at i."""
    while i < end:
        key, j = read_varint(data, i)
        if key & 7 == 4:
            if key >> 3 != number:
                raise WireError(f"group {number} closed by {key >> 3}")
            return j
        i = read_field(data, i, end).end
    raise WireError("unterminated group")


def walk_message(data: bytes, descriptor: Descriptor, depth: int = 0
                 ) -> Iterator[tuple[WireField, FieldDescriptor | None]]:
    """Every field of a message and of its (known) sub-messages, depth first; stops quietly at
    the first malformed spot, since mutations only need places to aim at."""
    try:
        fields = wire_fields(data)
    except WireError:
        return
    for f in fields:
        fd = descriptor.fields_by_number.get(f.number)
        yield f, fd
        if fd is not None and fd.type == FieldDescriptor.TYPE_MESSAGE and f.wire_type == 2 and depth < 40:
            for inner, inner_fd in walk_message(data[f.value_start:f.end], fd.message_type, depth + 1):
                shift = f.value_start
                yield (WireField(inner.number, inner.wire_type, inner.tag_start + shift, inner.value_start + shift,
                                 inner.end + shift, inner.length_start + shift if inner.length_start >= 0 else -1),
                       inner_fd)


# ---------------------------------------------------------------------------------------------
# Independent oracles: how many items an input holds, and whether a kept span is valid
# ---------------------------------------------------------------------------------------------

def item_path(signal: Signal) -> tuple[FieldDescriptor, FieldDescriptor, FieldDescriptor]:
    """request → resource entries → scope entries → items, as field descriptors."""
    resource = signal.request_type.DESCRIPTOR.fields_by_name[signal.resource_field]
    scope = resource.message_type.fields_by_name[signal.scope_field]
    return resource, scope, scope.message_type.fields_by_name[signal.items_field]


@dataclass(frozen=True)
class _DataMember:
    """One member of Metric's `data` oneof (gauge, sum, ...) and its data_points field."""

    number: int
    points_number: int
    points_keys: tuple[str, str]  # json and proto name


def _data_point_fields() -> dict[str, _DataMember]:
    """Metric's `data` members by json name and by proto name."""
    members = {}
    for fd in Metric.DESCRIPTOR.oneofs_by_name["data"].fields:
        points = fd.message_type.fields_by_name["data_points"]
        members[fd.json_name] = members[fd.name] = _DataMember(fd.number, points.number,
                                                               (points.json_name, points.name))
    return members


_METRIC_DATA = _data_point_fields()


def _data_points_wire(data: bytes, start: int, end: int) -> int:
    """Data points of one Metric's bytes. `data` is a oneof: a later member replaces an earlier
    one, the same member given again is merged into it (its data points add up)."""
    points_field = {m.number: m.points_number for m in _METRIC_DATA.values()}
    current, points = None, 0
    for f in wire_fields(data, start, end):
        if f.number in points_field and f.wire_type == 2:
            inner = sum(1 for g in wire_fields(data, f.value_start, f.end)
                        if g.number == points_field[f.number] and g.wire_type == 2)
            points = points + inner if f.number == current else inner
            current = f.number
    return points


def _data_points_json(metric: dict[str, Any]) -> int | None:
    present = [(k, v) for k, v in metric.items() if k in _METRIC_DATA and v is not None]
    if not present:
        return 0
    if len(present) > 1 or not isinstance(present[0][1], dict):
        return None  # two members (or one under both names): refused by the decoder
    keys = _METRIC_DATA[present[0][0]].points_keys
    lists = [v for k, v in present[0][1].items() if k in keys and v is not None]
    if not lists:
        return 0
    return len(lists[0]) if len(lists) == 1 and isinstance(lists[0], list) else None


# Signals whose items are counted in smaller units (the README: metrics count data points).
_UNITS_WIRE: dict[str, Callable[[bytes, int, int], int]] = {"metrics": _data_points_wire}
_UNITS_JSON: dict[str, Callable[[dict[str, Any]], int | None]] = {"metrics": _data_points_json}


def count_units_wire(signal: Signal, data: bytes) -> int | None:
    """Counted units (items, or data points) in protobuf bytes, read without upb; None when
    the bytes are malformed.

    Each occurrence of a repeated field is one element, whatever else the message holds; a
    known field number with another wire type is an unknown field to protobuf, so it is not
    counted either."""
    numbers = [fd.number for fd in item_path(signal)]
    units = _UNITS_WIRE.get(signal.name, lambda data, start, end: 1)

    def count(start: int, end: int, level: int) -> int:
        if level == len(numbers):
            return units(data, start, end)
        return sum(count(f.value_start, f.end, level + 1) for f in wire_fields(data, start, end)
                   if f.number == numbers[level] and f.wire_type == 2)

    try:
        return count(0, len(data), 0)
    except WireError:
        return None


def count_units_json(signal: Signal, data: bytes) -> int | None:
    """Counted units in an OTLP JSON document (either key spelling, null meaning absent); None
    when the document does not have the request's shape."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    units = _UNITS_JSON.get(signal.name, lambda item: 1)

    def count(value: Any, level: int) -> int | None:
        if not isinstance(value, dict):
            return None
        if level == 3:
            return units(value)
        fd = item_path(signal)[level]
        present = [value[k] for k in {fd.json_name, fd.name} if value.get(k) is not None]
        if not present:
            return 0
        if len(present) > 1 or not isinstance(present[0], list):
            return None
        total = 0
        for element in present[0]:
            n = count(element, level + 1)
            if n is None:
                return None
            total += n
        return total

    return count(doc, 0)


def items_of(signal: Signal, message: Message) -> list[Message]:
    return [item for resource in getattr(message, signal.resource_field)
            for scope in getattr(resource, signal.scope_field)
            for item in getattr(scope, signal.items_field)]


def span_problem(span: Span) -> str | None:
    """Why a backend would refuse this span (README: "some spans invalid"), or None."""
    if len(span.trace_id) != 16 or span.trace_id == bytes(16):
        return f"trace id {span.trace_id.hex()!r}"
    if len(span.span_id) != 8 or span.span_id == bytes(8):
        return f"span id {span.span_id.hex()!r}"
    if len(span.parent_span_id) not in (0, 8):
        return f"parent span id {span.parent_span_id.hex()!r}"
    return None


def log_record_problem(record: LogRecord) -> str | None:
    """Log records need no trace context, but one that is there must be well formed."""
    if record.trace_id and (len(record.trace_id) != 16 or record.trace_id == bytes(16)):
        return f"trace id {record.trace_id.hex()!r}"
    if record.span_id and (len(record.span_id) != 8 or record.span_id == bytes(8)):
        return f"span id {record.span_id.hex()!r}"
    return None


ITEM_PROBLEMS: dict[str, Callable[[Any], str | None]] = {"traces": span_problem, "logs": log_record_problem}


def units_of(signal: Signal, items: list[Message]) -> int:
    return sum(map(signal.weight, items)) if signal.weight else len(items)


# ---------------------------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What the receiver answers for a body: 200 or the PayloadError's status."""

    status: int
    kept: int = 0
    rejected: int = 0
    message: str = ""


def check_decoding(signal: Signal, kind: str, body: bytes, encoding: str, cap: int,
                   raw: bytes | None = None) -> Outcome:
    """Decompress and decode `body` as the receivers do, asserting every property above.

    `raw`, when given, is what `body` is an intact `encoding` compression of."""
    label = encoding.strip().lower()
    try:
        data = payload.decompress(body, encoding, cap)
    except payload.PayloadError as e:
        assert e.status in (400, 413, 415) and e.message, (e.status, e.message)
        assert (e.status == 415) == (label not in KNOWN_ENCODINGS), (label, e.message)
        if raw is not None:
            assert e.status == 413 and len(raw) > cap, f"intact {label} body of {len(raw)} bytes: {e.message}"
        return Outcome(e.status, message=e.message)
    assert label in KNOWN_ENCODINGS, f"unknown encoding {label!r} was accepted"
    assert len(data) <= cap
    if raw is not None:
        assert data == raw, f"{label} body did not decompress to what was compressed"
    try:
        batch, rejection = payload.decode(signal, kind, data)
    except payload.PayloadError as e:
        assert e.status == 400 and e.message, (e.status, e.message)
        return Outcome(400, message=e.message)

    items = items_of(signal, batch.message)
    assert batch.items == units_of(signal, items)
    problem = ITEM_PROBLEMS.get(signal.name)
    if problem is not None:
        problems = [p for p in map(problem, items) if p is not None]
        assert not problems, f"kept invalid {signal.item_name}: {problems[:3]}"
    held = count_units_wire(signal, data) if kind == payload.PROTOBUF else count_units_json(signal, data)
    if held is not None:
        assert batch.items + rejection.count == held, (batch.items, rejection.count, held)
    assert bool(rejection.count) == bool(rejection.message)
    response = signal.response(rejection)
    response.SerializeToString()
    otlp_json.encode(response)
    # What a file destination writes must read back as itself.
    written = otlp_json.encode(batch.message)
    assert otlp_json.encode(otlp_json.decode(signal.request_type, written)) == written
    return Outcome(200, batch.items, rejection.count)


# ---------------------------------------------------------------------------------------------
# Strategies: valid requests
# ---------------------------------------------------------------------------------------------

def _ids(size: int) -> st.SearchStrategy[bytes]:
    """Mostly valid ids, and the invalid ones a sender gets wrong: empty, zero, wrong length."""
    return st.one_of(st.binary(min_size=size, max_size=size), st.sampled_from([b"", bytes(size)]),
                     st.binary(max_size=2 * size + 1))


def _kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in pairs]))


_scalar_values = st.one_of(
    st.text(max_size=16).map(lambda v: AnyValue(string_value=v)),
    st.booleans().map(lambda v: AnyValue(bool_value=v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: AnyValue(int_value=v)),
    st.floats().map(lambda v: AnyValue(double_value=v)),
    st.binary(max_size=12).map(lambda v: AnyValue(bytes_value=v)),
    st.just(AnyValue()),
)
any_values: st.SearchStrategy[AnyValue] = st.recursive(
    _scalar_values,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
                            st.lists(st.tuples(st.text(max_size=6), inner), max_size=3).map(_kvlist)),
    max_leaves=4)
# Small on purpose: drawing is most of the cost of a case, and damage matters more than size.
attributes = st.lists(st.builds(KeyValue, key=st.text(max_size=12), value=any_values), max_size=2)
spans = st.builds(
    Span, trace_id=_ids(16), span_id=_ids(8), parent_span_id=st.just(b"") | _ids(8),
    name=st.text(max_size=16), kind=st.integers(0, 5), attributes=attributes,
    start_time_unix_nano=st.integers(0, 2**64 - 1), end_time_unix_nano=st.integers(0, 2**64 - 1),
    events=st.lists(st.builds(Span.Event, name=st.text(max_size=8), attributes=attributes), max_size=1),
    links=st.lists(st.builds(Span.Link, trace_id=_ids(16), span_id=_ids(8)), max_size=1),
    status=st.builds(Status, code=st.integers(0, 2), message=st.text(max_size=8)))


@st.composite
def trace_requests(draw: st.DrawFn) -> Message:
    """ExportTraceServiceRequests of a few resources and scopes with random spans."""
    request = TRACES.request_type()
    for _ in range(draw(st.integers(0, 2))):
        resource = request.resource_spans.add()
        resource.resource.attributes.extend(draw(attributes))
        for _ in range(draw(st.integers(0, 2))):
            scope = resource.scope_spans.add()
            scope.scope.name = draw(st.text(max_size=8))
            scope.spans.extend(draw(st.lists(spans, max_size=3)))
    return request


def _fill_item(draw: st.DrawFn, item: Message) -> None:
    """Sets the fields items of every signal share (ids, name, attributes) and, for metrics, a
    `data` member with data points."""
    fields = item.DESCRIPTOR.fields_by_name
    for name, size in (("trace_id", 16), ("span_id", 8)):
        if name in fields:
            setattr(item, name, draw(_ids(size)))
    if "name" in fields:
        item.name = draw(st.text(max_size=8))
    if "attributes" in fields:
        item.attributes.extend(draw(attributes))
    data = item.DESCRIPTOR.oneofs_by_name.get("data")
    if data is not None:
        member = pick(draw, [None, *data.fields])
        if member is not None:
            points = getattr(item, member.name).data_points
            for _ in range(draw(st.integers(0, 3))):
                points.add().attributes.extend(draw(attributes))


@st.composite
def generic_requests(draw: st.DrawFn, signal: Signal) -> Message:
    """Requests of a few resources and scopes with random items, for any signal."""
    request = signal.request_type()
    for _ in range(draw(st.integers(0, 2))):
        resource = getattr(request, signal.resource_field).add()
        resource.resource.attributes.extend(draw(attributes))
        for _ in range(draw(st.integers(0, 2))):
            scope = getattr(resource, signal.scope_field).add()
            scope.scope.name = draw(st.text(max_size=8))
            for _ in range(draw(st.integers(0, 3))):
                _fill_item(draw, getattr(scope, signal.items_field).add())
    return request


def valid_requests(signal: Signal) -> st.SearchStrategy[Message]:
    """Well-formed requests; their items may still be invalid (wrong id lengths ...)."""
    if signal is not TRACES:
        return generic_requests(signal)
    examples = st.builds(make_request, spans=st.integers(0, 6), attributes=st.integers(0, 4),
                         seed=st.integers(0, 255))
    return st.one_of(examples, trace_requests(), generic_requests(signal))


# ---------------------------------------------------------------------------------------------
# Strategies: deep AnyValue nesting (in either encoding), placed in a resource attribute
# ---------------------------------------------------------------------------------------------

_ANY = AnyValue.DESCRIPTOR.fields_by_name
_KV = KeyValue.DESCRIPTOR.fields_by_name
_LIST_VALUES = ArrayValue.DESCRIPTOR.fields_by_name["values"].number  # KeyValueList.values too
_LEAF_WIRE = tag(_ANY["int_value"].number, 0) + varint(1)
_LEAF_JSON = b'{"intValue":"1"}'


def nesting_shape(pattern: str, depth: int) -> list[str]:
    """AnyValue nesting levels, outermost first: "array", "kvlist" or alternating ("mixed")."""
    if pattern == "mixed":
        return ["array" if i % 2 else "kvlist" for i in range(depth)]
    return [pattern] * depth


def nested_anyvalue_wire(shape: Sequence[str]) -> bytes:
    """AnyValue bytes nesting `shape` around an int leaf, built outside in (linear in depth)."""
    key = length_delimited(_KV["key"].number, b"k")
    headers = []
    size = len(_LEAF_WIRE)
    for level in reversed(shape):
        if level == "array":
            element = tag(_LIST_VALUES, 2) + varint(size)
            header = tag(_ANY["array_value"].number, 2) + varint(len(element) + size) + element
        else:
            value = tag(_KV["value"].number, 2) + varint(size)
            entry = tag(_LIST_VALUES, 2) + varint(len(key) + len(value) + size) + key + value
            header = tag(_ANY["kvlist_value"].number, 2) + varint(len(entry) + size) + entry
        headers.append(header)
        size += len(header)
    return b"".join(reversed(headers)) + _LEAF_WIRE


def nested_anyvalue_json(shape: Sequence[str]) -> bytes:
    opening = {"array": b'{"arrayValue":{"values":[', "kvlist": b'{"kvlistValue":{"values":[{"key":"k","value":'}
    closing = {"array": b"]}}", "kvlist": b"}]}}"}
    return b"".join(opening[s] for s in shape) + _LEAF_JSON + b"".join(closing[s] for s in reversed(shape))


def in_resource_attribute_wire(signal: Signal, anyvalue: bytes) -> bytes:
    resource_fd = item_path(signal)[0]
    resource_field = resource_fd.message_type.fields_by_name["resource"].number
    attribute = length_delimited(_KV["key"].number, b"deep") + length_delimited(_KV["value"].number, anyvalue)
    resource = length_delimited(1, attribute)  # Resource.attributes
    return length_delimited(resource_fd.number, length_delimited(resource_field, resource))


def in_resource_attribute_json(signal: Signal, anyvalue: bytes) -> bytes:
    key = item_path(signal)[0].json_name.encode()
    return (b'{"' + key + b'":[{"resource":{"attributes":[{"key":"deep","value":' + anyvalue
            + b"}]}}]}")


_depths = st.one_of(st.integers(0, 120), st.sampled_from([31, 32, 33, 47, 48, 49, 50, 98, 99, 100, 101]),
                    st.sampled_from([500, 1000, 10_000]))
_patterns = st.sampled_from(["array", "kvlist", "mixed"])


def nested_protobuf(signal: Signal) -> st.SearchStrategy[bytes]:
    return st.builds(lambda p, d: in_resource_attribute_wire(signal, nested_anyvalue_wire(nesting_shape(p, d))),
                     _patterns, _depths)


def nested_json(signal: Signal) -> st.SearchStrategy[bytes]:
    return st.builds(lambda p, d: in_resource_attribute_json(signal, nested_anyvalue_json(nesting_shape(p, d))),
                     _patterns, _depths)


# ---------------------------------------------------------------------------------------------
# Strategies: damaged protobuf
# ---------------------------------------------------------------------------------------------

_INVALID_UTF8 = [b"\xff", b"\x80", b"\xc0", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]
_BIG_VARINTS = [0, 1, 127, 128, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1]


def pick(draw: st.DrawFn, options: Sequence[Any]) -> Any:
    """One of `options` (non-empty); cheaper than a new sampled_from strategy per draw."""
    return options[draw(st.integers(0, len(options) - 1))]


_WIRE_EDITS = ("flip", "truncate", "insert", "delete", "duplicate", "varint", "group", "length", "utf8",
               "wire_type", "splice")


@st.composite
def _mutation(draw: st.DrawFn, data: bytes, descriptor: Descriptor) -> bytes:
    """One damaging edit of protobuf bytes, aimed at field boundaries where that matters."""
    op = pick(draw, _WIRE_EDITS)
    position = draw(st.integers(0, len(data)))
    if op == "flip" and data:
        i = min(position, len(data) - 1)
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    if op == "truncate":
        return data[:position]
    if op == "insert":
        return data[:position] + draw(st.binary(min_size=1, max_size=16)) + data[position:]
    if op == "delete":
        return data[:position] + data[position + draw(st.integers(1, 16)):]
    places = list(walk_message(data, descriptor))
    boundary = pick(draw, [f.tag_start for f, _ in places] + [len(data)])
    if op == "duplicate" and places:
        # A repeated field gains elements, a singular one is given again (protobuf merges it).
        f, _ = pick(draw, places)
        return data[:f.end] + data[f.tag_start:f.end] * draw(st.integers(1, 3)) + data[f.end:]
    if op == "varint":
        number = pick(draw, [1, 2, 3, 15, 16, 2**29 - 1, draw(st.integers(1, 40))])
        value = pick(draw, [varint(pick(draw, _BIG_VARINTS)), varint(draw(st.integers(0, 2**64 - 1))),
                            b"\xff" * 10 + b"\x01", b"\xff" * 9 + b"\x7f", b"\x80"])
        return data[:boundary] + tag(number, draw(st.integers(0, 7))) + value + data[boundary:]
    if op == "group":
        n = draw(st.integers(1, 3))
        piece = pick(draw, [tag(n, 3), tag(n, 4), tag(n, 3) + tag(n + 1, 4), tag(n, 3) + tag(n, 4)])
        return data[:boundary] + piece + data[boundary:]
    length_fields = [f for f, _ in places if f.wire_type == 2]
    if op == "length" and length_fields:
        # Over-long (or short, or non-minimal) length prefix, enclosing lengths unchanged.
        f = pick(draw, length_fields)
        current = f.end - f.value_start
        new = pick(draw, [varint(current + draw(st.integers(1, 64))), varint(pick(draw, _BIG_VARINTS)),
                          varint(max(0, current - draw(st.integers(1, 8)))),
                          bytes([current & 0x7F | 0x80, (current >> 7) | 0x80, 0x00])])
        return data[:f.length_start] + new + data[f.value_start:]
    strings = [f for f, fd in places if fd is not None and fd.type == FieldDescriptor.TYPE_STRING
               and f.wire_type == 2 and f.end > f.value_start]
    if op == "utf8" and strings:
        f = pick(draw, strings)
        bad = pick(draw, [b for b in _INVALID_UTF8 if len(b) <= f.end - f.value_start])
        i = draw(st.integers(f.value_start, f.end - len(bad)))
        return data[:i] + bad + data[i + len(bad):]  # same length: only the text is wrong
    if op == "wire_type" and places:
        f, _ = pick(draw, places)
        key, tag_end = read_varint(data, f.tag_start)
        return data[:f.tag_start] + tag(key >> 3, draw(st.integers(0, 7))) + data[tag_end:]
    if op == "splice":
        return data[:boundary] + data[draw(st.integers(0, len(data))):]
    return data + draw(st.binary(min_size=1, max_size=4))


@st.composite
def mutated_protobuf(draw: st.DrawFn, signal: Signal) -> bytes:
    data = draw(valid_requests(signal)).SerializeToString()
    for _ in range(draw(st.integers(1, 4))):
        data = draw(_mutation(data, signal.request_type.DESCRIPTOR))
    return data


def protobuf_bodies(signal: Signal) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_protobuf(signal),
        valid_requests(signal).map(lambda m: m.SerializeToString()),
        nested_protobuf(signal),
        st.binary(max_size=64),
    )


# ---------------------------------------------------------------------------------------------
# Strategies: damaged OTLP JSON
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Raw:
    """JSON text written as is: literals orjson cannot write (1e400, 2**70, NaN), deep nesting."""

    text: bytes


@dataclass(frozen=True)
class DuplicateKeys:
    """An object written with the given (possibly repeated) keys, in order."""

    pairs: tuple[tuple[str, Any], ...]


def to_json(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, DuplicateKeys):
        return b"{" + b",".join(orjson.dumps(k) + b":" + to_json(v) for k, v in value.pairs) + b"}"
    if isinstance(value, dict):
        return b"{" + b",".join(orjson.dumps(k) + b":" + to_json(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(to_json(v) for v in value) + b"]"
    return orjson.dumps(value)


@cache
def _field_names() -> tuple[dict[str, str], tuple[str, ...]]:
    """json_name → proto name for every field of every OTLP message, and all the keys."""
    seen: set[str] = set()
    todo = [s.request_type.DESCRIPTOR for s in SIGNALS.values()]
    snake: dict[str, str] = {}
    while todo:
        descriptor = todo.pop()
        if descriptor.full_name in seen:
            continue
        seen.add(descriptor.full_name)
        for fd in descriptor.fields:
            snake[fd.json_name] = fd.name
            if fd.message_type is not None:
                todo.append(fd.message_type)
    return snake, tuple(sorted(set(snake) | set(snake.values())))


_NUMBER_LITERALS = [b"1e400", b"-1e400", b"1e-400", str(2**70).encode(), str(-(2**70)).encode(), b"NaN",
                    b"Infinity", b"-Infinity", b"-0", b"0.0", b"1.5", b"1E2", b"18446744073709551616",
                    b"9007199254740993", b"1e308", b"00", b"+1", b".5"]
_ID_JUNK = ["", "0" * 32, "0" * 16, "zz" * 8, "5B8EFFF798038103D269B633813FC60C", " " + "ab" * 8, "ab" * 8 + "\n",
            "１２３４５６７８", "é" * 16, "ab" * 7 + "a", "0x" + "ab" * 8]
json_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
              st.sampled_from(["NaN", "Infinity", "-1", "007", "1.0", " 1", "0x1F", "SPAN_KIND_SERVER", "AAAA",
                               "AA==", "-_-_"]),
              st.sampled_from(_NUMBER_LITERALS).map(Raw)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
_id_values = st.one_of(st.binary(max_size=20).map(bytes.hex), st.binary(min_size=8, max_size=16).map(
    lambda b: b.hex().upper()), st.sampled_from(_ID_JUNK), st.text(max_size=33), json_values)
_deep_json = st.one_of(
    st.integers(1, 20_000).map(lambda n: Raw(b"[" * n + b"]" * n)),
    st.integers(1, 20_000).map(lambda n: Raw(b'{"a":' * n + b"1" + b"}" * n)),
    st.integers(2_000, 20_000).map(lambda n: Raw(b"[" * n)),  # unclosed
    st.builds(lambda p, d: Raw(nested_anyvalue_json(nesting_shape(p, d))), _patterns, _depths))


_replacements: dict[str, st.SearchStrategy[Any]] = {
    "junk": json_values, "null": st.none(), "deep": _deep_json, "number": st.sampled_from(_NUMBER_LITERALS).map(Raw)}


_JSON_EDITS = ("junk", "null", "delete", "unknown", "snake", "both_names", "id", "number", "deep")
_ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def _slots(tree: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON tree."""
    out: list[tuple[Any, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            out.append((node, key))
            stack.append(value)
    return out


@st.composite
def _json_mutation(draw: st.DrawFn, tree: dict[str, Any]) -> None:
    """One damaging edit of a JSON tree, in place."""
    slots = _slots(tree)
    objects = [tree] + [c[k] for c, k in slots if isinstance(c[k], dict)]
    op = pick(draw, _JSON_EDITS)
    if op in ("junk", "null", "delete", "number", "deep") and slots:
        container, key = pick(draw, slots)
        if op == "delete":
            del container[key]
        else:
            container[key] = draw(_replacements[op])
        return
    obj = pick(draw, objects)
    snake, keys = _field_names()
    if op == "unknown":
        obj[draw(st.text(max_size=8)) if draw(st.booleans()) else pick(draw, keys)] = draw(json_values)
    elif op in ("snake", "both_names") and obj:
        key = pick(draw, sorted(obj))
        if key in snake and snake[key] != key:
            if op == "snake":
                obj[snake[key]] = obj.pop(key)  # proto3 JSON parsers accept the proto name too
            else:
                obj[snake[key]] = obj[key]
    elif op == "id":
        holders = [o for o in objects if _ID_KEYS & set(o)]
        if holders:
            holder = pick(draw, holders)
            holder[pick(draw, sorted(_ID_KEYS & set(holder)))] = draw(_id_values)


@st.composite
def _with_duplicate_key(draw: st.DrawFn, tree: dict[str, Any]) -> Any:
    """The tree with one object written with one of its keys twice (orjson keeps the last)."""
    objects = [(None, None)] + [(c, k) for c, k in _slots(tree) if isinstance(c[k], dict) and c[k]]
    container, key = pick(draw, objects)
    obj = tree if container is None else container[key]
    if not obj:
        return tree
    repeated = pick(draw, sorted(obj))
    pairs = list(obj.items())
    pairs.insert(draw(st.integers(0, len(pairs))), (repeated, draw(json_values)))
    duplicated = DuplicateKeys(tuple(pairs))
    if container is None:
        return duplicated
    container[key] = duplicated
    return tree


_TEXT_EDITS = ("none", "none", "truncate", "utf8", "utf8_in_string", "flip", "bom", "trailing")


@st.composite
def mutated_json(draw: st.DrawFn, signal: Signal) -> bytes:
    tree = otlp_json.to_dict(draw(valid_requests(signal)))
    for _ in range(draw(st.integers(0, 4))):
        draw(_json_mutation(tree))
    text = to_json(draw(_with_duplicate_key(tree)) if draw(st.integers(0, 3)) == 0 else tree)
    # Byte-level damage on the text: truncation, invalid UTF-8, stray bytes.
    op = pick(draw, _TEXT_EDITS)
    position = draw(st.integers(0, len(text)))
    if op == "truncate":
        text = text[:position]
    elif op == "utf8":
        text = text[:position] + pick(draw, _INVALID_UTF8) + text[position:]
    elif op == "utf8_in_string":
        quotes = [i + 1 for i, c in enumerate(text) if c == 0x22]
        if quotes:
            i = pick(draw, quotes)
            text = text[:i] + pick(draw, _INVALID_UTF8) + text[i:]
    elif op == "flip" and text:
        i = min(position, len(text) - 1)
        text = text[:i] + bytes([text[i] ^ draw(st.integers(1, 255))]) + text[i + 1:]
    elif op == "bom":
        text = b"\xef\xbb\xbf" + text
    elif op == "trailing":
        text += draw(st.sampled_from([b" ", b"\n", b"x", b"{}", b"\0"]))
    return text


def json_bodies(signal: Signal) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_json(signal),
        nested_json(signal),
        _deep_json.map(lambda raw: raw.text),
        st.sampled_from([b"", b"{}", b"null", b"[]", b'"x"', b"1", b"{", b'{"resourceSpans":null}']),
        st.binary(max_size=32),
    )


# ---------------------------------------------------------------------------------------------
# Strategies: Content-Encoding
# ---------------------------------------------------------------------------------------------

def short(data: bytes, limit: int = 1024) -> str:
    """repr of bytes, cut when long (a bomb's content is megabytes of zeros)."""
    return repr(data) if len(data) <= limit else f"{data[:limit]!r}... ({len(data)} bytes)"


class ShortRepr:
    """Hypothesis prints a failing example with its own pretty printer, which spells out every
    dataclass field in full; this makes it use the class's (shortened) repr instead."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(frozen=True, repr=False)
class Case(ShortRepr):
    """One request body as a receiver sees it."""

    signal: Signal
    kind: str            # payload.PROTOBUF or payload.JSON: how the body is labelled
    raw: bytes           # the content: what `body` decompresses to when intact
    encoding: str        # the Content-Encoding label
    body: bytes          # on the wire
    intact: bool         # `body` is exactly `raw` compressed as `encoding` says

    def check(self, cap: int = DEFAULT_CAP) -> Outcome:
        return check_decoding(self.signal, self.kind, self.body, self.encoding, cap,
                              self.raw if self.intact else None)

    def __repr__(self) -> str:
        return (f"Case({self.signal.name}, {self.kind}, encoding={self.encoding!r}, intact={self.intact}, "
                f"body={short(self.body)}, raw={short(self.raw)})")


def _compress(encoding: str, raw: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.compress(raw, mtime=0)
    if encoding == "deflate":
        return zlib.compress(raw)
    if encoding == "raw-deflate":  # RFC 9110 deflate is zlib-wrapped; senders also use raw deflate
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return c.compress(raw) + c.flush()
    if encoding == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


_LABELS = {"gzip": ["gzip", "x-gzip", "GZIP", " gzip "], "deflate": ["deflate", "Deflate"],
           "raw-deflate": ["deflate"], "zstd": ["zstd", "ZSTD"], "identity": ["identity", "", "none"]}
_BOGUS_LABELS = ["br", "compress", "gzip, zstd", "*", "gzip;q=1", "x-zstd", "identity, gzip", "\tdeflate2"]


@dataclass(frozen=True)
class Encoded:
    label: str               # Content-Encoding
    body: bytes
    content: bytes | None    # what `body` must decompress to, when that is known


_ENCODINGS = ("identity", "identity", "gzip", "deflate", "raw-deflate", "zstd", "bogus")
_DAMAGE = ("none", "none", "none", "truncate", "flip", "trailing", "concatenate", "mislabel")


@st.composite
def encoded(draw: st.DrawFn, raw: bytes) -> Encoded:
    """`raw` compressed, then maybe damaged or mislabelled."""
    method = pick(draw, _ENCODINGS)
    if method == "bogus":
        return Encoded(draw(st.sampled_from(_BOGUS_LABELS) | st.text(max_size=8)), raw, None)
    body = _compress(method, raw)
    label = pick(draw, _LABELS[method])
    damage = pick(draw, _DAMAGE)
    if damage == "none" or method == "identity":
        return Encoded(label, body, raw)
    if damage == "truncate":
        return Encoded(label, body[:draw(st.integers(0, max(0, len(body) - 1)))], None)
    if damage == "flip" and body:
        i = draw(st.integers(0, len(body) - 1))
        return Encoded(label, body[:i] + bytes([body[i] ^ draw(st.integers(1, 255))]) + body[i + 1:], None)
    if damage == "trailing":
        return Encoded(label, body + draw(st.binary(min_size=1, max_size=8)), None)
    if damage == "concatenate":
        # gzip members and zstd frames, concatenated, are one stream of both contents (RFC 1952,
        # RFC 8878); what follows a zlib stream is not defined.
        both = method in ("gzip", "zstd")
        return Encoded(label, body + _compress(method, raw), raw + raw if both else None)
    return Encoded(pick(draw, ["gzip", "deflate", "zstd"]), body, None)


@cache
def bombs() -> dict[str, bytes]:
    """8 MiB of zeros in a few kB: far past any cap these tests use."""
    zeros = bytes(8 << 20)
    return {label: _compress(label, zeros) for label in ("gzip", "deflate", "zstd")}


BOMB_SIZE = 8 << 20


@st.composite
def cases(draw: st.DrawFn, signal: Signal) -> Case:
    kind = draw(st.sampled_from([payload.PROTOBUF, payload.JSON]))
    # Now and then the other encoding's bytes under this content type.
    source = kind if draw(st.integers(0, 9)) else ({payload.PROTOBUF, payload.JSON} - {kind}).pop()
    raw = draw(protobuf_bodies(signal) if source == payload.PROTOBUF else json_bodies(signal))
    e = draw(encoded(raw))
    return Case(signal, kind, raw if e.content is None else e.content, e.label, e.body, e.content is not None)


def bomb_cases(signal: Signal) -> st.SearchStrategy[Case]:
    return st.builds(lambda kind, label: Case(signal, kind, bytes(BOMB_SIZE), label, bombs()[label], True),
                     st.sampled_from([payload.PROTOBUF, payload.JSON]), st.sampled_from(sorted(bombs())))


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------

@FUZZ
@given(content_type=st.text(max_size=40) | st.sampled_from(
    ["application/json; charset=UTF-8", "application/json;charset=\"utf8\"", "Application/X-Protobuf",
     "application/json; charset=latin-1", "application/protobuf;", "application/json;;", " application/json "]))
def test_content_type_is_a_kind_or_415(content_type: str) -> None:
    try:
        kind = payload.content_kind(content_type)
    except payload.PayloadError as e:
        assert e.status == 415 and e.message
    else:
        assert kind in (payload.PROTOBUF, payload.JSON)
        assert content_type.split(";")[0].strip().lower() in (
            "application/x-protobuf", "application/protobuf", "application/json")


@ALL_SIGNALS
@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_damaged_protobuf_is_decoded_or_refused_with_400(signal: Signal, data: st.DataObject) -> None:
    body = data.draw(protobuf_bodies(signal))
    assert check_decoding(signal, payload.PROTOBUF, body, "identity", DEFAULT_CAP).status in (200, 400)


@ALL_SIGNALS
@settings(FUZZ, max_examples=350)
@given(data=st.data())
def test_damaged_json_is_decoded_or_refused_with_400(signal: Signal, data: st.DataObject) -> None:
    body = data.draw(json_bodies(signal))
    assert check_decoding(signal, payload.JSON, body, "identity", DEFAULT_CAP).status in (200, 400)


@ALL_SIGNALS
@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_compressed_bodies_decompress_faithfully_or_are_refused(signal: Signal, data: st.DataObject) -> None:
    case = data.draw(cases(signal))
    # Caps around the decompressed size check the boundary: exactly `cap` bytes are accepted.
    cap = data.draw(st.sampled_from([DEFAULT_CAP, max(1, len(case.raw)), len(case.raw) + 1,
                                     max(1, len(case.raw) - 1)]))
    case.check(cap)


@ALL_SIGNALS
@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_bombs_stop_at_the_cap_with_413(signal: Signal, data: st.DataObject) -> None:
    case = data.draw(bomb_cases(signal))
    cap = data.draw(st.sampled_from([1, 1024, 64 << 10, 1 << 20, BOMB_SIZE - 1]))
    assert case.check(cap).status == 413


@ALL_SIGNALS
@pytest.mark.parametrize("pattern", ["array", "kvlist", "mixed"])
def test_protobuf_and_json_accept_the_same_anyvalue_nesting(signal: Signal, pattern: str) -> None:
    """upb's nesting limit decides for both encodings; shallow values pass, 10k levels do not."""
    accepted = []
    for depth in [*range(130), 1000, 10_000]:
        shape = nesting_shape(pattern, depth)
        wire = check_decoding(signal, payload.PROTOBUF, in_resource_attribute_wire(signal, nested_anyvalue_wire(shape)),
                              "identity", DEFAULT_CAP)
        json = check_decoding(signal, payload.JSON, in_resource_attribute_json(signal, nested_anyvalue_json(shape)),
                              "identity", DEFAULT_CAP)
        assert wire.status == json.status, (depth, wire, json)
        if wire.status == 200:
            accepted.append(depth)
    assert accepted == list(range(accepted[-1] + 1)) and 20 <= accepted[-1] < 1000, accepted


_DEEP_DOCUMENTS: dict[str, Callable[[int], bytes]] = {
    "unknown_arrays": lambda n: b'{"x":' + b"[" * n + b"]" * n + b"}",
    "unknown_objects": lambda n: b'{"x":' * n + b"1" + b"}" * n,
    "unclosed": lambda n: b'{"resourceSpans":' + b"[" * n,
    "anyvalue_arrays": lambda n: in_resource_attribute_json(TRACES, nested_anyvalue_json(nesting_shape("array", n))),
    "anyvalue_kvlists": lambda n: in_resource_attribute_json(TRACES, nested_anyvalue_json(nesting_shape("kvlist", n))),
}


@pytest.mark.parametrize("shape", sorted(_DEEP_DOCUMENTS))
@pytest.mark.parametrize("levels", [100, 1000, 10_000])
def test_deeply_nested_json_is_a_json_decode_error_not_recursion_error(shape: str, levels: int) -> None:
    """Past orjson's 1024 levels nothing parses; below it, unknown fields are ignored however
    deep, and 100 levels of AnyValues are past the protobuf nesting limit."""
    document = _DEEP_DOCUMENTS[shape](levels)
    if shape.startswith("unknown") and levels < 1024:
        otlp_json.decode(TRACES.request_type, document)
    else:
        with pytest.raises(otlp_json.JsonDecodeError):
            otlp_json.decode(TRACES.request_type, document)


def _call_with_stack_used(headroom: int, fn: Callable[[], T]) -> T:
    """Calls fn with only about `headroom` Python frames left before the recursion limit."""
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]

    def recurse(level: int) -> T:
        return fn() if level <= 0 else recurse(level - 1)

    return recurse(sys.getrecursionlimit() - depth - headroom)


def _json_outcome(document: bytes) -> str:
    try:
        otlp_json.decode(TRACES.request_type, document)
    except otlp_json.JsonDecodeError:
        return "refused"
    return "decoded"


@pytest.mark.parametrize("headroom", [30, 60, 120, 250])
def test_nesting_within_orjsons_limit_never_exhausts_a_short_stack(headroom: int) -> None:
    """The generated decoder recurses once per level; when the caller left little stack the
    careful decoder takes over and answers JsonDecodeError, never RecursionError. 30 frames is
    far less than the receivers leave (their asyncio stack is a few dozen frames deep)."""
    _json_outcome(_DEEP_DOCUMENTS["anyvalue_arrays"](1))  # first-use imports and code generation
    for shape in ("anyvalue_arrays", "anyvalue_kvlists", "unknown_objects"):
        for levels in (20, 45, 200, 300):
            document = _DEEP_DOCUMENTS[shape](levels)
            outcome = _call_with_stack_used(headroom, partial(_json_outcome, document))
            if headroom >= 250 and levels == 20:  # a plentiful stack decodes what protobuf accepts
                assert outcome == "decoded", (shape, levels)


_TEN_MB = 10 * 1024 * 1024


def _fill(prefix: bytes, unit: bytes, suffix: bytes) -> bytes:
    return prefix + unit * ((_TEN_MB - len(prefix) - len(suffix)) // len(unit)) + suffix


_HOSTILE_DOCUMENTS: dict[str, Callable[[], bytes]] = {
    "10M_open_brackets": lambda: b"[" * _TEN_MB,
    "10M_nested_objects": lambda: _fill(b"", b'{"a":', b""),
    "deep_anyvalues": lambda: _fill(b'{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":',
                                    b'{"arrayValue":{"values":[', b""),
    "duplicate_keys": lambda: _fill(b"{", b'"resourceSpans":[],', b'"x":1}'),
    "escaped_string": lambda: _fill(b'{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":'
                                    b'{"stringValue":"', b"\\u00e9", b'"}}]}}]}'),
}


@pytest.mark.parametrize("name", sorted(_HOSTILE_DOCUMENTS))
def test_a_10mb_hostile_json_document_is_decoded_in_bounded_memory(name: str) -> None:
    """orjson reserves yyjson's whole value pool up front, 12 bytes per input byte (its
    `buffer_capacity_to_allocate`: len / 2 values of 16 bytes, times 1.5), whatever the
    document holds. A refused document, or one holding a single large value, must cost little
    beyond that: the bound is 14 bytes per input byte (measured: 12.0 to 12.3)."""
    document = _HOSTILE_DOCUMENTS[name]()
    tracemalloc.start()
    try:
        try:
            otlp_json.decode(TRACES.request_type, document)
        except otlp_json.JsonDecodeError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 14 * len(document), f"peak {peak / 1e6:.0f} MB for {len(document) / 1e6:.0f} MB"
