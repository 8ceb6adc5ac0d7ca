"""Who may send: API keys on both transports, key names in routing and S3 paths, TLS and mTLS, limits."""

from __future__ import annotations

import http.client
import ssl

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.certs import make_pki
from tests.support import base_config, make_request, read_otlp_json_lines, wait_for

PB = {"Content-Type": "application/x-protobuf"}
PROD_KEY = "prod-key-0123456789abcdef"
DEV_KEY = "dev-key-0123456789abcdef00"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _auth_config(tmp_path, **extra):
    config = base_config(tmp_path, **extra)
    config["receivers"]["otlp"]["auth"] = {"api_keys": [{"name": "prod-app", "key": PROD_KEY},
                                                        {"name": "dev-app", "key": DEV_KEY}]}
    return config


def _export_with(exporter) -> SpanExportResult:
    provider = TracerProvider()
    results = []

    class Recorder(SimpleSpanProcessor):
        def on_end(self, span):
            results.append(self.span_exporter.export((span,)))

    provider.add_span_processor(Recorder(exporter))
    with provider.get_tracer("t").start_as_current_span("s"):
        pass
    provider.shutdown()
    return results[0]


def test_sdk_exporters_with_the_key_are_accepted_and_without_refused(start_router, tmp_path) -> None:
    router = start_router(_auth_config(tmp_path))
    http_url = f"http://127.0.0.1:{router.http_port}/v1/traces"
    grpc_at = f"127.0.0.1:{router.grpc_port}"
    assert _export_with(HttpExporter(endpoint=http_url, headers={"Authorization": f"Bearer {PROD_KEY}"})) \
        == SpanExportResult.SUCCESS
    assert _export_with(GrpcExporter(endpoint=grpc_at, insecure=True, headers={"x-api-key": DEV_KEY})) \
        == SpanExportResult.SUCCESS
    assert _export_with(HttpExporter(endpoint=http_url)) == SpanExportResult.FAILURE
    assert _export_with(GrpcExporter(endpoint=grpc_at, insecure=True, headers={"authorization": "Bearer nope"},
                                     timeout=2)) == SpanExportResult.FAILURE


def test_wrong_or_missing_keys_get_401_and_unauthenticated_without_detail(start_router, tmp_path) -> None:
    router = start_router(_auth_config(tmp_path))
    body = make_request().SerializeToString()
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"x-api-key": PROD_KEY[:-1]},
                    {"Authorization": f"Basic {PROD_KEY}"}):
        status, resp_headers, _ = router.post("/v1/traces", body, {**PB, **headers})
        assert status == 401 and resp_headers["www-authenticate"] == "Bearer"
    with grpc.insecure_channel(f"127.0.0.1:{router.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(EXPORT)(body, timeout=5, metadata=(("authorization", "Bearer nope"),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and err.value.details() == "unauthenticated"


def test_the_key_name_routes_and_restricts(start_router, tmp_path) -> None:
    config = _auth_config(tmp_path, destinations={
        "prod": {"type": "file", "dir": str(tmp_path / "prod"), "format": "otlp_json"},
        "dev": {"type": "file", "dir": str(tmp_path / "dev"), "format": "otlp_json"}},
        routes=[{"name": "prod", "match": {"api_key": "prod-app"}, "destinations": ["prod"]},
                {"name": "dev", "default": True, "destinations": ["dev"]}])
    config["receivers"]["otlp"]["auth"]["api_keys"][1]["routes"] = ["dev"]
    router = start_router(config)
    assert router.post("/v1/traces", make_request(seed=1).SerializeToString(),
                       {**PB, "Authorization": f"Bearer {PROD_KEY}"})[0] == 200
    assert router.post("/v1/traces", make_request(seed=2).SerializeToString(), {**PB, "x-api-key": DEV_KEY})[0] == 200
    router.stop()
    assert len(read_otlp_json_lines(tmp_path / "prod")) == 1 and len(read_otlp_json_lines(tmp_path / "dev")) == 1


def test_api_key_name_fills_the_s3_path(start_router, tmp_path, moto) -> None:
    bucket = moto.bucket("keyed")
    config = _auth_config(tmp_path, destinations={"s3": moto.destination(
        bucket, format="json", trace_idle="200ms", path_template="traces/{apiKeyName}/{date}")})
    router = start_router(config)
    assert router.post("/v1/traces", make_request().SerializeToString(),
                       {**PB, "Authorization": f"Bearer {PROD_KEY}"})[0] == 200
    keys = wait_for(lambda: list(moto.objects(bucket)), timeout=10)
    assert keys and keys[0].startswith("traces/prod-app/")


def test_per_key_request_rate_is_limited_with_retry_after(start_router, tmp_path) -> None:
    config = _auth_config(tmp_path)
    config["receivers"]["otlp"]["auth"]["api_keys"][0]["max_requests_per_second"] = 2
    router = start_router(config)
    statuses = [router.post("/v1/traces", make_request().SerializeToString(),
                            {**PB, "x-api-key": PROD_KEY}) for _ in range(5)]
    limited = [s for s in statuses if s[0] == 429]
    assert limited and int(limited[0][1]["retry-after"]) >= 1
    assert router.post("/v1/traces", make_request().SerializeToString(), {**PB, "x-api-key": DEV_KEY})[0] == 200


def test_tls_and_mutual_tls_on_both_receivers(start_router, tmp_path) -> None:
    pki = make_pki(tmp_path / "pki")
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), "client_ca_file": str(pki.ca)}
    config = base_config(tmp_path)
    config["receivers"]["otlp"]["http"]["tls"] = tls
    config["receivers"]["otlp"]["grpc"]["tls"] = tls
    router = start_router(config)
    body = make_request().SerializeToString()

    def post(context: ssl.SSLContext) -> int:
        conn = http.client.HTTPSConnection("127.0.0.1", router.http_port, context=context, timeout=10)
        try:
            conn.request("POST", "/v1/traces", body=body, headers=PB)
            return conn.getresponse().status
        finally:
            conn.close()
    with_cert = ssl.create_default_context(cafile=str(pki.ca))
    with_cert.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    assert post(with_cert) == 200
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        post(ssl.create_default_context(cafile=str(pki.ca)))  # no client certificate: refused

    credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes(), pki.client_key.read_bytes(),
                                               pki.client_cert.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{router.grpc_port}", credentials) as channel:
        assert channel.unary_unary(EXPORT)(body, timeout=10) is not None
    anonymous = grpc.ssl_channel_credentials(pki.ca.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{router.grpc_port}", anonymous) as channel:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(EXPORT)(body, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_limits_truncate_and_count(start_router, tmp_path) -> None:
    config = base_config(tmp_path)
    config["receivers"]["otlp"]["limits"] = {"max_spans_per_request": 50, "max_attributes_per_span": 2,
                                             "max_attribute_value_length": 5}
    router = start_router(config)
    status, _, body = router.post("/v1/traces", make_request(spans=60).SerializeToString(), PB)
    assert status == 400
    assert router.post("/v1/traces", make_request(spans=2, attributes=4).SerializeToString(), PB)[0] == 200
    router.stop()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from otlp_router.model import otlp_json
    (line,) = read_otlp_json_lines(tmp_path / "out")
    span = otlp_json.decode(ExportTraceServiceRequest, line).resource_spans[0].scope_spans[0].spans[0]
    assert len(span.attributes) == 2 and span.dropped_attributes_count == 2
    assert span.attributes[0].value.string_value == "value"


def test_secrets_never_reach_the_logs(start_router, tmp_path) -> None:
    config = _auth_config(tmp_path, destinations={"down": {
        "type": "otlp_http", "endpoint": "http://127.0.0.1:9/v1/traces",
        "headers": {"Authorization": "Bearer xaat-very-secret-token"}, "retry": {"initial_interval": "50ms"}}})
    router = start_router(config)
    assert router.post("/v1/traces", make_request().SerializeToString(),
                       {**PB, "Authorization": f"Bearer {PROD_KEY}"})[0] == 200
    assert wait_for(lambda: "state failing" in router.stderr)
    router.stop()
    assert "xaat-very-secret-token" not in router.stderr and PROD_KEY not in router.stderr
