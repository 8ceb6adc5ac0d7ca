"""`otlp-router explain`: what the routing table and shaping would do with each
span of an OTLP JSON file, without sending anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from otlp_router.config import RouterConfig
from otlp_router.model import otlp_json
from otlp_router.model.attributes import to_dict
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.pipeline import Pipeline
from otlp_router.routing.match import walk
from otlp_router.routing.openrouter import OpenRouterMapping


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


def _spans(batch: Batch) -> Iterator[tuple[Any, Any]]:
    for rs in batch.message.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield span, rs.resource


def explain(config: RouterConfig, path: Path) -> list[dict[str, Any]]:
    # Mapping runs here, before the rules are read, as the pipeline runs it before routing.
    mapping = OpenRouterMapping() if config.openrouter_mapping else None
    pipeline = Pipeline(config.routing, {}, {name: d.shaping for name, d in config.destinations.items()})
    table = config.routing
    report = []
    for body in read_requests(path):
        message = otlp_json.decode(TRACES.request_type, body)
        items, rejection = TRACES.inspect(message)
        batch = Batch(TRACES, message, items)
        if mapping is not None and mapping.apply(message, TRACES):
            batch.modified()
        routes_of = {}
        for span, ctx in walk(message, TRACES, table.needs, None):
            chosen = table.choose(ctx)
            names = [table.routes[i].name for i in chosen] or ([table.default.name] if table.default else [])
            routes_of[span.span_id] = names
        views: dict[bytes, dict[str, Any]] = {}
        for dest, shaped in pipeline.prepare(batch):
            for span, resource in _spans(shaped):
                views.setdefault(span.span_id, {})[dest] = {
                    "name": span.name,
                    "attributes": to_dict(span.attributes),
                    "events": [ev.name for ev in span.events],
                    "resource": to_dict(resource.attributes),
                }
        for span, _ in _spans(batch):
            report.append({
                "span": span.name,
                "trace_id": span.trace_id.hex(),
                "span_id": span.span_id.hex(),
                "routes": routes_of.get(span.span_id, []),
                "destinations": views.get(span.span_id, {}),
            })
        if rejection.count:
            report.append({"rejected": rejection.count, "reason": rejection.message})
    return report
