"""`otlp-router explain`: what the routing table and shaping would do with each
item (span, log record, metric) of an OTLP JSON file, without sending anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import orjson

from otlp_router.config import RouterConfig
from otlp_router.model import conventions, otlp_json
from otlp_router.model.attributes import to_dict, value_of
from otlp_router.model.batch import Batch, items_of, select
from otlp_router.model.genai import view_from_attributes
from otlp_router.model.signals import LOGS, METRICS, TRACES, Signal
from otlp_router.pipeline import Pipeline
from otlp_router.routing.openrouter import OpenRouterMapping

_TOP_KEYS = {"resourceSpans": TRACES, "resource_spans": TRACES, "resourceLogs": LOGS, "resource_logs": LOGS,
             "resourceMetrics": METRICS, "resource_metrics": METRICS}


def read_requests(path: Path) -> Iterator[bytes]:
    """One OTLP JSON export request per file (pretty-printed or not), or one per line
    (JSON lines, the file destination's format)."""
    data = path.read_bytes()
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as whole:
        # Not one document. JSON lines, if its first line is a document by itself;
        # otherwise the error is the whole document's (a pretty-printed file with a typo).
        lines = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
        if len(lines) < 2 or _json_error(lines[0][1]) is not None:
            raise otlp_json.JsonDecodeError(f"invalid JSON: {whole}") from None
        for n, line in lines:
            problem = _json_error(line)
            if problem is not None:
                raise otlp_json.JsonDecodeError(f"line {n} (read as JSON lines): invalid JSON: {problem}")
            yield line
    else:
        yield data


def _json_error(text: bytes) -> str | None:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as e:
        return str(e)
    return None


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


def _one_by_one(batch: Batch) -> Iterator[Batch]:
    """Every item of a batch as a batch of its own, with its resource and scope."""
    count = sum(1 for _ in items_of(batch))
    for n in range(count):
        single = select(batch, [i == n for i in range(count)])
        single.items = max(1, single.items)   # a metric without data points still reaches its destinations
        yield single


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


def _genai(message: Any) -> dict[bytes, dict[str, Any]]:
    """Per span id, what the conventions table makes of the span as it arrived: its observation
    type, the conventions that fed its view, the attributes privacy would remove as content, and,
    on a model call, the others it would remove as not on the keep list."""
    table = conventions.active()
    out: dict[bytes, dict[str, Any]] = {}
    for rs in message.resource_spans:
        resource = to_dict(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                own = to_dict(span.attributes)
                used: set[str] = set()
                v = view_from_attributes({**resource, **own}, span.events, span.name, scope_name=ss.scope.name,
                                         scope_version=ss.scope.version, resource=resource,
                                         status_code=span.status.code, used=used)
                content = [k for k in own if table.is_content_key(k)]
                entry: dict[str, Any] = {"type": v.type, "conventions": sorted(used), "content": content}
                if v.is_genai:
                    entry["not_kept"] = [k for k in own if not table.is_content_key(k) and not table.keeps(k)]
                out[span.span_id] = entry
    return out


def explain(config: RouterConfig, path: Path) -> list[dict[str, Any]]:
    conventions.install(config.genai or conventions.build())
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
        genai = _genai(message) if signal is TRACES else {}
        # Per item, in item order (the core, items_of and _one_by_one all go resource, scope, item).
        choices, groups, _ = table.choose(batch)
        routes_of = [[r.name for r in table.routes_of(signal.name, choices[g])] for g in groups]
        # the destinations its routes send it to, before shaping
        reaches = [[dest for dest, _ in table.plan(signal.name, choices[g])] for g in groups]
        # Each item prepared on its own: its copy at each destination is then the only item
        # there, whatever shaping did to it (privacy and redaction change log bodies, so
        # no content key could find it again), and a destination without it sampled it out.
        views: list[dict[str, dict[str, Any]]] = []
        for single in _one_by_one(batch):
            views.append({dest: _view(signal, item, resource) for dest, shaped in pipeline.prepare(single)
                          for item, resource in items_of(shaped)})
        for i, (item, _) in enumerate(items_of(batch)):
            key = _key(signal, item)
            entry = {**_describe(signal, item), "signal": signal.name, "routes": routes_of[i],
                     "destinations": views[i]}
            # Shaping drops items only by sampling.
            entry["sampled_out"] = [d for d in reaches[i] if d not in views[i]]
            if signal is TRACES:
                entry["genai"] = genai.get(key, {})
            report.append(entry)
        if rejection.count:
            report.append({"rejected": rejection.count, "reason": rejection.message})
    return report
