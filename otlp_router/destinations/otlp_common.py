"""What the OTLP exporters (HTTP and gRPC) share: merging batches into one
request, the connection-test payload, reading partial_success and the retry
hints servers send (Retry-After, RetryInfo)."""

from __future__ import annotations

import email.utils
import logging
import time
from typing import Any

from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_router import telemetry
from otlp_router.model import otlp_json
from otlp_router.model.batch import Batch
from otlp_router.model.signals import Signal

log = logging.getLogger("otlp_router.destinations.otlp")


def merged_wire(batches: list[Batch]) -> bytes:
    """One export request from several: concatenated protobuf messages merge
    their repeated fields, so each resource keeps its scopes and items."""
    if len(batches) == 1:
        return batches[0].wire
    return b"".join(b.wire for b in batches)


def merged_message(batches: list[Batch]) -> Message:
    if len(batches) == 1:
        return batches[0].message
    message = batches[0].signal.request_type()
    for b in batches:
        message.MergeFrom(b.message)
    return message


def connection_test_request(with_span: bool) -> ExportTraceServiceRequest:
    """An empty export, or one clearly named span for backends that refuse empty ones."""
    if not with_span:
        return ExportTraceServiceRequest()
    now = time.time_ns()
    return ExportTraceServiceRequest(resource_spans=[{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "otlp-router"}}]},
        "scope_spans": [{"scope": {"name": "otlp-router.check"}, "spans": [{
            "trace_id": now.to_bytes(16, "big"), "span_id": (now & 0xFFFFFFFFFFFFFFFF or 1).to_bytes(8, "big"),
            "name": "otlp-router connection test", "kind": 1,
            "start_time_unix_nano": now, "end_time_unix_nano": now}]}]}])


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_info_delay(status_bytes: bytes | None) -> float | None:
    """The RetryInfo delay inside a serialized google.rpc.Status, if any."""
    if not status_bytes:
        return None
    try:
        status = status_pb2.Status.FromString(status_bytes)
    except DecodeError:
        return None
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToNanoseconds() / 1e9
    return None


def status_message(body: bytes, content_type: str) -> str:
    """The server's own words: a google.rpc.Status message when it sent one, else the text."""
    if "protobuf" in content_type:
        try:
            status = status_pb2.Status.FromString(body)
            if status.message:
                return status.message
        except DecodeError:
            pass
    if "json" in content_type:
        try:
            import orjson
            doc: Any = orjson.loads(body)
            if isinstance(doc, dict) and isinstance(doc.get("message"), str):
                return doc["message"]
        except orjson.JSONDecodeError:
            pass
    return body[:500].decode("utf-8", "replace").strip()


def note_partial_success(destination: str, signal: Signal, response: Message) -> None:
    """A partial success is final: count and log what the backend rejected, never retry it."""
    if not response.HasField("partial_success"):
        return
    partial = response.partial_success
    rejected = getattr(partial, signal.rejected_field)
    if rejected or partial.error_message:
        telemetry.exporter_dropped.labels(destination, signal.name, "partial_success").inc(rejected)
        log.warning("destination %s: backend rejected %d %s: %s", destination, rejected, signal.item_name,
                    partial.error_message or "(no message)")


def decode_response(signal: Signal, body: bytes, json: bool) -> Message | None:
    if not body:
        return signal.response_type()
    try:
        if json:
            return otlp_json.decode(signal.response_type, body)
        return signal.response_type.FromString(body)
    except (DecodeError, otlp_json.JsonDecodeError):
        return None
