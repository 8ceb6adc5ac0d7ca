"""Payloads of the pipeline benchmarks, built once before any load.

- GenAI traces: payloads.py's request (100 spans x 10 attributes, ten traces)
  where every other span carries prompt and completion content
  (`gen_ai.prompt`, `gen_ai.completion`, so privacy has something to remove)
  and each trace's root span carries OpenRouter `trace` fields (so the
  OpenRouter mapping has something to map). Still 10 attributes a span: the
  new keys replace ones the pipeline does not look at.
- Logs: 100 log records x 10 attributes, with a body, trace and span ids.
- Metrics: 100 data points (5 sums and 5 histograms of 10 points each).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span

if __package__:
    from . import payloads
else:
    import payloads

ITEMS = 100
# Dropped to make room, so every span keeps exactly 10 attributes.
CONTENT_REPLACES = ("gen_ai.request.max_tokens", "http.response.status_code")
ROOT_REPLACES = ("gen_ai.response.id", "gen_ai.request.model")


def _prompt(rng: random.Random, index: int) -> str:
    question = " ".join(rng.choice(("how", "do", "I", "route", "spans", "by", "tenant", "safely")) for _ in range(24))
    messages = [
        {"role": "system", "content": "You are a helpful assistant for an observability platform."},
        {"role": "user", "content": f"[{index}] {question}?"},
    ]
    return json.dumps(messages)


def _completion(rng: random.Random) -> str:
    answer = " ".join(rng.choice(("use", "a", "routing", "table", "with", "match", "rules", "and")) for _ in range(40))
    return json.dumps([{"role": "assistant", "content": answer, "finish_reason": "stop"}])


def _swap(span: Span, drop: tuple[str, ...], add: list[KeyValue]) -> None:
    kept = [kv for kv in span.attributes if kv.key not in drop]
    del span.attributes[:]
    span.attributes.extend(kept + add)


def genai_request(spans: int = ITEMS, seed: int = 2) -> Message:
    """payloads.build_request with content on even spans and OpenRouter fields on roots."""
    request = payloads.build_request(spans, seed)
    rng = random.Random(seed)
    for index, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        drop: tuple[str, ...] = ()
        add: list[KeyValue] = []
        if index % 2 == 0:
            drop += CONTENT_REPLACES
            add += [payloads._attr("gen_ai.prompt", _prompt(rng, index)),
                    payloads._attr("gen_ai.completion", _completion(rng))]  # fmt: skip
        if not span.parent_span_id:
            drop += ROOT_REPLACES
            add += [payloads._attr("trace.trace_name", f"support-chat-{index // 10}"),
                    payloads._attr("session_id", f"session-{rng.randint(1, 50)}")]  # fmt: skip
        if add:
            _swap(span, drop, add)
        assert len(span.attributes) == 10, span
    return request


def logs_request(records: int = ITEMS, seed: int = 3) -> ExportLogsServiceRequest:
    """Application log records of an LLM gateway: a message body, trace context, 10 attributes."""
    rng = random.Random(seed)
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(payloads._attr("service.name", "llm-gateway"))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "gateway.access"
    now = time.time_ns()
    for index in range(records):
        record = scope_logs.log_records.add(
            time_unix_nano=now - (records - index) * 1_000_000,
            observed_time_unix_nano=now,
            severity_number=9 if index % 10 else 17,  # INFO, a few ERROR
            severity_text="INFO" if index % 10 else "ERROR",
            trace_id=rng.getrandbits(128).to_bytes(16, "big"),
            span_id=rng.getrandbits(64).to_bytes(8, "big"),
        )
        record.body.string_value = f"completed chat request {index} in {rng.randint(20, 4000)} ms"
        record.attributes.extend(payloads._span_attributes(rng, index))
    return request


def _number_point_attributes(index: int) -> list[KeyValue]:
    return [
        payloads._attr("gen_ai.provider.name", payloads.PROVIDERS[index % len(payloads.PROVIDERS)]),
        payloads._attr("gen_ai.request.model", payloads.MODELS[index % len(payloads.MODELS)]),
        payloads._attr("gen_ai.token.type", "input" if index % 2 else "output"),
        payloads._attr("server.address", f"api-{index % 3}.example.com"),
    ]


def metrics_request(metrics: int = 10, points: int = 10, seed: int = 4) -> ExportMetricsServiceRequest:
    """`metrics` metrics of `points` data points each: half monotonic sums, half histograms."""
    rng = random.Random(seed)
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.append(payloads._attr("service.name", "llm-gateway"))
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name = "gateway.metrics"
    now = time.time_ns()
    start = now - 60_000_000_000
    bounds = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
    for m in range(metrics):
        metric = scope_metrics.metrics.add()
        if m % 2 == 0:
            metric.name, metric.unit = f"gen_ai.client.token.usage.{m}", "{token}"
            metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
            metric.sum.is_monotonic = True
            for p in range(points):
                point = metric.sum.data_points.add(start_time_unix_nano=start, time_unix_nano=now,
                                                   as_int=rng.randint(1, 10**7))  # fmt: skip
                point.attributes.extend(_number_point_attributes(p))
        else:
            metric.name, metric.unit = f"gen_ai.client.operation.duration.{m}", "s"
            metric.histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
            for p in range(points):
                counts = [rng.randint(0, 500) for _ in range(len(bounds) + 1)]
                point = metric.histogram.data_points.add(
                    start_time_unix_nano=start, time_unix_nano=now, count=sum(counts),
                    sum=rng.uniform(1, 1000), bucket_counts=counts, explicit_bounds=bounds,
                )  # fmt: skip
                point.attributes.extend(_number_point_attributes(p))
    return request


def build(message: Message, items: int) -> payloads.Payloads:
    """Any export request in the encodings payloads.Payloads holds."""
    raw = message.SerializeToString()
    return payloads.Payloads(items, raw, payloads.to_otlp_json(message), payloads.grpc_frame(raw))  # type: ignore[arg-type]


def trace_id_offsets(request: Message, wire: bytes) -> list[tuple[int, int]]:
    """(byte offset, trace number) of every trace id in the serialised request,
    for wrk_unique.lua to put new ids there."""
    spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    numbers = {trace_id: n for n, trace_id in enumerate(dict.fromkeys(span.trace_id for span in spans))}
    found = []
    for trace_id, number in numbers.items():
        at = wire.find(trace_id)
        while at != -1:
            found.append((at, number))
            at = wire.find(trace_id, at + len(trace_id))
    if len(found) != len(spans):
        raise ValueError(f"found {len(found)} trace ids in the bytes of {len(spans)} spans")
    return sorted(found)


def write_trace_id_offsets(request: Message, body_file: Path) -> None:
    """Next to the body file, as wrk_unique.lua reads it."""
    offsets = trace_id_offsets(request, body_file.read_bytes())
    Path(f"{body_file}.ids").write_text("".join(f"{at} {number}\n" for at, number in offsets))
