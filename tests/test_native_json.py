"""The native OTLP JSON transcoder (otlp_router._native, issue #17) against the frozen behaviour
of the former pure-Python codec and against independent oracles.

* Golden equivalence: every case of tests/golden/json_codec (made by
  tests/golden/make_json_codec.py with the Python codec before the port) is reproduced
  exactly: the same message for what decoded, the same error message for what did not, the
  same encode() output.
* Differential (hypothesis): random OTLP requests of every signal, written as JSON by
  google.protobuf.json_format (another implementation) and re-spelled in the ways OTLP JSON
  allows, decode through the core to the same message as upb holds; encode agrees with
  json_format.MessageToDict; the core's syntax check agrees with orjson's; floats and
  strings are written exactly as orjson.dumps writes them; error messages show values with
  Python's repr.
"""

from __future__ import annotations

import base64
import json
import math
import random
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from otlp_router import _native
from otlp_router.model import otlp_json
from proto_tests.test_otlp_json import requests as otlp_requests

GOLDEN = Path(__file__).parent / "golden" / "json_codec"
TYPES: dict[str, type[Message]] = {t.DESCRIPTOR.full_name: t for t in (
    ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceResponse,
    Span, AnyValue, LogRecord, ResourceSpans, m.Exemplar, m.Sum, m.HistogramDataPoint, m.NumberDataPoint,
    m.ExponentialHistogramDataPoint.Buckets)}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wire(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


# ---------------------------------------------------------------------------------------------
# Golden equivalence
# ---------------------------------------------------------------------------------------------

def _golden_cases(name: str) -> list[dict]:
    return [json.loads(line) for line in (GOLDEN / f"{name}.jsonl").read_text().splitlines()]


def _check_case(case: dict) -> str | None:
    """None when the core reproduces the case, else what differs."""
    t = TYPES[case["type"]]
    if case["kind"] == "encode":
        got = _native.proto_to_json(case["type"], base64.b64decode(case["wire"])).decode()
        message = t.FromString(base64.b64decode(case["wire"]))
        if got != case["json"] or otlp_json.encode(message).decode() != case["json"]:
            return f"encode: {got[:200]!r} != {case['json'][:200]!r}"
        return None
    body = base64.b64decode(case["body"])
    try:
        raw = _native.json_to_proto(case["type"], body)
        decoded = otlp_json.decode(t, body)
    except _native.JsonDecodeError as e:
        return None if case.get("error") == str(e) else f"error {str(e)[:200]!r} != {case.get('error', '')[:200]!r}"
    except otlp_json.JsonDecodeError as e:
        return f"decode() raised {e} where the core did not"
    if "error" in case:
        return f"decoded where the Python codec said {case['error'][:200]!r}"
    if wire(t.FromString(raw)) != base64.b64decode(case["wire"]) or wire(decoded) != base64.b64decode(case["wire"]):
        return "a different message"
    if otlp_json.encode(decoded).decode() != case["json"]:
        return "encode() of the decoded message differs"
    return None


@pytest.mark.parametrize("name", ["explicit", "valid", "encode", "damaged"])
def test_the_core_reproduces_every_golden_case(name: str) -> None:
    cases = _golden_cases(name)
    assert len(cases) > 100
    failures = [(c["source"], problem) for c in cases if (problem := _check_case(c)) is not None]
    assert not failures, f"{len(failures)} of {len(cases)}: {failures[:5]}"


def test_golden_errors_surface_through_decode_as_json_decode_error() -> None:
    cases = [c for c in _golden_cases("explicit") if "error" in c]
    assert len(cases) > 100
    for case in cases:
        with pytest.raises(otlp_json.JsonDecodeError) as info:
            otlp_json.decode(TYPES[case["type"]], base64.b64decode(case["body"]))
        assert str(info.value) == case["error"]


# ---------------------------------------------------------------------------------------------
# Differential: json_format as the independent writer and reader
# ---------------------------------------------------------------------------------------------

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any, upper: bool) -> Any:
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex().upper() if upper else base64.b64decode(v).hex())
                if k in _ID_KEYS else _hex_ids(v, upper) for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v, upper) for v in node]
    return node


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


_INT64_KEYS = {"timeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "observedTimeUnixNano", "intValue", "asInt",
               "count", "zeroCount"}


def _respell(node: Any, rnd: random.Random, key: str | None = None) -> Any:
    """The same document in the other spellings OTLP JSON decoders accept."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if rnd.random() < 0.1:
                out["futureField"] = rnd.choice([None, 1, "x", {"a": [1, {"b": None}]}, [None, 2.5]])
            if rnd.random() < 0.05:
                out["unset" + k] = None
            out[_snake(k) if rnd.random() < 0.3 else k] = _respell(v, rnd, k)
        return out
    if isinstance(node, list):
        return [_respell(v, rnd, key) for v in node]
    if key in _INT64_KEYS and isinstance(node, str) and abs(int(node)) < 2**53 and rnd.random() < 0.5:
        return int(node)
    if key == "bytesValue" and isinstance(node, str) and rnd.random() < 0.6:
        return node.rstrip("=") if rnd.random() < 0.5 else node.replace("+", "-").replace("/", "_")
    if isinstance(node, int) and not isinstance(node, bool) and rnd.random() < 0.2:
        return str(node) if key not in ("kind", "code", "severityNumber", "aggregationTemporality") else node
    return node


@FAST
@given(otlp_requests, st.randoms(use_true_random=False))
def test_json_format_documents_respelled_decode_to_the_same_message(request: Message, rnd: random.Random) -> None:
    """json_format writes enum names and base64 ids; OTLP wants hex ids (any case)."""
    doc = _hex_ids(json.loads(json_format.MessageToJson(request)), upper=rnd.random() < 0.5)
    body = json.dumps(_respell(doc, rnd), indent=rnd.choice([None, 1])).encode()
    raw = _native.json_to_proto(request.DESCRIPTOR.full_name, body)
    assert wire(type(request).FromString(raw)) == wire(request)


@FAST
@given(otlp_requests)
def test_encode_matches_json_format_and_round_trips_through_the_core(request: Message) -> None:
    name = request.DESCRIPTOR.full_name
    written = _native.proto_to_json(name, request.SerializeToString())
    expected = _hex_ids(json_format.MessageToDict(request, use_integers_for_enums=True), upper=False)
    assert orjson.loads(written) == expected
    again = _native.json_to_proto(name, written)
    assert wire(type(request).FromString(again)) == wire(request)
    assert _native.proto_to_json(name, type(request).FromString(again).SerializeToString()) == written


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3), max_leaves=10)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_texts.map(lambda d: json.dumps(d).encode()), st.binary(max_size=40)), st.data())
def test_the_core_refuses_exactly_what_orjson_refuses(body: bytes, data: st.DataObject) -> None:
    if body and data.draw(st.booleans()):  # damage it
        i = data.draw(st.integers(0, len(body) - 1))
        body = body[:i] + data.draw(st.sampled_from([b"", b"\xff", b",", b"]", b"\\", b'"', b"-", b"1e999", b"\x01",
                                                     b"\\ud800", b" ", b"{"])) + body[i + 1:]
    try:
        orjson.loads(body)
        orjson_ok = True
    except orjson.JSONDecodeError:
        orjson_ok = False
    try:
        _native.json_to_proto("opentelemetry.proto.common.v1.AnyValue", body)
        core_ok = True
    except _native.JsonSyntaxError:
        core_ok = False
    except _native.JsonDecodeError:
        core_ok = True  # JSON, but not an AnyValue
    assert core_ok == orjson_ok, body


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e16, 1e15, 1e-5, 1e-6, 0.0001, 5e-324,
                                                                           -0.0, 1.7976931348623157e308, 1e21]))
def test_doubles_are_written_exactly_as_orjson_writes_them(x: float) -> None:
    written = _native.proto_to_json("opentelemetry.proto.common.v1.AnyValue", AnyValue(double_value=x).SerializeToString())
    assert written == orjson.dumps({"doubleValue": x})


def test_doubles_at_ties_and_powers_of_two_are_written_as_orjson_and_repr_write_them() -> None:
    # Two shortest forms equally near (562949953421312.25), or one of them not reading back because
    # the gap below a power of two is half the gap above (2**-24): the cases a shortest-digits
    # algorithm can get wrong, swept exhaustively, plus random bit patterns from a fixed seed.
    rng = random.Random(20261202)
    xs = [math.ldexp(1.0, e) for e in range(-1074, 1024)] + [562949953421312.25, 2.0**-24]
    xs += [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20000)]
    for x in (x for x in xs if math.isfinite(x)):
        written = _native.proto_to_json("opentelemetry.proto.common.v1.AnyValue", AnyValue(double_value=x).SerializeToString())
        assert written == orjson.dumps({"doubleValue": x}), x
        body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": x}]}]}]})
        with pytest.raises(otlp_json.JsonDecodeError) as info:
            otlp_json.decode(ExportTraceServiceRequest, body)
        assert str(info.value).endswith(f"got {_show(x)}"), x


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_strings_are_written_exactly_as_orjson_writes_them(s: str) -> None:
    written = _native.proto_to_json("opentelemetry.proto.common.v1.AnyValue", AnyValue(string_value=s).SerializeToString())
    assert written == orjson.dumps({"stringValue": s})


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=90) | st.floats(allow_nan=False, allow_infinity=False))
def test_error_messages_show_values_with_python_repr(value: Any) -> None:
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": value, "droppedLinksCount": value}]}]}]})
    where = "resourceSpans[0].scopeSpans[0].spans[0]"
    if isinstance(value, str):
        if len(value) % 2 == 0 and value.isascii() and all(c in "0123456789abcdefABCDEF" for c in value):
            expected = f"{where}.droppedLinksCount: expected an integer (number or decimal string), got {_show(value)}"
            if value.isdigit() or value == "":
                return  # a valid id and maybe a valid count (or one out of range): not this test's case
        else:
            expected = f"{where}.traceId: expected a trace id in hex (32 hex digits), got {_show(value)}"
    else:
        expected = f"{where}.traceId: expected a hex string, got {_show(value)}"
    with pytest.raises(otlp_json.JsonDecodeError) as info:
        otlp_json.decode(ExportTraceServiceRequest, body)
    assert str(info.value) == expected


def test_non_finite_and_negative_zero_doubles() -> None:
    for x, text in ((math.nan, b'"NaN"'), (math.inf, b'"Infinity"'), (-math.inf, b'"-Infinity"'), (-0.0, b"-0.0")):
        assert otlp_json.encode(AnyValue(double_value=x)) == b'{"doubleValue":' + text + b"}"


def test_unknown_message_types_and_bad_wire_bytes_are_refused() -> None:
    with pytest.raises(TypeError):
        _native.json_to_proto("google.rpc.Status", b"{}")
    with pytest.raises(ValueError):
        _native.proto_to_json("traces", b"\x0a\x05ab")
    assert _native.json_to_proto("traces", b"{}") == b""
    assert _native.proto_to_json("logs", b"") == b"{}"
