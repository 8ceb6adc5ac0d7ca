"""OTLP JSON ids that are not hex, over a real router: refused with 400 naming the JSON path,
as the Collector's pdata refuses them, never stored with the id silently removed."""

from __future__ import annotations

import copy
from typing import Any, Callable

import orjson
import pytest
from google.rpc import status_pb2

from otlp_router.model import otlp_json
from tests.support import RouterProcess, make_request, read_otlp_json_lines, wait_for

JS = {"Content-Type": "application/json"}
SPAN = "resourceSpans[0].scopeSpans[0].spans[0]"


def _spans() -> dict[str, Any]:
    doc = orjson.loads(otlp_json.encode(make_request(spans=1)))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["links"] = [{"traceId": "ab" * 16, "spanId": "cd" * 8}]
    return doc


def _logs() -> dict[str, Any]:
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "hello"}, "traceId": "ab" * 16, "spanId": "cd" * 8}]}]}]}


def _metrics() -> dict[str, Any]:
    point = {"asInt": "1", "timeUnixNano": "1", "exemplars": [{"asInt": "1", "traceId": "ab" * 16,
                                                              "spanId": "cd" * 8}]}
    return {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [point]}}]}]}]}


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node: Any = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return doc


_SPAN = ("resourceSpans", 0, "scopeSpans", 0, "spans", 0)
_RECORD = ("resourceLogs", 0, "scopeLogs", 0, "logRecords", 0)
_EXEMPLAR = ("resourceMetrics", 0, "scopeMetrics", 0, "metrics", 0, "gauge", "dataPoints", 0, "exemplars", 0)

CASES: list[tuple[str, Callable[[], dict[str, Any]], tuple[Any, ...], str]] = [
    ("/v1/traces", _spans, (*_SPAN, "spanId"), f"{SPAN}.spanId"),
    ("/v1/traces", _spans, (*_SPAN, "traceId"), f"{SPAN}.traceId"),
    ("/v1/traces", _spans, (*_SPAN, "parentSpanId"), f"{SPAN}.parentSpanId"),
    ("/v1/traces", _spans, (*_SPAN, "links", 0, "spanId"), f"{SPAN}.links[0].spanId"),
    ("/v1/traces", _spans, (*_SPAN, "links", 0, "traceId"), f"{SPAN}.links[0].traceId"),
    ("/v1/logs", _logs, (*_RECORD, "spanId"), "resourceLogs[0].scopeLogs[0].logRecords[0].spanId"),
    ("/v1/logs", _logs, (*_RECORD, "traceId"), "resourceLogs[0].scopeLogs[0].logRecords[0].traceId"),
    ("/v1/metrics", _metrics, (*_EXEMPLAR, "spanId"),
     "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].exemplars[0].spanId"),
    ("/v1/metrics", _metrics, (*_EXEMPLAR, "traceId"),
     "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].exemplars[0].traceId"),
]


@pytest.mark.parametrize("bad", ["--", "xyz", "abcdefabcdefabcZ"])
@pytest.mark.parametrize(("endpoint", "doc", "path", "json_path"), CASES,
                         ids=[c[3].replace("resource", "").split(".", 3)[-1] for c in CASES])
def test_an_id_that_is_not_hex_is_refused_with_400_naming_its_path(
        shared_router: RouterProcess, endpoint: str, doc: Callable[[], dict[str, Any]], path: tuple[Any, ...],
        json_path: str, bad: str) -> None:
    assert shared_router.post(endpoint, orjson.dumps(doc()), JS)[0] == 200  # the request is fine otherwise
    status, headers, body = shared_router.post(endpoint, orjson.dumps(_set(doc(), path, bad)), JS)
    assert status == 400, body
    message = (orjson.loads(body)["message"] if "json" in headers["content-type"]
               else status_pb2.Status.FromString(body).message)
    assert f"{json_path}: expected a" in message and repr(bad) in message


def test_nothing_of_a_refused_request_is_stored(start_router, tmp_path) -> None:
    router = start_router()
    bad = _set(_spans(), (*_SPAN, "links", 0, "spanId"), "--")
    assert router.post("/v1/traces", orjson.dumps(bad), JS)[0] == 400
    good = _spans()
    assert router.post("/v1/traces", orjson.dumps(good), JS)[0] == 200
    lines = wait_for(lambda: read_otlp_json_lines(tmp_path / "out"), timeout=15)
    stored = [orjson.loads(line) for line in lines]
    links = [s["links"] for d in stored for rs in d["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert links == [[{"traceId": "ab" * 16, "spanId": "cd" * 8}]]  # only the good one, its link whole
