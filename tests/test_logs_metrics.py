"""Logs and metrics beside traces: the OTel SDK's log and metric exporters, routing by signal,
privacy for GenAI event records, and the error answers of /v1/logs and /v1/metrics."""

from __future__ import annotations

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (ExportLogsServiceRequest,
                                                                     ExportLogsServiceResponse)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from otlp_router.model import otlp_json
from otlp_router.model.signals import LOGS, METRICS
from tests.downstream import GrpcSink, HttpSink
from tests.support import base_config, make_request, read_otlp_json_lines, wait_for

PB = {"Content-Type": "application/x-protobuf"}
SECRET = "SECRET-user-prompt: what is my account balance?"


def _emit_logs(exporter, n: int = 5) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": "chat-app"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("chat-app.logs")
    for i in range(n):
        logger.emit(severity_number=SeverityNumber.INFO, body=f"handled request {i}", attributes={"i": i})
    logger.emit(event_name="gen_ai.user.message", severity_number=SeverityNumber.INFO,
                body={"content": SECRET, "role": "user"},
                attributes={"gen_ai.system": "openai", "gen_ai.usage.input_tokens": 12})
    provider.shutdown()


def _emit_metrics(exporter) -> int:
    """Emits a counter with three attribute sets and a histogram with two: five data points."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider(resource=Resource.create({"service.name": "chat-app"}), metric_readers=[reader])
    meter = provider.get_meter("chat-app.metrics")
    tokens = meter.create_counter("gen_ai.client.token.usage.total")
    for model in ("gpt-4o", "claude", "gemini"):
        tokens.add(10, {"gen_ai.request.model": model})
    latency = meter.create_histogram("gen_ai.client.operation.duration")
    for model in ("gpt-4o", "claude"):
        latency.record(0.5, {"gen_ai.request.model": model})
    provider.shutdown()
    return 5


def _file_items(directory, signal) -> list:
    return [item for line in read_otlp_json_lines(directory, signal.name)
            for rs in getattr(otlp_json.decode(signal.request_type, line), signal.resource_field)
            for ss in getattr(rs, signal.scope_field) for item in getattr(ss, signal.items_field)]


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_logs_and_metrics_reach_a_downstream_and_files_with_nothing_lost(start_router, tmp_path,
                                                                            transport) -> None:
    sink = GrpcSink() if transport == "grpc" else HttpSink()
    down = {"type": "otlp_grpc", "endpoint": f"127.0.0.1:{sink.port}", "insecure": True} if transport == "grpc" \
        else {"type": "otlp_http", "endpoint": f"http://127.0.0.1:{sink.port}"}
    down["batch"] = {"flush_interval": "10ms"}
    config = base_config(tmp_path, destinations={
        "down": down, "files": {"type": "file", "dir": str(tmp_path / "out"), "format": "otlp_json"}})
    router = start_router(config)
    try:
        if transport == "grpc":
            _emit_logs(GrpcLogExporter(endpoint=f"127.0.0.1:{router.grpc_port}", insecure=True))
            points = _emit_metrics(GrpcMetricExporter(endpoint=f"127.0.0.1:{router.grpc_port}", insecure=True))
        else:
            base = f"http://127.0.0.1:{router.http_port}"
            _emit_logs(HttpLogExporter(endpoint=f"{base}/v1/logs"))
            points = _emit_metrics(HttpMetricExporter(endpoint=f"{base}/v1/metrics"))
        assert wait_for(lambda: len(sink.items(LOGS)) == 6 and len(sink.items(METRICS)) == 2)
        router.stop()
        logs = _file_items(tmp_path / "out", LOGS)
        metrics = _file_items(tmp_path / "out", METRICS)
        assert len(logs) == 6
        assert sum(len(METRICS.attribute_lists(m)) for m in metrics) == points
        assert {m.name for m in sink.items(METRICS)} == {"gen_ai.client.token.usage.total",
                                                         "gen_ai.client.operation.duration"}
        assert sum(len(METRICS.attribute_lists(m)) for m in sink.items(METRICS)) == points
        event = next(r for r in logs if r.event_name == "gen_ai.user.message")
        assert SECRET in event.body.SerializeToString().decode("utf-8", "replace")
    finally:
        sink.close()


def test_genai_event_records_lose_their_content_under_privacy(start_router, tmp_path) -> None:
    config = base_config(tmp_path, destinations={
        "private": {"type": "file", "dir": str(tmp_path / "private"), "format": "otlp_json", "privacy": True}})
    router = start_router(config)
    _emit_logs(HttpLogExporter(endpoint=f"http://127.0.0.1:{router.http_port}/v1/logs"))
    router.stop()
    raw = b"".join(read_otlp_json_lines(tmp_path / "private", "logs"))
    assert b"SECRET-" not in raw
    logs = _file_items(tmp_path / "private", LOGS)
    event = next(r for r in logs if r.event_name == "gen_ai.user.message")
    assert not event.HasField("body") and event.severity_number == SeverityNumber.INFO.value
    assert {kv.key: kv.value.int_value for kv in event.attributes}["gen_ai.usage.input_tokens"] == 12
    assert sum(1 for r in logs if r.body.string_value.startswith("handled request")) == 5  # other logs keep bodies


def test_a_route_for_logs_only_sends_only_logs(start_router, tmp_path) -> None:
    config = base_config(tmp_path, destinations={
        "logs_only": {"type": "file", "dir": str(tmp_path / "logs"), "format": "otlp_json"},
        "everything": {"type": "file", "dir": str(tmp_path / "all"), "format": "otlp_json"}},
        routes=[{"name": "logs", "signals": ["logs"], "destinations": ["logs_only"]},
                {"name": "all", "destinations": ["everything"]}])
    router = start_router(config)
    base = f"http://127.0.0.1:{router.http_port}"
    _emit_logs(HttpLogExporter(endpoint=f"{base}/v1/logs"))
    _emit_metrics(HttpMetricExporter(endpoint=f"{base}/v1/metrics"))
    assert router.post("/v1/traces", make_request().SerializeToString(), PB)[0] == 200
    router.stop()
    assert (tmp_path / "logs" / "logs").exists()
    assert not (tmp_path / "logs" / "traces").exists() and not (tmp_path / "logs" / "metrics").exists()
    for signal in ("logs", "metrics", "traces"):
        assert read_otlp_json_lines(tmp_path / "all", signal)


def test_a_trace_format_destination_for_metrics_is_a_config_error(tmp_path) -> None:
    # Trace formats take log records (GenAI events join their spans), never metrics.
    import yaml
    from otlp_router import config
    from otlp_router.settings import ConfigError
    text = yaml.safe_dump(base_config(tmp_path, destinations={"json": {"type": "file", "dir": "x", "format": "json"}},
                                      routes=[{"name": "metrics-to-json", "signals": ["logs", "metrics"],
                                               "destinations": ["json"]}]))
    with pytest.raises(ConfigError) as err:
        config.parse(text)
    assert err.value.path == "routes[0].signals[1]" and "metrics-to-json" in err.value.problem


@pytest.mark.parametrize("signal", [LOGS, METRICS])
def test_error_statuses_on_the_new_paths(shared_router, signal) -> None:
    assert shared_router.post(signal.http_path, b"\xff\xff\xff", PB)[0] == 400
    assert shared_router.post(signal.http_path, b"", {"Content-Type": "text/plain"})[0] == 415
    assert shared_router.post(signal.http_path, b"", PB, method="GET")[0] == 405
    status, headers, body = shared_router.post(signal.http_path, b"", PB)
    assert status == 200 and signal.response_type.FromString(body) == signal.response_type()
    status, _, body = shared_router.post(signal.http_path, b"{}", {"Content-Type": "application/json"})
    assert status == 200


def test_log_records_with_a_bad_trace_id_are_rejected_with_partial_success(shared_router) -> None:
    request = ExportLogsServiceRequest(resource_logs=[{"scope_logs": [{"log_records": [
        {"body": {"string_value": "ok"}}, {"body": {"string_value": "bad"}, "trace_id": b"\x01" * 5}]}]}])
    status, _, body = shared_router.post("/v1/logs", request.SerializeToString(), PB)
    partial = ExportLogsServiceResponse.FromString(body).partial_success
    assert status == 200 and partial.rejected_log_records == 1 and "trace_id" in partial.error_message


def test_grpc_logs_and_metrics_services_answer_invalid_argument(shared_router) -> None:
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{shared_router.grpc_port}") as channel:
        for signal in (LOGS, METRICS):
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary(f"/{signal.grpc_service}/Export")(b"\xff\xff\xff", timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert channel.unary_unary(f"/{signal.grpc_service}/Export")(
                ExportMetricsServiceRequest().SerializeToString(), timeout=5) == b""
