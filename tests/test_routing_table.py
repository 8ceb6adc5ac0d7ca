"""The routing table: per-span decisions, stop, default, unrouted, fan-out and splitting."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings, strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_router import config
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.routing.table import RoutingTable
from otlp_router.settings import ConfigError


def _table(routes: list[dict[str, Any]], destinations: tuple[str, ...] = ("a", "b", "c")) -> RoutingTable:
    return RoutingTable.read("test.yaml", routes, {d: frozenset({"traces", "logs", "metrics"}) for d in destinations})


def _span(name: str, attrs: dict[str, Any], i: int) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"bool_value": v}
        if isinstance(v, int):
            return {"int_value": v}
        if isinstance(v, float):
            return {"double_value": v}
        return {"string_value": v}
    return {"trace_id": b"\x01" * 16, "span_id": (i + 1).to_bytes(8, "big"), "name": name, "kind": 3,
            "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()]}


def _batch(spans: list[tuple[str, dict[str, Any]]], service: str = "svc") -> Batch:
    request = ExportTraceServiceRequest(resource_spans=[{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": service}}]},
        "scope_spans": [{"scope": {"name": "openai.instrumentation", "version": "1.2"},
                         "spans": [_span(n, a, i) for i, (n, a) in enumerate(spans)]}]}])
    return Batch(TRACES, request, len(spans))


def _names(batch: Batch) -> list[str]:
    return [s.name for rs in batch.message.resource_spans for ss in rs.scope_spans for s in ss.spans]


def _result(table: RoutingTable, batch: Batch) -> dict[str, list[str]]:
    return {dest: _names(b) for dest, b, _ in table.route(batch)}


def test_routes_without_match_take_everything_and_pass_the_request_as_is() -> None:
    table = _table([{"name": "r1", "destinations": ["a"]}, {"name": "r2", "destinations": ["b"]}])
    batch = _batch([("x", {}), ("y", {})])
    routed = table.route(batch)
    assert [d for d, _, _ in routed] == ["a", "b"] and all(b is batch for _, b, _ in routed)


def test_a_span_goes_to_every_matching_route() -> None:
    table = _table([
        {"name": "contracts", "match": {"attribute": "trace.metadata.document_type", "equals": "contract"},
         "destinations": ["a"]},
        {"name": "all", "destinations": ["b"]},
    ])
    result = _result(table, _batch([("c", {"trace.metadata.document_type": "contract"}), ("o", {})]))
    assert result == {"a": ["c"], "b": ["c", "o"]}


def test_stop_ends_routing_at_the_first_matching_route() -> None:
    table = _table([
        {"name": "first", "match": {"span": "name", "prefix": "chat"}, "destinations": ["a"], "stop": True},
        {"name": "rest", "destinations": ["b"]},
    ])
    assert _result(table, _batch([("chat gpt", {}), ("db", {})])) == {"a": ["chat gpt"], "b": ["db"]}


def test_unmatched_spans_go_to_the_default_route() -> None:
    table = _table([
        {"name": "llm", "match": {"attribute": "gen_ai.request.model", "exists": True}, "destinations": ["a"]},
        {"name": "fallback", "default": True, "destinations": ["c"]},
    ])
    assert _result(table, _batch([("g", {"gen_ai.request.model": "x"}), ("h", {})])) == {"a": ["g"], "c": ["h"]}


def test_unmatched_spans_without_default_are_counted_as_unrouted() -> None:
    from otlp_router import telemetry
    table = _table([{"name": "llm", "match": {"span": "name", "equals": "nope"}, "destinations": ["a"]}])
    before = telemetry.unrouted.labels("traces")._value.get()
    assert table.route(_batch([("x", {}), ("y", {})])) == []
    assert telemetry.unrouted.labels("traces")._value.get() == before + 2


def test_resource_scope_kind_and_status_rules() -> None:
    table = _table([
        {"name": "svc", "match": {"resource": "service.name", "in": ["checkout", "svc"]}, "destinations": ["a"]},
        {"name": "scope", "match": {"scope": "name", "regex": "^openai\\."}, "destinations": ["b"]},
        {"name": "kind", "match": {"not": {"span": "kind", "equals": "client"}}, "destinations": ["c"]},
    ])
    assert _result(table, _batch([("x", {})])) == {"a": ["x"], "b": ["x"]}


def test_numeric_and_composite_rules() -> None:
    table = _table([
        {"name": "big", "match": {"all": [{"attribute": "tokens", "gt": 1000},
                                          {"any": [{"attribute": "env", "equals": "prod"},
                                                   {"attribute": "env", "prefix": "stag"}]}]},
         "destinations": ["a"]},
        {"name": "rest", "default": True, "destinations": ["b"]},
    ])
    spans = [("p", {"tokens": 5000, "env": "prod"}), ("s", {"tokens": 2000, "env": "staging"}),
             ("small", {"tokens": 10, "env": "prod"}), ("text", {"tokens": "5000", "env": "prod"})]
    assert _result(table, _batch(spans)) == {"a": ["p", "s"], "b": ["small", "text"]}


def test_split_requests_keep_resource_and_scope() -> None:
    table = _table([{"name": "x", "match": {"span": "name", "equals": "x"}, "destinations": ["a"]},
                    {"name": "y", "match": {"span": "name", "equals": "y"}, "destinations": ["b"]}])
    routed = {d: b for d, b, _ in table.route(_batch([("x", {}), ("y", {})], service="checkout"))}
    for batch in routed.values():
        rs = batch.message.resource_spans[0]
        assert rs.resource.attributes[0].value.string_value == "checkout"
        assert rs.scope_spans[0].scope.name == "openai.instrumentation"
        assert batch.items == 1


@pytest.mark.parametrize("route, path, problem", [
    ({"name": "r", "destinations": ["zzz"]}, "routes[0].destinations[0]", "unknown destination 'zzz'"),
    ({"name": "r", "destinations": ["a"], "match": {"attribute": "k", "like": "x"}}, "routes[0].match.like",
     "unknown operator"),
    ({"name": "r", "destinations": ["a"], "match": {"attribute": "k", "regex": "("}}, "routes[0].match.regex",
     "invalid regular expression"),
    ({"name": "r", "destinations": ["a"], "match": {"all": [{"span": "colour", "equals": 1}]}},
     "routes[0].match.all[0].span", "expected one of name, kind, status"),
    ({"name": "r", "destinations": ["a"], "match": {"span": "kind", "equals": "sideways"}},
     "routes[0].match.equals", "expected one of"),
    ({"name": "r", "destinations": ["a"], "match": {"attribute": "n", "gt": "many"}}, "routes[0].match.gt",
     "expected a number"),
    ({"name": "r", "destinations": []}, "routes[0].destinations", "at least one destination"),
])
def test_bad_routes_fail_with_the_key_path(route: dict[str, Any], path: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        _table([route])
    assert err.value.path == path and problem in err.value.problem


def test_bad_route_in_a_config_file_fails_at_load() -> None:
    text = yaml.safe_dump({"routes": [{"name": "r", "destinations": ["out"], "match": {"attribute": "k", "nope": 1}}],
                          "destinations": {"out": {"type": "discard"}}})
    with pytest.raises(ConfigError) as err:
        config.parse(text, "router.yaml")
    assert str(err.value).startswith("router.yaml: routes[0].match.nope: unknown operator")


# Property: for random spans and rule sets, each span reaches exactly the
# destinations its matching routes name, once per destination.

_VALUES = st.sampled_from(["a", "b", "c"])
_SPANS = st.lists(st.tuples(st.sampled_from(["chat", "embed", "tool"]),
                            st.dictionaries(st.sampled_from(["k1", "k2"]), _VALUES, max_size=2)),
                  min_size=1, max_size=12)
_CONDITION = st.one_of(
    st.builds(lambda k, v: {"attribute": k, "equals": v}, st.sampled_from(["k1", "k2"]), _VALUES),
    st.builds(lambda k: {"attribute": k, "exists": True}, st.sampled_from(["k1", "k2"])),
    st.builds(lambda n: {"span": "name", "equals": n}, st.sampled_from(["chat", "embed", "tool"])),
)
_ROUTES = st.lists(st.tuples(st.one_of(st.none(), _CONDITION),
                             st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
                             st.booleans()), min_size=1, max_size=5)


def _expected(routes: list[tuple[Any, list[str], bool]], name: str, attrs: dict[str, Any]) -> set[str]:
    def matches(cond: Any) -> bool:
        if cond is None:
            return True
        if "span" in cond:
            return name == cond["equals"]
        if "exists" in cond:
            return cond["attribute"] in attrs
        return attrs.get(cond["attribute"]) == cond["equals"]
    out: set[str] = set()
    for cond, dests, stop in routes:
        if matches(cond):
            out |= set(dests)
            if stop:
                break
    return out


@settings(max_examples=200, deadline=None)
@given(spans=_SPANS, routes=_ROUTES)
def test_every_span_reaches_exactly_its_destinations_once(spans, routes) -> None:
    table = _table([{"name": f"r{i}", "destinations": d, "stop": s, **({"match": c} if c else {})}
                    for i, (c, d, s) in enumerate(routes)])
    named = [(f"{n}#{i}", a) for i, (n, a) in enumerate(spans)]
    batch = _batch([(n.split("#")[0], a) for n, a in named])
    got: dict[str, list[int]] = {}
    for dest, b, _ in table.route(batch):
        ids = [int.from_bytes(s.span_id, "big") - 1 for rs in b.message.resource_spans
               for ss in rs.scope_spans for s in ss.spans]
        assert b.items == len(ids)
        got[dest] = ids
    for i, (name, attrs) in enumerate(spans):
        want = _expected(routes, name, attrs)
        reached = {d for d, ids in got.items() if i in ids}
        assert reached == want, (i, name, attrs)
    for ids in got.values():
        assert len(ids) == len(set(ids))  # never twice to one destination
