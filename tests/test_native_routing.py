"""Routing in the native core (otlp_router._native.Routes, select, item_keys; issue #17) against the
frozen behaviour of the former pure-Python routing and against a reference written here.

* Golden equivalence: every case of tests/golden/routing (made by tests/golden/make_routing.py with
  the Python routing before the port: test-style and bench requests, hypothesis requests of every
  signal with random rule sets, API keys and their allowed routes) takes the same routes per item,
  is counted the same (data points for metrics) and splits into requests that upb parses to the
  same messages, byte for byte once serialised; partitions (the workers' by trace id, the
  loadbalance destination's by trace id or service) give the same parts.
* Differential (hypothesis): random requests (odd values: bools beside equal ints and floats,
  bytes, arrays, kvlists, repeated and missing keys, empty strings, unicode) and rule sets, the
  core's route choices against `reference` below (Python's `==` on `value_of`); selection against
  a upb-built `select`; bytes written another way (fields out of order, messages given twice) read
  as upb merges them; arbitrary bytes refused as upb refuses them.
* Regular expressions: the regex crate's search, patterns it cannot compile refused at load.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otlp_router import _native
from otlp_router.destinations.loadbalance import HashRing
from otlp_router.model.attributes import set_value, value_of
from otlp_router.model.batch import Batch, partition, select
from otlp_router.model.signals import SIGNALS, Signal
from otlp_router.routing.table import RoutingTable
from otlp_router.settings import ConfigError
from tests import routing_cases as rc
from tests.test_native_privacy import _len as _varint  # a varint, as upb writes it

GOLDEN = Path(__file__).parent / "golden" / "routing"


_ALL = [json.loads(line) for path in sorted(GOLDEN.glob("*.jsonl")) for line in path.read_text().splitlines()]
ROUTE_CASES = [c for c in _ALL if "out" in c]
PARTITION_CASES = [c for c in _ALL if "parts" in c]


def _table(routes: list[dict]) -> RoutingTable:
    return RoutingTable.read("golden.yaml", routes, {d: frozenset(SIGNALS) for d in rc.DESTINATIONS})


def _batch(signal: str, wire: bytes, api_key: str | None = None, allowed: frozenset[str] | None = None) -> Batch:
    sig = SIGNALS[signal]
    items, _ = sig.inspect(sig.request_type.FromString(wire))
    batch = Batch(sig, None, items, wire, api_key_name=api_key)
    batch.allowed_routes = allowed
    return batch


def _canonical(batch: Batch) -> bytes:
    return batch.signal.request_type.FromString(batch.wire).SerializeToString(deterministic=True)


def test_the_golden_corpus_is_there_and_broad() -> None:
    assert len(ROUTE_CASES) > 1900 and len(PARTITION_CASES) > 250
    assert {c["signal"] for c in ROUTE_CASES} == set(SIGNALS)
    assert sum(any(not o[4] for o in c["out"]) for c in ROUTE_CASES) > 200   # requests that split
    assert sum(c["allowed"] is not None for c in ROUTE_CASES) > 300   # API keys with their routes
    assert sum(len(c["parts"]) > 1 for c in PARTITION_CASES) > 25


@pytest.mark.parametrize("case", ROUTE_CASES, ids=lambda c: f"{c['signal']}-{c['source'][:20]}")
def test_golden_routes_counts_and_splits(case: dict) -> None:
    table = _table(case["routes"])
    allowed = frozenset(case["allowed"]) if case["allowed"] is not None else None
    batch = _batch(case["signal"], base64.b64decode(case["wire"]), case["api_key"], allowed)
    # the golden choices were read off the request as the receiver's check leaves it (bad ids
    # removed), before the check that the key may take the default route
    sig = SIGNALS[case["signal"]]
    checked = sig.request_type.FromString(batch.wire)
    sig.inspect(checked)
    choices, groups, _ = table.choose(_batch(case["signal"], checked.SerializeToString(), case["api_key"], allowed))
    before = [() if c == (-1,) else c for c in choices]
    assert [[r.name for r in table.routes_of(case["signal"], before[g])] for g in groups] == case["choices"]
    counted: dict[str, int] = {}

    def count(b: Batch, counts: dict[tuple[int, ...], int]) -> None:
        for chosen, n in counts.items():
            key = ",".join(r.name for r in table.routes_of(case["signal"], chosen))
            counted[key] = counted.get(key, 0) + n

    table._count = count  # type: ignore[method-assign]
    out = [[dest, base64.b64encode(_canonical(b)).decode(), b.items, [r.name for r in via], b is batch]
           for dest, b, via in table.route(batch)]
    assert out == case["out"]
    assert counted == case["counts"]


@pytest.mark.parametrize("case", PARTITION_CASES, ids=lambda c: f"{c['signal']}-{c['by']}")
def test_golden_partitions(case: dict) -> None:
    batch = _batch(case["signal"], base64.b64decode(case["wire"]))
    if case["by"] == "trace_id":
        parts = partition(batch, "trace_id", HashRing([f"worker-{k}" for k in range(3)]).owner)
    else:
        by = "service" if case["by"] == "lb-service" else "trace_id_or_service"
        parts = partition(batch, by, HashRing(["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"]).owner)
    got = {str(k): [base64.b64encode(_canonical(b)).decode(), b.items, b is batch] for k, b in sorted(parts.items())}
    assert got == case["parts"]


# --- the reference: match.py's semantics on upb messages, written out plainly ---------------------

def _dict(kvs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in kvs}


def _subject(tree: tuple, rs: Any, ss: Any, item: Any, signal: str, api_key: str | None) -> Any:
    _, subject, what, _, _ = tree
    attrs = _dict(item.attributes) if signal != "metrics" else {}
    if subject == "attribute":
        return attrs.get(what)
    if subject == "resource":
        return _dict(rs.resource.attributes).get(what)
    if subject == "scope_attribute":
        return _dict(ss.scope.attributes).get(what)
    if subject == "scope":
        return getattr(ss.scope, what)
    if subject == "api_key":
        return api_key
    if what in ("name", "event_name"):
        if signal == "logs":
            return item.event_name or str(attrs.get("event.name") or "")
        return item.name
    if what == "kind":
        return item.kind if signal == "traces" else 0
    if what == "status":
        return item.status.code if signal == "traces" else 0
    return item.severity_number if signal == "logs" else 0


def _holds(tree: tuple, value: Any) -> bool:
    op, expected = tree[3], tree[4]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {
        "equals": lambda: value is not None and value == expected,
        "not_equals": lambda: value != expected,
        "in": lambda: value is not None and any(value == e for e in expected),
        "prefix": lambda: isinstance(value, str) and value.startswith(expected),
        "regex": lambda: isinstance(value, str) and re.search(expected, value) is not None,
        "exists": lambda: (value is not None) == expected,
        "gt": lambda: is_number and float(value) > expected,
        "ge": lambda: is_number and float(value) >= expected,
        "lt": lambda: is_number and float(value) < expected,
        "le": lambda: is_number and float(value) <= expected,
    }[op]()


def _matches(tree: tuple, *item: Any) -> bool:
    if tree[0] == "all":
        return all(_matches(t, *item) for t in tree[1])
    if tree[0] == "any":
        return any(_matches(t, *item) for t in tree[1])
    if tree[0] == "not":
        return not _matches(tree[1], *item)
    return _holds(tree, _subject(tree, *item))


def reference(table: RoutingTable, signal: Signal, message: Message, api_key: str | None,
              allowed: frozenset[str] | None) -> list[list[str]]:
    """Per item, the names of the routes it takes."""
    out = []
    for rs in getattr(message, signal.resource_field):
        for ss in getattr(rs, signal.scope_field):
            for item in getattr(ss, signal.items_field):
                chosen = []
                for route in table.routes:
                    if signal.name not in route.signals or (allowed is not None and route.name not in allowed):
                        continue
                    if route.match is None or _matches(route.match.tree, rs, ss, item, signal.name, api_key):
                        chosen.append(route.name)
                        if route.stop:
                            break
                if not chosen and table.default is not None and signal.name in table.default.signals and (
                        allowed is None or table.default.name in allowed):
                    chosen = [table.default.name]
                out.append(chosen)
    return out


def _names(table: RoutingTable, signal: str, batch: Batch) -> list[list[str]]:
    choices, groups, _ = table.choose(batch)
    return [[r.name for r in table.routes_of(signal, choices[g])] for g in groups]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), signal=st.sampled_from(list(SIGNALS)))
def test_the_core_takes_the_routes_the_reference_takes(data: st.DataObject, signal: str) -> None:
    try:
        table = _table(data.draw(rc.route_sets()))
    except ConfigError:
        return
    request = data.draw(rc.REQUESTS[signal])
    api_key, allowed = data.draw(rc.api_keys), data.draw(rc.allowed_sets)
    wire = request.SerializeToString()
    batch = _batch(signal, wire, api_key, allowed)
    assert _names(table, signal, batch) == reference(table, SIGNALS[signal], request, api_key, allowed)


_ODD = [None, True, False, 0, 1, -1, 1.0, 0.0, 2**53, float(2**53), 2**53 + 1, 2**63, 2.0**63, 2**70, 2.0**70,
        math.nan, math.inf, "", "1", "True", b"", b"a", [], [1], [True], [1.0], ["a", None], {}, {"a": 1},
        {"a": True}, {"a": [1]}, {1: "a"}]


@pytest.mark.parametrize("expected", _ODD, ids=repr)
@pytest.mark.parametrize("op", ["equals", "not_equals", "in"])
def test_python_equality_of_odd_values(expected: Any, op: str) -> None:
    """True == 1 == 1.0, exact int / float comparison, NaN equal to nothing, lists and dicts
    compared element-wise, bytes never equal to str: the core's `==` is Python's."""
    if expected is None and op != "in":
        return  # `equals: null` reads as a missing operator
    table = _table([{"name": "r", "destinations": ["a"], "match": {"attribute": "k", op: [expected] if op == "in"
                                                                    else expected}}])
    signal = SIGNALS["traces"]
    values = [v for v in _ODD if not (isinstance(v, dict) and any(not isinstance(k, str) for k in v))
              and not (isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**63)]
    request = signal.request_type()
    spans = request.resource_spans.add().scope_spans.add().spans
    for v in values:
        span = spans.add(name="s")
        set_value(span.attributes.add(key="k").value, v)
    spans.add(name="missing")
    batch = _batch("traces", request.SerializeToString())
    assert _names(table, "traces", batch) == reference(table, signal, request, None, None)


# --- selection -----------------------------------------------------------------------------------

def upb_select(signal: Signal, message: Message, keep: list[bool]) -> Message:
    """The former batch.select: a new message of the kept items with their resource and scope."""
    out = type(message)()
    flags = iter(keep)
    for rs in getattr(message, signal.resource_field):
        new_rs = None
        for ss in getattr(rs, signal.scope_field):
            kept = [item for item in getattr(ss, signal.items_field) if next(flags)]
            if not kept:
                continue
            if new_rs is None:
                new_rs = getattr(out, signal.resource_field).add()
                new_rs.resource.CopyFrom(rs.resource)
                new_rs.schema_url = rs.schema_url
            new_ss = getattr(new_rs, signal.scope_field).add()
            new_ss.scope.CopyFrom(ss.scope)
            new_ss.schema_url = ss.schema_url
            getattr(new_ss, signal.items_field).extend(kept)
    return out


def _count(signal: Signal, message: Message) -> int:
    return sum(signal.weight(i) if signal.weight else 1 for rs in getattr(message, signal.resource_field)
               for ss in getattr(rs, signal.scope_field) for i in getattr(ss, signal.items_field))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), signal=st.sampled_from(list(SIGNALS)))
def test_selection_is_what_upb_select_builds(data: st.DataObject, signal: str) -> None:
    sig = SIGNALS[signal]
    request = data.draw(rc.REQUESTS[signal])
    n = sum(1 for rs in getattr(request, sig.resource_field) for ss in getattr(rs, sig.scope_field)
            for _ in getattr(ss, sig.items_field))
    keep = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    got = select(_batch(signal, request.SerializeToString()), keep)
    want = upb_select(sig, request, keep)
    assert sig.request_type.FromString(got.wire) == want
    assert _canonical(got) == want.SerializeToString(deterministic=True)
    assert got.items == _count(sig, want)


def _rewritten(message: Message, rng: random.Random) -> bytes:
    """The message's bytes as another encoder may write them: each level's fields in random order
    (a list keeps its order), and every singular sub-message (resource, scope, status) given as
    two occurrences that upb merges back."""
    parts: list[bytes] = []
    fields = list(message.ListFields())
    rng.shuffle(fields)
    for field, value in fields:
        for v in (value if field.is_repeated else [value]):
            if field.message_type is None:
                single = type(message)()
                getattr(single, field.name).append(v) if field.is_repeated else setattr(single, field.name, v)
                parts.append(single.SerializeToString())
                continue
            body = _rewritten(v, rng)
            halves = [body]
            if not field.is_repeated and len(v.ListFields()) > 1:
                first = type(v)()
                name, inner = v.ListFields()[0][0].name, v.ListFields()[0][1]
                getattr(first, name).extend(inner) if v.ListFields()[0][0].is_repeated else (
                    getattr(first, name).CopyFrom(inner) if v.ListFields()[0][0].message_type else setattr(first, name, inner))
                rest = type(v)()
                rest.CopyFrom(v)
                rest.ClearField(name)
                halves = [first.SerializeToString(), rest.SerializeToString()]
            parts += [_varint(field.number << 3 | 2) + _varint(len(h)) + h for h in halves]
    return b"".join(parts)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), signal=st.sampled_from(list(SIGNALS)), seed=st.integers(0, 2**32))
def test_bytes_written_another_way_route_and_select_as_upb_reads_them(data: st.DataObject, signal: str,
                                                                      seed: int) -> None:
    sig = SIGNALS[signal]
    try:
        table = _table(data.draw(rc.route_sets()))
    except ConfigError:
        return
    request = data.draw(rc.REQUESTS[signal])
    wire = _rewritten(request, random.Random(seed))
    message = sig.request_type.FromString(wire)
    assert message == request
    batch = _batch(signal, wire)
    assert _names(table, signal, batch) == reference(table, sig, message, None, None)
    n = sum(1 for rs in getattr(message, sig.resource_field) for ss in getattr(rs, sig.scope_field)
            for _ in getattr(ss, sig.items_field))
    keep = [i % 2 == 0 for i in range(n)]
    assert sig.request_type.FromString(select(batch, keep).wire) == upb_select(sig, message, keep)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(signal=st.sampled_from(list(SIGNALS)), junk=st.binary(max_size=64))
def test_damaged_bytes_never_crash_and_what_upb_reads_routes_as_its_message(signal: str, junk: bytes) -> None:
    """Arbitrary bytes: the core reads only what rules look at (the receiver's intake check, or
    upb, vouched for a batch's bytes before it is routed; the spool keeps those bytes). Bytes it
    refuses go to upb: its DecodeError, as before, or (bytes upb takes) the core reads upb's
    canonical serialisation; bytes upb takes route as their message does."""
    table = _table([{"name": "r", "destinations": ["a"], "match": {"attribute": "k", "exists": True}},
                    {"name": "d", "default": True, "destinations": ["b"]}])
    sig = SIGNALS[signal]
    batch = Batch(sig, None, 1, junk)
    try:
        message = sig.request_type.FromString(junk)
    except DecodeError:
        try:
            table.choose(batch)
        except DecodeError:
            pass
        return
    clean = _batch(signal, message.SerializeToString())
    assert _names(table, signal, batch) == _names(table, signal, clean)


# --- regular expressions --------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, problem", [
    ("(?=chat)", "look-around"), ("(?<!a)b", "look-around"), (r"(a)\1", "backreferences"),
])
def test_patterns_the_core_cannot_compile_are_refused_at_load(pattern: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        _table([{"name": "r", "destinations": ["a"], "match": {"span": "name", "regex": pattern}}])
    message = str(err.value)
    assert message.startswith(f"golden.yaml: routes[0].match.regex: invalid regular expression {pattern!r}: ")
    assert problem in message


@pytest.mark.parametrize("pattern, text, hit", [
    ("^chat", "chat gpt", True), ("gpt$", "chat gpt", True), ("gpt$", "chat gpt\n", True),   # Python's $
    ("gpt$", "gpt\nx", False), (r"\d+", "٣", True), ("(?i)CHAT", "chat", True), ("é", "café", True),
    ("^$", "", True), ("a|b", "xyz", False),
])
def test_regex_is_a_search_as_in_python(pattern: str, text: str, hit: bool) -> None:
    table = _table([{"name": "r", "destinations": ["a"], "match": {"span": "name", "regex": pattern}}])
    request = SIGNALS["traces"].request_type()
    request.resource_spans.add().scope_spans.add().spans.add(name=text)
    batch = _batch("traces", request.SerializeToString())
    assert (_names(table, "traces", batch) == [["r"]]) is hit is (re.search(pattern, text) is not None)


def test_the_rules_are_compiled_once_per_table() -> None:
    table = _table([{"name": "r", "destinations": ["a"], "match": {"attribute": "k", "exists": True}}])
    assert isinstance(table._native, _native.Routes) and len(table._native) == 1
