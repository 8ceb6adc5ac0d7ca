"""Pre-built OTLP trace export requests for the ingest benchmark.

One request shape (100 spans x 10 attributes, GenAI-ish keys, one resource and
one scope) in three encodings: protobuf, OTLP JSON and a gRPC message frame.
Speed is irrelevant here: everything is built once before the load starts.
"""

from __future__ import annotations

import base64
import json
import random
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

MODELS = ("gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-flash", "llama-3.1-70b")
PROVIDERS = ("openai", "anthropic", "gcp.gemini", "groq")
OPERATIONS = ("chat", "text_completion", "embeddings", "execute_tool")
SPAN_KINDS = (Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL, Span.SPAN_KIND_SERVER)


@dataclass(frozen=True)
class Payloads:
    """The same request in every encoding the benchmark sends."""

    spans_per_request: int
    protobuf: bytes
    json: bytes
    grpc_frame: bytes


def _attr(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span_attributes(rng: random.Random, index: int) -> list[KeyValue]:
    """Ten attributes: six strings and four ints, as an LLM gateway would send."""
    model = MODELS[index % len(MODELS)]
    input_tokens = rng.randint(50, 8000)
    output_tokens = rng.randint(10, 2000)
    return [
        _attr("gen_ai.operation.name", OPERATIONS[index % len(OPERATIONS)]),
        _attr("gen_ai.provider.name", PROVIDERS[index % len(PROVIDERS)]),
        _attr("gen_ai.request.model", model),
        _attr("gen_ai.response.model", f"{model}-2025-01-01"),
        _attr("gen_ai.response.id", f"chatcmpl-{rng.getrandbits(64):016x}"),
        _attr("user.id", f"user-{rng.randint(1, 500)}"),
        _attr("gen_ai.usage.input_tokens", input_tokens),
        _attr("gen_ai.usage.output_tokens", output_tokens),
        _attr("gen_ai.request.max_tokens", 4096),
        _attr("http.response.status_code", 200),
    ]


def _span(rng: random.Random, index: int, trace_id: bytes, root_id: bytes, start_ns: int) -> Span:
    """One span of a trace; every span but the first is a child of the root."""
    span_id = root_id if index == 0 else rng.getrandbits(64).to_bytes(8, "big")
    begin = start_ns + index * 3_000_000
    ok = index % 20 != 7  # a few errors, as real traffic has
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=b"" if index == 0 else root_id,
        name="chat " + MODELS[index % len(MODELS)],
        kind=SPAN_KINDS[index % len(SPAN_KINDS)],
        start_time_unix_nano=begin,
        end_time_unix_nano=begin + rng.randint(20_000_000, 4_000_000_000),
        attributes=_span_attributes(rng, index),
        status=Status(code=Status.STATUS_CODE_OK)
        if ok
        else Status(code=Status.STATUS_CODE_ERROR, message="upstream 429"),
    )


def build_request(spans: int = 100, seed: int = 1) -> ExportTraceServiceRequest:
    """A request with `spans` spans in ten traces, one resource and one scope."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(_attr("service.name", "llm-gateway"))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "openinference.instrumentation"
    scope_spans.scope.version = "1.2.3"
    start_ns = time.time_ns() - 60_000_000_000
    per_trace = max(1, spans // 10)
    for first in range(0, spans, per_trace):
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        root_id = rng.getrandbits(64).to_bytes(8, "big")
        count = min(per_trace, spans - first)
        scope_spans.spans.extend(
            _span(rng, i, trace_id, root_id, start_ns + first * 1_000_000) for i in range(count)
        )
    return request


def _hex_ids(node: Any) -> Any:
    """Rewrite base64 id fields (proto3 JSON) as hex, as OTLP JSON requires."""
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
            value = base64.b64decode(value).hex()
        out[key] = _hex_ids(value)
    return out


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP JSON: lowerCamelCase keys, integer enums, int64 as strings, hex ids.

    json_format already writes int64 as strings and camelCase keys; it only gets
    enums (names) and ids (base64) wrong, which the options and _hex_ids fix.
    """
    as_dict = MessageToDict(request, use_integers_for_enums=True)
    return json.dumps(_hex_ids(as_dict), separators=(",", ":")).encode()


def grpc_frame(message: bytes) -> bytes:
    """gRPC length-prefixed message: uncompressed flag + big-endian length."""
    return struct.pack(">BI", 0, len(message)) + message


def build_payloads(spans: int = 100) -> Payloads:
    request = build_request(spans)
    raw = request.SerializeToString()
    return Payloads(spans, raw, to_otlp_json(request), grpc_frame(raw))


def write_payloads(payloads: Payloads, directory: Path) -> dict[str, Path]:
    """Write each encoding to a file, since wrk and h2load read bodies from disk."""
    paths = {
        "protobuf": directory / "request.pb",
        "json": directory / "request.json",
        "grpc": directory / "request.grpc",
    }
    paths["protobuf"].write_bytes(payloads.protobuf)
    paths["json"].write_bytes(payloads.json)
    paths["grpc"].write_bytes(payloads.grpc_frame)
    return paths


if __name__ == "__main__":
    built = build_payloads()
    print(f"protobuf {len(built.protobuf)} B, json {len(built.json)} B")
    print(built.json[:600].decode())
