"""OpenRouter's `trace` request field, mapped as OpenRouter maps it."""

from __future__ import annotations

import hashlib

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_router.model.attributes import to_dict
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.routing.openrouter import OpenRouterMapping

UPSTREAM = b"\xaa" * 16


def _kv(key: str, value: object) -> dict:
    if isinstance(value, dict):
        return {"key": key, "value": {"kvlist_value": {"values": [_kv(k, v) for k, v in value.items()]}}}
    return {"key": key, "value": {"string_value": value}}


def _request(root_attrs: list[dict], child_attrs: list[dict] | None = None) -> ExportTraceServiceRequest:
    spans = [{"trace_id": UPSTREAM, "span_id": b"\x01" * 8, "name": "LLM Generation", "attributes": root_attrs}]
    if child_attrs is not None:
        spans.append({"trace_id": UPSTREAM, "span_id": b"\x02" * 8, "parent_span_id": b"\x01" * 8,
                      "name": "child", "attributes": child_attrs})
    return ExportTraceServiceRequest(resource_spans=[{"scope_spans": [{"spans": spans}]}])


def _spans(req: ExportTraceServiceRequest) -> list:
    return list(req.resource_spans[0].scope_spans[0].spans)


def test_trace_fields_map_to_ids_names_and_metadata() -> None:
    caller_trace = "0af7651916cd43dd8448eb211c80319c"
    req = _request([_kv("trace", {"trace_id": caller_trace, "parent_span_id": "b7ad6b7169203331",
                                  "trace_name": "checkout-flow", "generation_name": "summarise",
                                  "document_type": "contract"}),
                    _kv("gen_ai.request.model", "gpt-4o"), _kv("user", "alice"), _kv("session_id", "s-1")],
                   child_attrs=[])
    assert OpenRouterMapping().apply(req, TRACES)
    root, child = _spans(req)
    assert root.trace_id.hex() == caller_trace and child.trace_id.hex() == caller_trace  # whole trace moves
    assert root.parent_span_id.hex() == "b7ad6b7169203331"  # the root nests under the caller's span
    assert child.parent_span_id == b"\x01" * 8  # inner structure untouched
    assert root.name == "summarise"  # generation_name names a generation span
    attrs = to_dict(root.attributes)
    assert attrs["trace.name"] == "checkout-flow" and attrs["trace.metadata.document_type"] == "contract"
    assert attrs["user.id"] == "alice" and attrs["session.id"] == "s-1"
    assert "trace" not in attrs and "user" not in attrs and "session_id" not in attrs


def test_non_hex_ids_are_hashed_stably() -> None:
    req = _request([_kv("trace.trace_id", "trace-abc123"), _kv("trace.span_name", "step")])
    OpenRouterMapping().apply(req, TRACES)
    (root,) = _spans(req)
    assert root.trace_id == hashlib.sha256(b"trace-abc123").digest()[:16]
    assert root.name == "step"


def test_later_spans_of_a_remapped_trace_follow_it() -> None:
    mapping = OpenRouterMapping()
    mapping.apply(_request([_kv("trace.trace_id", "t-1")]), TRACES)
    later = ExportTraceServiceRequest(resource_spans=[{"scope_spans": [{"spans": [
        {"trace_id": UPSTREAM, "span_id": b"\x05" * 8, "name": "late"}]}]}])
    assert mapping.apply(later, TRACES)
    assert _spans(later)[0].trace_id == hashlib.sha256(b"t-1").digest()[:16]


def test_trace_field_as_json_string() -> None:
    req = _request([_kv("trace", '{"trace_name": "from-json", "team": "search"}')])
    OpenRouterMapping().apply(req, TRACES)
    attrs = to_dict(_spans(req)[0].attributes)
    assert attrs["trace.name"] == "from-json" and attrs["trace.metadata.team"] == "search"


def test_requests_without_the_fields_are_skipped_by_a_byte_search() -> None:
    req = _request([_kv("gen_ai.request.model", "m"), _kv("user.id", "u")])
    batch = Batch(TRACES, req, 1, req.SerializeToString())
    assert not OpenRouterMapping().wanted(batch)
    with_user = _request([_kv("user", "u")])
    assert OpenRouterMapping().wanted(Batch(TRACES, with_user, 1, with_user.SerializeToString()))
