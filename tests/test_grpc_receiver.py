"""OTLP/gRPC receiver over a real socket: raw calls for every status it answers."""

from __future__ import annotations

import socket

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.support import RouterProcess, base_config, make_request

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _call(router: RouterProcess, body: bytes, compression: grpc.Compression = grpc.Compression.NoCompression):
    with grpc.insecure_channel(f"127.0.0.1:{router.grpc_port}") as channel:
        export = channel.unary_unary(EXPORT)
        return export.with_call(body, timeout=10, compression=compression)


def test_export_is_accepted(shared_router: RouterProcess) -> None:
    body, call = _call(shared_router, make_request().SerializeToString())
    assert call.code() == grpc.StatusCode.OK
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()


def test_gzip_compressed_export_is_accepted(shared_router: RouterProcess) -> None:
    body, call = _call(shared_router, make_request().SerializeToString(), grpc.Compression.Gzip)
    assert call.code() == grpc.StatusCode.OK


def test_empty_request_is_a_success(shared_router: RouterProcess) -> None:
    body, _ = _call(shared_router, b"")
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()


def test_undecodable_request_is_invalid_argument_not_unknown(shared_router: RouterProcess) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _call(shared_router, b"\xff\xff\xff\xff")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid protobuf" in err.value.details()


def test_invalid_span_ids_give_partial_success(shared_router: RouterProcess) -> None:
    request = make_request(spans=4)
    request.resource_spans[0].scope_spans[0].spans[2].span_id = b""
    body, _ = _call(shared_router, request.SerializeToString())
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert partial.rejected_spans == 1 and "span_id" in partial.error_message


def test_message_past_the_size_limit_is_resource_exhausted(start_router, tmp_path) -> None:
    config = base_config(tmp_path)
    config["receivers"]["otlp"]["grpc"]["max_recv_msg_size"] = "32KiB"
    router = start_router(config)
    with pytest.raises(grpc.RpcError) as err:
        _call(router, make_request(spans=300, attributes=5).SerializeToString())
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_full_spool_is_resource_exhausted_with_retry_info(start_router, tmp_path) -> None:
    config = base_config(tmp_path, destinations={"out": {"type": "file", "dir": "/proc/forbidden",
                                                          "format": "otlp_json"}})
    config["spool"]["max_bytes"] = "4KiB"
    config["shutdown_timeout"] = "1s"
    router = start_router(config)
    body = make_request(spans=10).SerializeToString()
    errors = []
    for _ in range(5):
        try:
            _call(router, body)
        except grpc.RpcError as e:
            errors.append(e)
    assert errors and errors[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(errors[0].trailing_metadata())["grpc-status-details-bin"]
    st = status_pb2.Status.FromString(details)
    info = error_details_pb2.RetryInfo()
    assert st.code == code_pb2.RESOURCE_EXHAUSTED and st.details[0].Unpack(info)
    assert info.retry_delay.ToNanoseconds() > 0


def test_a_taken_port_fails_start_up_clearly(tmp_path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        for protocol in ("grpc", "http"):
            config = base_config(tmp_path)
            config["receivers"]["otlp"][protocol]["endpoint"] = f"127.0.0.1:{port}"
            with pytest.raises(RuntimeError) as err:
                RouterProcess(config, tmp_path)
            assert "already in use" in str(err.value), protocol
    finally:
        busy.close()
