"""Freeze the OTLP JSON codec's behaviour as golden files (issue #17, before the native port).

Run once with the pure-Python codec in place (it was, when the committed corpus was made):

    python tests/golden/make_json_codec.py          # writes tests/golden/json_codec/*.jsonl

Every case is one JSON line:

* ``decode`` cases: ``type`` (full message name), ``body`` (base64 of the request body, which
  may be invalid JSON or UTF-8), then either ``wire`` (base64 of
  ``decode(...).SerializeToString(deterministic=True)``) and ``json`` (``encode`` of that
  message, as text), or ``error`` (the exact `JsonDecodeError` message);
* ``encode`` cases: ``type``, ``wire`` (a message's serialization) and ``json`` (what
  ``encode`` writes for it).

Sources: the codec's hypothesis strategies (proto_tests/test_otlp_json.py: random requests of
every signal, their json_format renderings with upper-case hex ids, mutated and random
documents), the damaged-document strategies of proto_tests/test_fuzz_decoders.py (duplicate
keys, invalid UTF-8, truncation, deep nesting, ...), re-spelled variants of valid documents
(enum names, snake_case keys, numbers for 64-bit strings, unpadded and URL-safe base64, null
members, unknown fields), and every error case spelled out in the codec's tests.  Generation
is seeded (hypothesis ``derandomize`` plus ``random.Random``), so a re-run gives the same
files with the same hypothesis version.
"""

from __future__ import annotations

import base64
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: E402
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest, ExportTraceServiceResponse)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue  # noqa: E402
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord  # noqa: E402
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span  # noqa: E402

from otlp_router.model import otlp_json  # noqa: E402
from otlp_router.model.signals import SIGNALS  # noqa: E402
from proto_tests import test_fuzz_decoders as fuzz  # noqa: E402
from proto_tests import test_otlp_json as codec_tests  # noqa: E402

OUT = Path(__file__).resolve().parent / "json_codec"
TYPES: dict[str, type[Message]] = {t.DESCRIPTOR.full_name: t for t in (
    ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceResponse,
    Span, AnyValue, LogRecord, ResourceSpans, m.Exemplar, m.Sum, m.HistogramDataPoint, m.NumberDataPoint,
    m.ExponentialHistogramDataPoint.Buckets)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decode_case(request_type: type[Message], body: bytes | str, source: str) -> dict:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    case: dict[str, Any] = {"kind": "decode", "source": source, "type": request_type.DESCRIPTOR.full_name,
                            "body": b64(raw)}
    try:
        message = otlp_json.decode(request_type, raw)
    except otlp_json.JsonDecodeError as e:
        case["error"] = str(e)
        return case
    case["wire"] = b64(message.SerializeToString(deterministic=True))
    case["json"] = otlp_json.encode(message).decode()
    return case


def encode_case(message: Message, source: str) -> dict:
    return {"kind": "encode", "source": source, "type": message.DESCRIPTOR.full_name,
            "wire": b64(message.SerializeToString(deterministic=True)), "json": otlp_json.encode(message).decode()}


def examples(strategy: st.SearchStrategy, n: int) -> list[Any]:
    """n examples of strategy, deterministically."""
    found: list[Any] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x: Any) -> None:
        found.append(x)

    collect()
    return found


# ------------------------------------------------------------------------------------------
# Re-spelling a valid document: the same message written the other ways decode accepts
# ------------------------------------------------------------------------------------------

def _enum_names() -> dict[str, dict[int, str]]:
    names: dict[str, dict[int, str]] = {}
    for t in TYPES.values():
        todo = [t.DESCRIPTOR]
        seen = set()
        while todo:
            d = todo.pop()
            if d.full_name in seen:
                continue
            seen.add(d.full_name)
            for f in d.fields:
                if f.enum_type is not None:
                    names[f.json_name] = {v.number: v.name for v in f.enum_type.values}
                if f.message_type is not None:
                    todo.append(f.message_type)
    return names


ENUM_NAMES = _enum_names()
SNAKE = {f.json_name: f.name for t in TYPES.values() for f in t.DESCRIPTOR.fields}


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


def respell(node: Any, rnd: random.Random, key: str | None = None) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if rnd.random() < 0.1:
                out["unknownField" + str(rnd.randrange(3))] = rnd.choice([None, 1, "x", {"a": [1]}, [None]])
            if rnd.random() < 0.05:
                out[k + "Null"] = None
            new_key = _snake(k) if rnd.random() < 0.3 else k
            out[new_key] = respell(v, rnd, k)
        return out
    if isinstance(node, list):
        return [respell(v, rnd, key) for v in node]
    if key in ("traceId", "spanId", "parentSpanId") and isinstance(node, str) and rnd.random() < 0.5:
        return node.upper()
    if key in ENUM_NAMES and isinstance(node, int) and node in ENUM_NAMES[key] and rnd.random() < 0.5:
        return ENUM_NAMES[key][node]
    if isinstance(node, str) and node.lstrip("-").isdigit() and rnd.random() < 0.4:
        n = int(node)
        return n if abs(n) < 2**53 or rnd.random() < 0.5 else node
    if key == "bytesValue" and isinstance(node, str) and rnd.random() < 0.6:
        return node.rstrip("=") if rnd.random() < 0.5 else node.replace("+", "-").replace("/", "_")
    if isinstance(node, int) and not isinstance(node, bool) and rnd.random() < 0.2:
        return str(node) if rnd.random() < 0.5 else float(node)
    if isinstance(node, float) and node == int(node) and abs(node) < 1e15 and rnd.random() < 0.3:
        return str(node)
    return node


# ------------------------------------------------------------------------------------------
# Error cases spelled out in the codec's tests
# ------------------------------------------------------------------------------------------

def _params(fn: Callable) -> list[tuple]:
    return [tuple(a) for mark in getattr(fn, "pytestmark", []) if mark.name == "parametrize"
            for a in mark.args[1]]


def explicit_cases() -> list[dict]:
    T, L, M = ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest
    span_doc, SPAN = codec_tests.span_doc, "explicit"
    cases = []
    for doc, _expected in _params(codec_tests.test_errors_name_the_path_and_the_problem):
        cases.append(decode_case(T, orjson.dumps(doc), SPAN))
    for doc, _expected in _params(codec_tests.test_metric_errors_name_the_path_and_the_problem):
        cases.append(decode_case(M, orjson.dumps(doc), SPAN))
    for text in codec_tests._NOT_HEX:
        for field in ("traceId", "spanId", "parentSpanId"):
            cases.append(decode_case(T, orjson.dumps(span_doc(**{field: text})), SPAN))
        cases.append(decode_case(T, orjson.dumps(span_doc(links=[{"traceId": "ab" * 16, "spanId": text}])), SPAN))
        cases.append(decode_case(T, orjson.dumps(span_doc(links=[{"traceId": text, "spanId": "ab" * 8}])), SPAN))
    for text in ("0102", "0102030405060708090a0b0c0d0e0f1011", "", "AbCdEf0123456789"):
        cases.append(decode_case(T, orjson.dumps(span_doc(traceId=text, spanId=text, parentSpanId=text)), SPAN))
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}, "spanId": "--"}]}]}]}
    cases.append(decode_case(L, orjson.dumps(logs), SPAN))
    point = {"asInt": "1", "exemplars": [{"asInt": "1", "traceId": "g" * 32}]}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [point]}}]}]}]}
    cases.append(decode_case(M, orjson.dumps(metrics), SPAN))
    cases.append(decode_case(T, orjson.dumps(span_doc(traceId=12)), SPAN))
    for kind in ("SPAN_KIND_CLIENT", "SPAN_KIND_SPACESHIP", 42, -7, "3", 3.0, 2**31, -(2**31) - 1, True, None, [1]):
        cases.append(decode_case(T, orjson.dumps(span_doc(kind=kind, status={"code": "STATUS_CODE_ERROR"})), SPAN))
    attr = lambda v: orjson.dumps(span_doc(attributes=[{"key": "k", "value": v}]))  # noqa: E731
    for text in ("+//+AA==", "+//+AA", "-__-AA==", "-__-AA", "+//+AA=", "+//+A", "+/_-AA==", "!!!!", "AA==AA==",
                 "QR==", "QR", "QUI=", "QUI", "", "====", "A===", "AAAA==", "AA=", 5, None):
        cases.append(decode_case(T, attr({"bytesValue": text}), SPAN))
    for text in ("NaN", "Infinity", "-Infinity", "1.5e3", "nan", "inf", "1.5.2", "0x10", "1e400", "-1e400", "-0",
                 " 1", "1e5", "00.5", 1e308, -0.0, 3, 2**64 - 1, True, [], {}):
        cases.append(decode_case(T, attr({"doubleValue": text}), SPAN))
    for value in (1.5, 1e20, -1.0, 2**53, 2**53 + 2, float(2**53), float(2**53 + 2), "007", "-0", "-", "+1",
                  "1" * 21, "0" * 30 + "1", "-" + "1" * 20, "1" * 20, "١٢", "9223372036854775808",
                  "-9223372036854775809", -(2**63), 2**63 - 1, True):
        cases.append(decode_case(T, attr({"intValue": value}), SPAN))
        cases.append(decode_case(T, orjson.dumps(span_doc(startTimeUnixNano=value if not isinstance(value, int)
                                                              or abs(value) < 2**64 else str(value))), SPAN))
        cases.append(decode_case(T, orjson.dumps(span_doc(droppedAttributesCount=value)), SPAN))
    for value in (3.4028235e38, 3.4028236e38, 1e39, -1e39, "1e39", "Infinity", 1e-50, "NaN"):
        point = {"asDouble": 1.0, "quantileValues": []}
        exp = {"positive": {"offset": 1}, "zeroThreshold": value, "sum": value}
        doc = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"exponentialHistogram": {"dataPoints": [exp]}}, {"gauge": {"dataPoints": [point]}}]}]}]}
        cases.append(decode_case(M, orjson.dumps(doc), SPAN))
    # top level, invalid JSON and UTF-8, str bodies
    for body in (b"[]", b'"x"', b"3", b"null", b'{"resourceSpans": [}', b"", b'{"resourceSpans": [{"schemaUrl": "\xff"}]}',
                 b'{"a": NaN}', b"\xef\xbb\xbf{}", b"{} x", b'"\\ud800"', b"[" * 1025 + b"]" * 1025,
                 b'{"x":' + b"[" * 1024 + b"]" * 1024 + b"}", b'{"x":' + b"[" * 1023 + b"]" * 1023 + b"}",
                 b'{"resourceSpans": 1e400}', b'{"resourceSpans": [{"schemaUrl": "a\\u0000\\ud83d\\ude00\\n"}]}',
                 b' \t\r\n{"resourceSpans":[]}\n', b'{"resourceSpans": [], "resourceSpans": null}',
                 b'{"resourceSpans": [{"schemaUrl": 1}], "resourceSpans": []}',
                 b'{"resource_spans": [], "resourceSpans": []}', b'{"resourceSpans": [{"schemaUrl": "\x01"}]}',
                 b'{"resourceSpans": [{"schemaUrl": "\\x"}]}', b'{"resourceSpans": [1,]}', b'{"a":-}', b'{"a":01}'):
        cases.append(decode_case(T, body, "explicit-bytes"))
    # nesting at and past the limit
    def nested_array(levels: int) -> dict:
        value: dict = {"stringValue": "leaf"}
        for _ in range(levels - 1):
            value = {"arrayValue": {"values": [value]}}
        return value
    deepest = (otlp_json.MAX_NESTING + 2) // 2
    for levels in (deepest, deepest + 1):
        cases.append(decode_case(AnyValue, orjson.dumps(nested_array(levels)), "nesting"))
    for levels in (48, 49):
        cases.append(decode_case(T, attr(nested_array(levels)), "nesting"))
    for levels in (32, 33, 34):
        value: dict = {"stringValue": "leaf"}
        for _ in range(levels):
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        cases.append(decode_case(AnyValue, orjson.dumps(value), "nesting"))
    cases.append(decode_case(AnyValue, b'{"arrayValue":{"values":[' * 5000 + b"{}" + b"]}}" * 5000, "nesting"))
    # other message types, as decode accepts any OTLP message
    for t, body in ((Span, '{"name": "x", "spanId": "0102030405060708"}'), (AnyValue, b'{"intValue": "-3"}'),
                    (LogRecord, '{"traceId": "FF" , "spanId": ""}'), (m.Exemplar, '{"traceId": "' + "AB" * 16 + '"}'),
                    (m.Sum, '{"aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA"}'),
                    (m.HistogramDataPoint, '{"count": 3, "bucketCounts": ["1", 2, "18446744073709551615"]}'),
                    (m.HistogramDataPoint, '{"sum": 0, "min": 0.0, "explicitBounds": ["Infinity", 1, null]}'),
                    (m.NumberDataPoint, '{"asInt": "-5"}'), (m.NumberDataPoint, '{"asInt": "-5", "asDouble": 1}'),
                    (m.ExponentialHistogramDataPoint.Buckets, '{"offset": -3, "bucketCounts": ["300", 1]}'),
                    (ResourceSpans, '{"resource": {}, "scopeSpans": [{"scope": {}}]}'),
                    (ExportTraceServiceResponse, '{"partialSuccess": {"rejectedSpans": "3", "errorMessage": "x"}}'),
                    (AnyValue, '{"stringValue": null, "intValue": "5"}'), (AnyValue, "{}"), (AnyValue, "[]")):
        cases.append(decode_case(t, body, "types"))
    for name in ("trace_example.json", "logs_example.json", "metrics_example.json"):
        t = {"trace": T, "logs": L, "metrics": M}[name.split("_")[0]]
        cases.append(decode_case(t, (codec_tests.DATA / name).read_bytes(), "examples"))
    return cases


def main() -> None:
    rnd = random.Random(17)
    OUT.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[dict]] = {"explicit": explicit_cases()}

    valid, encodes = [], []
    for request in examples(codec_tests.requests, 240):
        t = type(request)
        encodes.append(encode_case(request, "strategy"))
        body = otlp_json.encode(request)
        valid.append(decode_case(t, body, "strategy"))
        valid.append(decode_case(t, orjson.dumps(respell(orjson.loads(body), rnd)), "respelled"))
        if rnd.random() < 0.25:
            data = json.loads(json_format.MessageToJson(request, indent=2))

            def hex_ids(node: Any) -> Any:
                if isinstance(node, dict):
                    return {k: base64.b64decode(v).hex().upper() if k in ("traceId", "spanId", "parentSpanId")
                            else hex_ids(v) for k, v in node.items()}
                if isinstance(node, list):
                    return [hex_ids(v) for v in node]
                return node
            valid.append(decode_case(t, json.dumps(hex_ids(data), indent=1), "json_format"))
    files["valid"] = valid
    files["encode"] = encodes

    mutated = []
    samples = codec_tests.SAMPLES

    @st.composite
    def mutated_docs(draw: st.DrawFn) -> tuple[type[Message], bytes]:
        request_type, body = draw(st.sampled_from(samples))
        return request_type, codec_tests.dumps(codec_tests.mutate(draw(st.data()), orjson.loads(body)))

    for t, body in examples(mutated_docs(), 150):
        mutated.append(decode_case(t, body, "mutated"))
    random_docs = st.tuples(st.sampled_from([t for t, _ in samples]), codec_tests.json_values
                            | st.dictionaries(st.sampled_from(codec_tests.OTLP_KEYS), codec_tests.json_values,
                                              max_size=4))
    for t, doc in examples(random_docs, 60):
        mutated.append(decode_case(t, codec_tests.dumps(doc), "random"))
    for name, signal in SIGNALS.items():
        for body in examples(fuzz.json_bodies(signal), 70):
            mutated.append(decode_case(signal.request_type, body, f"fuzz-{name}"))
    files["damaged"] = mutated

    total = 0
    for name, cases in files.items():
        path = OUT / f"{name}.jsonl"
        path.write_text("".join(json.dumps(c, ensure_ascii=True) + "\n" for c in cases))
        total += path.stat().st_size
        errors = sum("error" in c for c in cases)
        print(f"{path.relative_to(ROOT)}: {len(cases)} cases ({errors} errors), {path.stat().st_size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
