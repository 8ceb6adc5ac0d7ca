"""The OpenTelemetry Collector's self-metrics beside the router's own (issue 16):
the names, units and labels a Collector dashboard or alert expects, scraped
from a running router; build info, process metrics, and the export histograms
of every destination type."""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (ExportLogsServiceRequest,
                                                                     ExportLogsServiceResponse)
from prometheus_client.parser import text_string_to_metric_families

from otlp_router import telemetry
from tests.downstream import HttpSink, Reply
from tests.support import base_config, make_request, wait_for

PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
METRICS_JSON = (b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"queue.depth","gauge":{"dataPoints":['
                b'{"asInt":"1","timeUnixNano":"1700000000000000000"},'
                b'{"asInt":"2","timeUnixNano":"1700000001000000000"}]}}]}]}]}')


@pytest.fixture
def rejecting_backend():
    sink = HttpSink()
    sink.script = [Reply(status=400, body=b"no")] * 50      # a permanent refusal: the dead letter
    yield sink
    sink.close()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _send_logs_over_grpc(port: int, records: int) -> None:
    request = ExportLogsServiceRequest(resource_logs=[{"scope_logs": [{"log_records": [
        {"time_unix_nano": 1_700_000_000_000_000_000 + i, "body": {"string_value": f"line {i}"}}
        for i in range(records)]}]}])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                                     request_serializer=ExportLogsServiceRequest.SerializeToString,
                                     response_deserializer=ExportLogsServiceResponse.FromString)
        export(request, timeout=10)


def _router_config(tmp_path: Any, backend: HttpSink) -> dict[str, Any]:
    return base_config(tmp_path, destinations={
        "out": {"type": "file", "dir": str(tmp_path / "out"), "format": "otlp_json"},
        "docs": {"type": "file", "dir": str(tmp_path / "docs"), "format": "json", "trace_idle": "0.2s"},
        "mute": {"type": "discard"},
        "reject": {"type": "otlp_http", "endpoint": f"http://127.0.0.1:{backend.port}"},
    }, routes=[
        {"name": "everything", "destinations": ["out", "mute"]},
        {"name": "traces", "signals": ["traces"], "destinations": ["docs", "reject"]},
    ])


def test_collector_metric_names_and_labels_from_a_running_router(start_router, tmp_path, rejecting_backend) -> None:
    router = start_router(_router_config(tmp_path, rejecting_backend))
    request = make_request(spans=6)
    request.resource_spans[0].scope_spans[0].spans[5].trace_id = bytes(16)   # invalid: partial_success
    assert router.post("/v1/traces", request.SerializeToString(), PB)[0] == 200
    _send_logs_over_grpc(router.grpc_port, 3)
    assert router.post("/v1/metrics", METRICS_JSON, JSON)[0] == 200

    def scraped() -> Any:
        samples = _samples(router.get_admin("/metrics")[2].decode())
        done = _value(samples, "otelcol_exporter_sent_spans_total", exporter="docs") == 5 \
            and _value(samples, "otelcol_exporter_send_failed_spans_total", exporter="reject") == 5 \
            and _value(samples, "otelcol_exporter_sent_metric_points_total", exporter="out") == 2
        return done and samples
    samples = wait_for(scraped, timeout=20)
    assert samples, router.get_admin("/metrics")[2].decode()
    text = router.get_admin("/metrics")[2].decode()

    # Receivers: receiver="otlp", transport as the Collector sets it; counters with `_total`.
    assert _value(samples, "otelcol_receiver_accepted_spans_total", receiver="otlp", transport="http") == 5
    assert _value(samples, "otelcol_receiver_refused_spans_total", receiver="otlp", transport="http") == 1
    assert _value(samples, "otelcol_receiver_accepted_log_records_total", receiver="otlp", transport="grpc") == 3
    assert _value(samples, "otelcol_receiver_accepted_metric_points_total", receiver="otlp", transport="http") == 2
    # Exporters: exporter="<destination name>", per signal in its unit.
    for exporter in ("out", "mute"):
        assert _value(samples, "otelcol_exporter_sent_spans_total", exporter=exporter) == 5
        assert _value(samples, "otelcol_exporter_sent_log_records_total", exporter=exporter) == 3
        assert _value(samples, "otelcol_exporter_sent_metric_points_total", exporter=exporter) == 2
    assert _value(samples, "otelcol_exporter_sent_spans_total", exporter="reject") is None
    # Given up on once (dead letter), not once per attempt.
    assert _value(samples, "otelcol_exporter_send_failed_spans_total", exporter="reject") == 5
    assert _value(samples, "otelcol_exporter_send_failed_spans_total", exporter="out") is None
    for exporter in ("out", "docs", "mute", "reject"):
        assert _value(samples, "otelcol_exporter_queue_size", exporter=exporter) is not None
        assert _value(samples, "otelcol_exporter_queue_capacity", exporter=exporter) == 256 * 1024 * 1024
    for name, kind in (("otelcol_receiver_accepted_spans_total", "counter"),
                       ("otelcol_exporter_send_failed_spans_total", "counter"),
                       ("otelcol_exporter_queue_size", "gauge"), ("otelcol_exporter_queue_capacity", "gauge")):
        assert f"# TYPE {name} {kind}\n" in text, name
    # The project's own names are still there, counted by the same calls.
    assert _value(samples, "otlp_router_receiver_accepted_items_total", receiver="otlp", transport="http",
                  signal="traces") == 5
    assert _value(samples, "otlp_router_receiver_refused_items_total", receiver="otlp", transport="http",
                  signal="traces", reason="invalid") == 1
    assert _value(samples, "otlp_router_dead_lettered_items_total", destination="reject", signal="traces",
                  reason="rejected") == 5

    # Build info and this process's metrics.
    assert _value(samples, "otlp_router_build_info", version=telemetry.VERSION,
                  python=__import__("platform").python_version()) == 1
    assert _value(samples, "process_resident_memory_bytes") > 0
    assert _value(samples, "process_cpu_seconds_total") > 0
    assert _value(samples, "process_start_time_seconds") > 0

    # Every destination type's exports go through the one delivery loop: each has
    # the batch and latency histograms, the file destination (both formats) too.
    for destination in ("out", "docs", "mute", "reject"):
        assert _value(samples, "otlp_router_exporter_batch_items_count", destination=destination) >= 1, destination
        assert _value(samples, "otlp_router_exporter_latency_seconds_count", destination=destination) >= 1, destination
    assert re.search(r'otlp_router_exporter_latency_seconds_bucket\{destination="docs",le="0\.1"\} \d', text)


def test_one_call_counts_both_names() -> None:
    before_own = telemetry.exporter_sent.labels("unit-dest", "logs")._value.get()
    collector = telemetry.otelcol_exporter_sent["logs"].labels("unit-dest")
    before_collector = collector._value.get()
    telemetry.exporter_sent.labels("unit-dest", "logs").inc(7)
    assert telemetry.exporter_sent.labels("unit-dest", "logs")._value.get() == before_own + 7
    assert collector._value.get() == before_collector + 7
    # A backend's partial_success or a memory spool's loss at shutdown is no failed send in the Collector's sense.
    failed = telemetry.otelcol_exporter_send_failed["traces"].labels("unit-dest")
    before = failed._value.get()
    telemetry.exporter_dropped.labels("unit-dest", "traces", "partial_success").inc(2)
    telemetry.exporter_dropped.labels("unit-dest", "traces", "no_dead_letter").inc(3)
    telemetry.dead_lettered.labels("unit-dest", "traces", "exhausted").inc(4)
    assert failed._value.get() == before + 7


def test_queue_gauges_follow_the_destinations() -> None:
    telemetry.update_queue_gauges([("q1", 10, 100), ("q2", 0, 50)])
    telemetry.update_queue_gauges([("q1", 20, 100)])          # q2 removed by a reload
    samples = _samples(__import__("prometheus_client").generate_latest(telemetry.REGISTRY).decode())
    assert _value(samples, "otelcol_exporter_queue_size", exporter="q1") == 20
    assert _value(samples, "otelcol_exporter_queue_capacity", exporter="q1") == 100
    assert _value(samples, "otelcol_exporter_queue_size", exporter="q2") is None
