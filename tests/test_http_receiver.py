"""OTLP/HTTP receiver over a real socket: content types, encodings, status codes."""

from __future__ import annotations

import gzip
import zlib

import orjson
import zstandard
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.support import RouterProcess, base_config, make_request, read_otlp_json_lines

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


def _json_body(spans: int = 2) -> bytes:
    from otlp_router.model import otlp_json
    return otlp_json.encode(make_request(spans))


def test_protobuf_request_is_accepted_with_a_protobuf_response(shared_router: RouterProcess) -> None:
    status, headers, body = shared_router.post("/v1/traces", make_request().SerializeToString(), PB)
    assert status == 200
    assert headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()


def test_json_request_is_answered_in_json(shared_router: RouterProcess) -> None:
    status, headers, body = shared_router.post("/v1/traces", _json_body(), JS)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert orjson.loads(body) == {}


def test_charset_parameter_is_tolerated(shared_router: RouterProcess) -> None:
    status, _, _ = shared_router.post("/v1/traces", _json_body(), {"Content-Type": "application/json; charset=utf-8"})
    assert status == 200


def test_gzip_deflate_and_zstd_bodies_are_accepted(shared_router: RouterProcess) -> None:
    raw = make_request().SerializeToString()
    for encoding, body in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw)),
                           ("zstd", zstandard.ZstdCompressor().compress(raw))):
        status, _, _ = shared_router.post("/v1/traces", body, {**PB, "Content-Encoding": encoding})
        assert status == 200, encoding


def test_gzip_json_is_accepted(shared_router: RouterProcess) -> None:
    status, _, _ = shared_router.post("/v1/traces", gzip.compress(_json_body()), {**JS, "Content-Encoding": "gzip"})
    assert status == 200


def test_empty_request_is_a_success(shared_router: RouterProcess) -> None:
    assert shared_router.post("/v1/traces", b"", PB)[0] == 200
    status, _, body = shared_router.post("/v1/traces", b"{}", JS)
    assert status == 200 and orjson.loads(body) == {}


def test_invalid_span_ids_give_partial_success_and_keep_the_rest(shared_router: RouterProcess) -> None:
    request = make_request(spans=3)
    request.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x01" * 8
    status, _, body = shared_router.post("/v1/traces", request.SerializeToString(), PB)
    assert status == 200
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 1
    assert "trace_id must be 16 bytes" in response.partial_success.error_message


def test_partial_success_in_json(shared_router: RouterProcess) -> None:
    doc = orjson.loads(_json_body(spans=2))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "abcd"  # hex of the wrong length: partial success
    status, _, body = shared_router.post("/v1/traces", orjson.dumps(doc), JS)
    assert status == 200
    partial = orjson.loads(body)["partialSuccess"]
    assert partial["rejectedSpans"] in ("1", 1) and "span_id" in partial["errorMessage"]


def _status(body: bytes) -> status_pb2.Status:
    return status_pb2.Status.FromString(body)


def test_undecodable_protobuf_is_400_with_a_status_naming_the_problem(shared_router: RouterProcess) -> None:
    status, headers, body = shared_router.post("/v1/traces", b"\xff\xff\xff\xff", PB)
    assert status == 400
    assert headers["content-type"] == "application/x-protobuf"
    st = _status(body)
    assert st.code == code_pb2.INVALID_ARGUMENT and "invalid protobuf" in st.message


def test_invalid_json_is_400_in_json(shared_router: RouterProcess) -> None:
    status, headers, body = shared_router.post("/v1/traces", b'{"resourceSpans": [', JS)
    assert status == 400 and headers["content-type"] == "application/json"
    doc = orjson.loads(body)
    assert doc["code"] == code_pb2.INVALID_ARGUMENT and "JSON" in doc["message"]


def test_json_of_the_wrong_shape_is_400(shared_router: RouterProcess) -> None:
    status, _, body = shared_router.post("/v1/traces", b'{"resourceSpans": {"no": "list"}}', JS)
    assert status == 400 and "resourceSpans" in orjson.loads(body)["message"]


def test_truncated_gzip_is_400(shared_router: RouterProcess) -> None:
    body = gzip.compress(make_request().SerializeToString())[:-12]
    status, _, resp = shared_router.post("/v1/traces", body, {**PB, "Content-Encoding": "gzip"})
    assert status == 400 and "gzip" in _status(resp).message


def test_wrong_method_is_405(shared_router: RouterProcess) -> None:
    status, headers, _ = shared_router.post("/v1/traces", b"", PB, method="GET")
    assert status == 405 and headers["allow"] == "POST"


def test_unknown_content_type_is_415(shared_router: RouterProcess) -> None:
    status, _, body = shared_router.post("/v1/traces", b"hello", {"Content-Type": "text/plain"})
    assert status == 415 and "text/plain" in orjson.loads(body)["message"]


def test_unknown_content_encoding_is_415(shared_router: RouterProcess) -> None:
    status, _, body = shared_router.post("/v1/traces", b"x", {**PB, "Content-Encoding": "br"})
    assert status == 415 and "br" in _status(body).message


def test_unknown_path_is_404(shared_router: RouterProcess) -> None:
    assert shared_router.post("/v1/nothing", b"", PB)[0] == 404


def test_body_past_the_cap_is_413(start_router, tmp_path) -> None:
    config = base_config(tmp_path)
    config["receivers"]["otlp"]["http"]["max_request_body_size"] = "64KiB"
    router = start_router(config)
    status, _, body = router.post("/v1/traces", make_request(spans=400, attributes=5).SerializeToString(), PB)
    assert status == 413 and "limit" in _status(body).message


def test_gzip_bomb_is_413_without_inflating_it(start_router, tmp_path) -> None:
    config = base_config(tmp_path)
    config["receivers"]["otlp"]["http"]["max_request_body_size"] = "1MiB"
    router = start_router(config)
    bomb = gzip.compress(b"\x00" * (512 * 1024 * 1024), compresslevel=9)  # 512 MiB → ~500 KiB
    status, _, body = router.post("/v1/traces", bomb, {**PB, "Content-Encoding": "gzip"})
    assert status == 413 and "limit" in _status(body).message
    assert router.proc.poll() is None


def test_full_spool_is_429_with_retry_after(start_router, tmp_path) -> None:
    # A destination that never succeeds keeps everything in its spool.
    config = base_config(tmp_path, destinations={"out": {"type": "file", "dir": "/proc/forbidden",
                                                          "format": "otlp_json"}})
    config["spool"]["max_bytes"] = "4KiB"
    config["shutdown_timeout"] = "1s"
    router = start_router(config)
    body = make_request(spans=10).SerializeToString()
    statuses = [router.post("/v1/traces", body, PB) for _ in range(5)]
    refused = [s for s in statuses if s[0] == 429]
    assert statuses[0][0] == 200 and refused
    status, headers, resp = refused[0]
    assert int(headers["retry-after"]) >= 1
    st = _status(resp)
    assert st.code == code_pb2.RESOURCE_EXHAUSTED and "spool is full" in st.message
    info = error_details_pb2.RetryInfo()
    assert st.details[0].Unpack(info) and info.retry_delay.ToNanoseconds() > 0


def test_accepted_spans_reach_the_file_destination_intact(start_router, tmp_path) -> None:
    from otlp_router.model import otlp_json
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    router = start_router()
    sent = [make_request(spans=5, seed=1), make_request(spans=4, seed=2)]
    assert router.post("/v1/traces", sent[0].SerializeToString(), PB)[0] == 200
    assert router.post("/v1/traces", gzip.compress(otlp_json.encode(sent[1])), {**JS, "Content-Encoding": "gzip"})[0] == 200
    router.stop()
    lines = read_otlp_json_lines(tmp_path / "out")
    received = [otlp_json.decode(ExportTraceServiceRequest, line) for line in lines]
    assert received == sent
