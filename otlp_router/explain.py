"""`otlp-router explain`: what the routing table and shaping would do with each
item (span, log record, metric) of an OTLP JSON file, without sending anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import orjson

from otlp_router.config import RouterConfig
from otlp_router.model import otlp_json
from otlp_router.model.attributes import to_dict, value_of
from otlp_router.model.batch import Batch, items_of
from otlp_router.model.signals import LOGS, METRICS, TRACES, Signal
from otlp_router.pipeline import Pipeline
from otlp_router.routing.match import walk
from otlp_router.routing.openrouter import OpenRouterMapping

_TOP_KEYS = {"resourceSpans": TRACES, "resource_spans": TRACES, "resourceLogs": LOGS, "resource_logs": LOGS,
             "resourceMetrics": METRICS, "resource_metrics": METRICS}


def read_requests(path: Path) -> Iterator[bytes]:
    """One OTLP JSON export request per file, or one per line (the file destination's format)."""
    data = path.read_bytes()
    stripped = data.strip()
    if b"\n" in stripped and stripped.startswith(b"{") and not stripped.startswith(b"{\n"):
        for line in stripped.splitlines():
            if line.strip():
                yield line
    else:
        yield data


def signal_of(body: bytes) -> Signal:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise otlp_json.JsonDecodeError(f"invalid JSON: {e}") from None
    if isinstance(doc, dict):
        for key in doc:
            if key in _TOP_KEYS:
                return _TOP_KEYS[key]
    return TRACES


def _key(signal: Signal, item: Any) -> Any:
    """What identifies an item across the copies each destination gets."""
    if signal is TRACES:
        return item.span_id
    if signal is LOGS:
        return (item.time_unix_nano, item.observed_time_unix_nano, item.severity_number, item.event_name,
                item.trace_id, item.span_id, item.body.SerializeToString())
    return item.name


def _describe(signal: Signal, item: Any) -> dict[str, Any]:
    if signal is TRACES:
        return {"span": item.name, "trace_id": item.trace_id.hex(), "span_id": item.span_id.hex()}
    if signal is LOGS:
        return {"log": item.event_name or item.severity_text or "log record", "severity": item.severity_number,
                "trace_id": item.trace_id.hex()}
    return {"metric": item.name}


def _view(signal: Signal, item: Any, resource: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"resource": to_dict(resource.attributes)}
    if signal is METRICS:
        view["data_points"] = [to_dict(a) for a in signal.attribute_lists(item)]
        return view
    view["attributes"] = to_dict(item.attributes)
    if signal is TRACES:
        view["name"] = item.name
        view["events"] = [ev.name for ev in item.events]
    else:
        view["body"] = value_of(item.body) if item.HasField("body") else None
    return view


def explain(config: RouterConfig, path: Path) -> list[dict[str, Any]]:
    # Mapping runs here, before the rules are read, as the pipeline runs it before routing.
    mapping = OpenRouterMapping() if config.openrouter_mapping else None
    pipeline = Pipeline(config.routing, {}, {name: d.shaping for name, d in config.destinations.items()})
    table = config.routing
    report = []
    for body in read_requests(path):
        signal = signal_of(body)
        message = otlp_json.decode(signal.request_type, body)
        items, rejection = signal.inspect(message)
        batch = Batch(signal, message, items)
        if mapping is not None and signal is TRACES and mapping.apply(message, signal):
            batch.modified()
        routes_of = {}
        for item, ctx in walk(message, signal, table.needs, None):
            chosen = table.choose(ctx, signal.name)
            routes_of[_key(signal, item)] = [r.name for r in table.routes_of(signal.name, chosen)]
        views: dict[Any, dict[str, Any]] = {}
        for dest, shaped in pipeline.prepare(batch):
            for item, resource in items_of(shaped):
                views.setdefault(_key(signal, item), {})[dest] = _view(signal, item, resource)
        for item, _ in items_of(batch):
            key = _key(signal, item)
            report.append({**_describe(signal, item), "signal": signal.name, "routes": routes_of.get(key, []),
                           "destinations": views.get(key, {})})
        if rejection.count:
            report.append({"rejected": rejection.count, "reason": rejection.message})
    return report
