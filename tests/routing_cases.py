"""Requests and rule sets for routing's golden corpus (tests/golden/make_routing.py) and its
differential tests (tests/test_native_routing.py): every signal, attribute values of every kind
(bools beside ints and floats that equal them, bytes, arrays, kvlists, empty values, unicode,
repeated keys), and rule sets over every subject and operator match.py reads, with expected values
of every type YAML gives (and `all` / `any` / `not`, `stop`, `default`, `signals`)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

KEYS = ["k", "n", "event.name", "service.name", "é✓"]
STRINGS = ["", "a", "ab", "b", "1", "1.0", "True", "gen_ai.chat", "gen_ai.", "é✓ 𝄞", "chat gpt", "\x00"]
NUMBERS = [0, 1, -1, 2, 17, 2**53 + 1, -(2**63), 2**63 - 1]
FLOATS = [0.0, 1.0, -1.0, 1.5, 2.0**53, 9007199254740992.0, math.inf, -math.inf, math.nan, 1e300]

_texts = st.sampled_from(STRINGS) | st.text(max_size=6)
_leaves = st.one_of(
    st.just(AnyValue()),
    st.builds(AnyValue, string_value=_texts),
    st.builds(AnyValue, bool_value=st.booleans()),
    st.builds(AnyValue, int_value=st.sampled_from(NUMBERS) | st.integers(-(2**63), 2**63 - 1)),
    st.builds(AnyValue, double_value=st.sampled_from(FLOATS) | st.floats()),
    st.builds(AnyValue, bytes_value=st.sampled_from([b"", b"a", b"\xff"])),
)
any_values = st.recursive(_leaves, lambda inner: st.one_of(
    st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
    st.builds(lambda kvs: AnyValue(kvlist_value=KeyValueList(values=kvs)),
              st.lists(st.builds(KeyValue, key=st.sampled_from(["a", "b", "k"]), value=inner), max_size=3)),
), max_leaves=5)
attributes = st.lists(st.builds(KeyValue, key=st.sampled_from(KEYS), value=any_values), max_size=4)
_names = st.sampled_from(["chat", "gen_ai.chat", "", "embed", "é✓"])
_ids = st.sampled_from([b"\x01" * 16, b"\x02" * 16, bytes(range(16)), b""])
_enums = st.sampled_from([0, 1, 2, 3, 5, 17, 24, -1, 2**31 - 1])


def _opt(**fields: st.SearchStrategy) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional=fields)


def _build(cls: type, **fields: st.SearchStrategy) -> st.SearchStrategy[Any]:
    return _opt(**fields).map(lambda kwargs: cls(**kwargs))


resources = _build(Resource, attributes=attributes)
scopes = _build(InstrumentationScope, name=_names, version=st.sampled_from(["", "1.2", "2"]), attributes=attributes)
_schema = st.sampled_from(["", "https://opentelemetry.io/schemas/1.21.0"])
spans = _build(Span, trace_id=_ids, span_id=st.sampled_from([b"\x01" * 8, b"\x02" * 8]), name=_names, kind=_enums,
               attributes=attributes, status=_build(Status, code=_enums, message=st.sampled_from(["", "x"])))
log_records = _build(LogRecord, severity_number=_enums, event_name=_names, attributes=attributes, trace_id=_ids,
                     body=any_values)
_points = st.lists(_build(m.NumberDataPoint, as_int=st.integers(0, 5), attributes=attributes), max_size=3)
metrics = st.builds(lambda name, kind, points: m.Metric(name=name, **({kind: {"data_points": points}} if kind else {})),
                    _names, st.sampled_from([None, "gauge", "sum"]), _points)


def _requests(request: type, rtype: type, stype: type, resource_field: str, scope_field: str, items_field: str,
              items: st.SearchStrategy, least: int = 0) -> st.SearchStrategy[Any]:
    """`least`: at least one resource and scope, and that many items in each scope."""
    if not least:  # as the first corpus was made
        scope_x = _opt(scope=scopes, schema_url=_schema, **{items_field: st.lists(items, max_size=4)}).map(
            lambda kw: stype(**kw))
        resource_x = _opt(resource=resources, schema_url=_schema, **{scope_field: st.lists(scope_x, max_size=3)}).map(
            lambda kw: rtype(**kw))
        return st.lists(resource_x, max_size=3).map(lambda rs: request(**{resource_field: rs}))

    def lists(x: st.SearchStrategy, n: int) -> st.SearchStrategy:
        return st.lists(x, min_size=1, max_size=n)
    scope_x = _opt(scope=scopes, schema_url=_schema).flatmap(lambda kw: st.lists(
        items, min_size=least, max_size=max(4, least + 4)).map(lambda xs: stype(**kw, **{items_field: xs})))
    resource_x = _opt(resource=resources, schema_url=_schema).flatmap(lambda kw: lists(scope_x, 3).map(
        lambda ss: rtype(**kw, **{scope_field: ss})))
    return lists(resource_x, 3).map(lambda rs: request(**{resource_field: rs}))


REQUESTS = {
    "traces": _requests(ExportTraceServiceRequest, ResourceSpans, ScopeSpans, "resource_spans", "scope_spans",
                        "spans", spans),
    "logs": _requests(ExportLogsServiceRequest, ResourceLogs, ScopeLogs, "resource_logs", "scope_logs",
                      "log_records", log_records),
    "metrics": _requests(ExportMetricsServiceRequest, m.ResourceMetrics, m.ScopeMetrics, "resource_metrics",
                         "scope_metrics", "metrics", metrics),
}

# Expected values as YAML gives them: every scalar type, lists and mappings of them.
_expected_leaf = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.sampled_from(FLOATS),
                           st.booleans(), st.none(), st.sampled_from([2**70, 2.0**70, -(2**64)]))
expected_values = st.recursive(_expected_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "k"]), inner, max_size=2)), max_leaves=4)
_subjects = st.one_of(
    st.tuples(st.sampled_from(["attribute", "resource", "scope_attribute"]), st.sampled_from(KEYS)),
    st.tuples(st.just("scope"), st.sampled_from(["name", "version"])),
    st.tuples(st.just("span"), st.sampled_from(["name", "kind", "status"])),
    st.tuples(st.just("log"), st.sampled_from(["event_name", "severity"])),
    st.tuples(st.just("metric"), st.just("name")),
)
_names_or_enums = st.sampled_from(["server", "client", "internal", "ok", "error", "unset", 0, 1, 2, 3])


def _condition(subject: tuple[str, str], op: str, value: Any) -> dict[str, Any]:
    return {subject[0]: subject[1], op: value}


_operators = st.one_of(
    st.tuples(st.sampled_from(["equals", "not_equals"]), expected_values),
    st.tuples(st.just("in"), st.lists(expected_values, max_size=4)),
    st.tuples(st.just("prefix"), st.sampled_from(STRINGS)),
    st.tuples(st.just("regex"), st.sampled_from(["^chat", "gpt$", "a|b", "^$", "é", r"\d", "(?i)CHAT", "^.+$",
                                                  "gen_ai\\.", "[0-9]+\\.[0-9]"])),
    st.tuples(st.just("exists"), st.booleans()),
    st.tuples(st.sampled_from(["gt", "ge", "lt", "le"]), st.sampled_from([0, 1, 1.5, -1, 17, 2**53, 1e300])),
)


@st.composite
def conditions(draw: Any) -> dict[str, Any]:
    subject = draw(_subjects)
    op, value = draw(_operators)
    if subject[1] in ("kind", "status") and op in ("equals", "not_equals"):
        value = draw(_names_or_enums)
    elif subject[1] in ("kind", "status") and op == "in":
        value = draw(st.lists(_names_or_enums, max_size=3))
    return _condition(subject, op, value)


api_key_conditions = st.sampled_from([{"api_key": "prod"}, {"api_key": ""}, {"api_key": "x", "equals": "batch"},
                                     {"api_key": "x", "not_equals": "prod"}, {"api_key": "x", "prefix": "pr"},
                                     {"api_key": "x", "exists": True}, {"api_key": "x", "exists": False},
                                     {"api_key": "x", "in": ["prod", None]}])
rules = st.recursive(conditions() | api_key_conditions, lambda inner: st.one_of(
    st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
    st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
    inner.map(lambda x: {"not": x}),
), max_leaves=4)

DESTINATIONS = ("a", "b", "c")


@st.composite
def route_sets(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 5))
    routes = []
    for i in range(n):
        route: dict[str, Any] = {"name": f"r{i}",
                                 "destinations": draw(st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=3,
                                                               unique=True))}
        if draw(st.integers(0, 3)):
            route["match"] = draw(rules)
        if draw(st.booleans()):
            route["stop"] = True
        if draw(st.integers(0, 3)) == 0:
            route["signals"] = draw(st.lists(st.sampled_from(["traces", "logs", "metrics"]), min_size=1, unique=True))
        routes.append(route)
    if draw(st.booleans()):
        routes.append({"name": "fallback", "default": True,
                       "destinations": draw(st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=2,
                                                     unique=True))})
    return routes


allowed_sets = st.one_of(st.none(), st.lists(st.sampled_from(["r0", "r1", "r2", "r3", "fallback"]),
                                             unique=True).map(frozenset))
api_keys = st.sampled_from([None, "prod", "batch", ""])


# Requests of several items that rules tell apart, for requests that really split.
_small = st.sampled_from([AnyValue(string_value="a"), AnyValue(string_value="b"), AnyValue(int_value=1),
                          AnyValue(bool_value=True), AnyValue(double_value=1.0), AnyValue()])
_split_attrs = st.lists(st.builds(KeyValue, key=st.sampled_from(["k", "n", "event.name"]), value=_small), max_size=3)
_split_items = {
    "traces": _build(Span, name=st.sampled_from(["chat", "embed"]), kind=st.sampled_from([1, 2, 3]),
                     attributes=_split_attrs, trace_id=_ids),
    "logs": _build(LogRecord, event_name=st.sampled_from(["", "gen_ai.chat"]), severity_number=st.sampled_from([9, 17]),
                   attributes=_split_attrs, trace_id=_ids),
    "metrics": st.builds(lambda name, points: m.Metric(name=name, sum={"data_points": points}),
                         st.sampled_from(["chat", "embed"]), st.lists(_build(m.NumberDataPoint, as_int=st.just(1)),
                                                                      max_size=3)),
}
SPLIT_REQUESTS = {signal: _requests(*args, _split_items[signal], least=3) for signal, args in {
    "traces": (ExportTraceServiceRequest, ResourceSpans, ScopeSpans, "resource_spans", "scope_spans", "spans"),
    "logs": (ExportLogsServiceRequest, ResourceLogs, ScopeLogs, "resource_logs", "scope_logs", "log_records"),
    "metrics": (ExportMetricsServiceRequest, m.ResourceMetrics, m.ScopeMetrics, "resource_metrics", "scope_metrics",
                "metrics")}.items()}
split_rules = st.sampled_from([
    {"attribute": "k", "equals": "a"}, {"attribute": "k", "in": ["b", 1]}, {"attribute": "n", "exists": True},
    {"span": "name", "equals": "chat"}, {"span": "kind", "equals": "client"}, {"log": "event_name", "prefix": "gen_ai"},
    {"log": "severity", "ge": 17}, {"metric": "name", "regex": "^ch"}, {"attribute": "k", "equals": True},
    {"resource": "k", "exists": True}, {"scope": "name", "equals": "chat"},
])


@st.composite
def split_route_sets(draw: Any) -> list[dict[str, Any]]:
    routes = [{"name": f"r{i}", "destinations": [d], "match": draw(split_rules), **({"stop": True} if draw(st.booleans())
                                                                                   else {})}
              for i, d in enumerate(draw(st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=3)))]
    if draw(st.booleans()):
        routes.append({"name": "fallback", "default": True, "destinations": [draw(st.sampled_from(DESTINATIONS))]})
    return routes
