"""The OTel Python SDK's own OTLP exporters, pointed at a running router."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from otlp_router.model import otlp_json
from tests.support import read_otlp_json_lines


def _emit(exporter) -> dict[str, str]:
    """A parent with two children, one with an event and an error status; returns name → hex span id."""
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-test", "deployment": "ci"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("sdk-test-scope", "2.0")
    ids = {}
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes={"gen_ai.request.model": "gpt-4o"}) as parent:
        ids["parent"] = format(parent.get_span_context().span_id, "016x")
        for name in ("child-a", "child-b"):
            with tracer.start_as_current_span(name, attributes={"n": 7, "ok": True, "ratio": 0.5,
                                                                 "tags": ["a", "b"]}) as child:
                ids[name] = format(child.get_span_context().span_id, "016x")
                if name == "child-b":
                    child.add_event("retry", {"attempt": 2})
                    child.set_status(Status(StatusCode.ERROR, "boom"))
        ids["trace"] = format(parent.get_span_context().trace_id, "032x")
    provider.shutdown()
    return ids


def _received(tmp_path) -> dict[str, dict]:
    spans = {}
    for line in read_otlp_json_lines(tmp_path / "out"):
        request = otlp_json.decode(ExportTraceServiceRequest, line)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    spans[span.name] = {"span": span, "resource": rs.resource, "scope": ss.scope}
    return spans


def _check(ids: dict[str, str], spans: dict[str, dict]) -> None:
    assert set(spans) == {"parent", "child-a", "child-b"}
    for name in ("parent", "child-a", "child-b"):
        span = spans[name]["span"]
        assert span.trace_id.hex() == ids["trace"] and span.span_id.hex() == ids[name]
    assert spans["child-a"]["span"].parent_span_id.hex() == ids["parent"]
    assert spans["parent"]["span"].parent_span_id == b""
    parent_attrs = {kv.key: kv.value for kv in spans["parent"]["span"].attributes}
    assert parent_attrs["gen_ai.request.model"].string_value == "gpt-4o"
    child = spans["child-b"]["span"]
    attrs = {kv.key: kv.value for kv in child.attributes}
    assert attrs["n"].int_value == 7 and attrs["ok"].bool_value and attrs["ratio"].double_value == 0.5
    assert [v.string_value for v in attrs["tags"].array_value.values] == ["a", "b"]
    assert child.events[0].name == "retry" and child.events[0].attributes[0].value.int_value == 2
    assert child.status.code == 2 and child.status.message == "boom"
    assert spans["parent"]["span"].kind == 2
    resource = {kv.key: kv.value.string_value for kv in spans["parent"]["resource"].attributes}
    assert resource["service.name"] == "sdk-test" and resource["deployment"] == "ci"
    scope = spans["parent"]["scope"]
    assert (scope.name, scope.version) == ("sdk-test-scope", "2.0")


def test_grpc_exporter_delivers_spans_intact(start_router, tmp_path) -> None:
    router = start_router()
    ids = _emit(GrpcExporter(endpoint=f"127.0.0.1:{router.grpc_port}", insecure=True))
    router.stop()
    _check(ids, _received(tmp_path))


def test_http_protobuf_exporter_delivers_spans_intact(start_router, tmp_path) -> None:
    router = start_router()
    ids = _emit(HttpExporter(endpoint=f"http://127.0.0.1:{router.http_port}/v1/traces",
                             compression=HttpCompression.Gzip))
    router.stop()
    _check(ids, _received(tmp_path))
