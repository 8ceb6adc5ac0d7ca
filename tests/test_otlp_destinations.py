"""Forwarding to OTLP backends: real downstream servers on 127.0.0.1, a router in between."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml

from tests.downstream import GrpcSink, HttpSink, Reply
from tests.support import ROOT, base_config, make_request, read_otlp_json_lines, wait_for

PB = {"Content-Type": "application/x-protobuf"}
FAST_RETRY = {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed": "30s"}


@pytest.fixture
def http_sink():
    sink = HttpSink()
    yield sink
    sink.close()


@pytest.fixture
def grpc_sink():
    sink = GrpcSink()
    yield sink
    sink.close()


def _forwarding(tmp_path: Path, destination: dict) -> dict:
    destination = {"retry": FAST_RETRY, "batch": {"flush_interval": "20ms"}, **destination}
    return base_config(tmp_path, destinations={"down": destination})


def _send(router, spans: int = 5, seed: int = 1):
    request = make_request(spans=spans, seed=seed)
    assert router.post("/v1/traces", request.SerializeToString(), PB)[0] == 200
    return request


def _same_spans(sent, received) -> None:
    want = {s.span_id: s for rs in sent.resource_spans for ss in rs.scope_spans for s in ss.spans}
    got = {s.span_id: s for s in received}
    assert set(got) == set(want)
    for span_id, span in want.items():
        assert got[span_id] == span  # ids, parents, attributes, events, status: all of it


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_http_forwarding_keeps_everything_with_gzip_and_headers(start_router, tmp_path, http_sink, encoding) -> None:
    router = start_router(_forwarding(tmp_path, {
        "type": "otlp_http", "endpoint": http_sink.url, "encoding": encoding, "compression": "gzip",
        "headers": {"Authorization": "Bearer xaat-123", "X-Axiom-Dataset": "traces"}}))
    sent = _send(router)
    assert wait_for(lambda: len(http_sink.spans()) == 5)
    _same_spans(sent, http_sink.spans())
    arrival = http_sink.arrivals[0]
    assert arrival.headers["authorization"] == "Bearer xaat-123" and arrival.headers["x-axiom-dataset"] == "traces"
    assert arrival.headers["content-encoding"] == "gzip"
    assert arrival.headers["content-type"] == ("application/json" if encoding == "json" else "application/x-protobuf")
    resource = arrival.request.resource_spans[0]
    assert resource.resource == sent.resource_spans[0].resource
    assert resource.scope_spans[0].scope == sent.resource_spans[0].scope_spans[0].scope


def test_grpc_forwarding_keeps_everything_with_metadata(start_router, tmp_path, grpc_sink) -> None:
    router = start_router(_forwarding(tmp_path, {
        "type": "otlp_grpc", "endpoint": f"127.0.0.1:{grpc_sink.port}", "insecure": True,
        "headers": {"X-Team": "search"}}))
    sent = _send(router)
    assert wait_for(lambda: len(grpc_sink.spans()) == 5)
    _same_spans(sent, grpc_sink.spans())
    assert grpc_sink.arrivals[0].headers["x-team"] == "search"


def test_router_to_router_to_file(start_router, tmp_path) -> None:
    last = start_router(base_config(tmp_path / "b"), workdir=tmp_path / "b")
    first = start_router(_forwarding(tmp_path / "a", {
        "type": "otlp_http", "endpoint": f"http://127.0.0.1:{last.http_port}/v1/traces"}), workdir=tmp_path / "a")
    sent = _send(first, spans=7)
    second = _send(first, spans=3, seed=2)
    assert wait_for(lambda: sum(1 for _ in read_otlp_json_lines(tmp_path / "b" / "out")) >= 1, timeout=5)
    first.stop()
    last.stop()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from otlp_router.model import otlp_json
    received = [s for line in read_otlp_json_lines(tmp_path / "b" / "out")
                for rs in otlp_json.decode(ExportTraceServiceRequest, line).resource_spans
                for ss in rs.scope_spans for s in ss.spans]
    merged = ExportTraceServiceRequest()
    merged.MergeFrom(sent)
    merged.MergeFrom(second)
    _same_spans(merged, received)


def test_503_with_retry_after_is_retried_after_the_delay(start_router, tmp_path, http_sink) -> None:
    http_sink.script = [Reply(503, {"Retry-After": "1"}), Reply(200)]
    router = start_router(_forwarding(tmp_path, {"type": "otlp_http", "endpoint": http_sink.url}))
    _send(router)
    assert wait_for(lambda: len(http_sink.spans()) == 5)
    first, second = http_sink.arrivals[:2]
    assert second.at - first.at >= 0.95  # Retry-After honoured, not the 50 ms backoff


def test_429_is_retried(start_router, tmp_path, http_sink) -> None:
    http_sink.script = [Reply(429), Reply(429), Reply(200)]
    router = start_router(_forwarding(tmp_path, {"type": "otlp_http", "endpoint": http_sink.url}))
    sent = _send(router)
    assert wait_for(lambda: len(http_sink.spans()) == 5)
    assert len(http_sink.arrivals) == 3
    _same_spans(sent, http_sink.spans())


def test_400_is_counted_and_not_retried(start_router, tmp_path, http_sink) -> None:
    http_sink.script = [Reply(400, body=b"dataset not found")]
    router = start_router(_forwarding(tmp_path, {"type": "otlp_http", "endpoint": http_sink.url}))
    _send(router)
    assert wait_for(lambda: "rejected 5 traces" in router.stderr)
    assert "HTTP 400: dataset not found" in router.stderr
    _send(router, seed=2)  # the next batch goes through: the destination was not stuck
    assert wait_for(lambda: len(http_sink.spans()) == 5)
    assert len(http_sink.arrivals) == 2


def test_a_refusal_without_a_body_says_so(start_router, tmp_path, http_sink) -> None:
    http_sink.script = [Reply(400, body=b"")]
    router = start_router(_forwarding(tmp_path, {"type": "otlp_http", "endpoint": http_sink.url}))
    _send(router)
    assert wait_for(lambda: "rejected 5 traces" in router.stderr)
    assert "HTTP 400 (no message)" in router.stderr and "HTTP 400: " not in router.stderr


def test_grpc_unavailable_with_retry_info_waits_the_hinted_delay(start_router, tmp_path, grpc_sink) -> None:
    grpc_sink.script = [Reply(grpc.StatusCode.UNAVAILABLE, retry_info=1.0, message="busy")]
    router = start_router(_forwarding(tmp_path, {
        "type": "otlp_grpc", "endpoint": f"127.0.0.1:{grpc_sink.port}", "insecure": True}))
    _send(router)
    assert wait_for(lambda: len(grpc_sink.spans()) == 5)
    first, second = grpc_sink.arrivals[:2]
    assert second.at - first.at >= 0.95


def test_grpc_invalid_argument_is_not_retried(start_router, tmp_path, grpc_sink) -> None:
    grpc_sink.script = [Reply(grpc.StatusCode.INVALID_ARGUMENT, message="bad span")]
    router = start_router(_forwarding(tmp_path, {
        "type": "otlp_grpc", "endpoint": f"127.0.0.1:{grpc_sink.port}", "insecure": True}))
    _send(router)
    assert wait_for(lambda: "INVALID_ARGUMENT: bad span" in router.stderr)
    assert len(grpc_sink.arrivals) == 1


def test_resource_exhausted_without_retry_info_is_final(start_router, tmp_path, grpc_sink) -> None:
    grpc_sink.script = [Reply(grpc.StatusCode.RESOURCE_EXHAUSTED, message="quota")]
    router = start_router(_forwarding(tmp_path, {
        "type": "otlp_grpc", "endpoint": f"127.0.0.1:{grpc_sink.port}", "insecure": True}))
    _send(router)
    assert wait_for(lambda: "rejected 5 traces" in router.stderr)


def test_connection_refused_then_the_downstream_comes_up(start_router, tmp_path) -> None:
    probe = HttpSink()
    port = probe.port
    probe.close()
    router = start_router(_forwarding(tmp_path, {"type": "otlp_http", "endpoint": f"http://127.0.0.1:{port}/v1/traces"}))
    sent = _send(router)
    assert wait_for(lambda: "cannot reach" in router.stderr)
    sink = HttpSink(port)
    try:
        assert wait_for(lambda: len(sink.spans()) == 5, timeout=10)
        _same_spans(sent, sink.spans())
    finally:
        sink.close()


def test_a_server_slower_than_the_timeout_is_retried(start_router, tmp_path, http_sink) -> None:
    http_sink.script = [Reply(200, delay=1.0)]
    router = start_router(_forwarding(tmp_path, {"type": "otlp_http", "endpoint": http_sink.url, "timeout": "300ms"}))
    _send(router)
    assert wait_for(lambda: "within 0.3s" in router.stderr)
    assert wait_for(lambda: len(http_sink.arrivals) >= 2 and len(http_sink.span_ids()) == 5)


def test_partial_success_is_logged_not_retried(start_router, tmp_path, http_sink) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    body = ExportTraceServiceResponse(partial_success={"rejected_spans": 2, "error_message": "too old"})
    http_sink.script = [Reply(200, body=body.SerializeToString())]
    router = start_router(_forwarding(tmp_path, {"type": "otlp_http", "endpoint": http_sink.url}))
    _send(router)
    assert wait_for(lambda: "backend rejected 2 spans: too old" in router.stderr)
    assert len(http_sink.arrivals) == 1


def _check(tmp_path: Path, destinations: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path, destinations=destinations)))
    return subprocess.run([sys.executable, "-m", "otlp_router", "check", "-c", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)


def test_check_reports_each_destination_and_the_exit_code(tmp_path, http_sink, grpc_sink) -> None:
    ok = _check(tmp_path, {"web": {"type": "otlp_http", "endpoint": http_sink.url},
                           "rpc": {"type": "otlp_grpc", "endpoint": f"127.0.0.1:{grpc_sink.port}", "insecure": True}})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "destination web (otlp_http): ok: HTTP 200" in ok.stdout
    assert "destination rpc (otlp_grpc): ok: gRPC OK" in ok.stdout

    probe = HttpSink()
    dead = probe.url
    probe.close()
    http_sink.script = [Reply(401, body=b"bad token")]
    bad = _check(tmp_path, {"web": {"type": "otlp_http", "endpoint": http_sink.url},
                            "gone": {"type": "otlp_http", "endpoint": dead, "timeout": "2s"}})
    assert bad.returncode == 1
    assert "destination web (otlp_http): FAILED: HTTP 401" in bad.stdout and "bad token" in bad.stdout
    assert "destination gone (otlp_http): FAILED: cannot reach" in bad.stdout
