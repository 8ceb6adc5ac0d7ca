"""Privacy in the native core (otlp_router._native.Privacy, issue #17) against the frozen behaviour
of the former pure-Python privacy and against a reference written here.

* Golden equivalence: every case of tests/golden/privacy (made by tests/golden/make_privacy.py
  with the Python privacy before the port: GenAI fixtures, their events as log records, the
  bench payload, hypothesis requests of every signal) is reproduced byte for byte, on the wire
  (`strip_wire`) and on a message (`strip_content`), with the same count.
* Differential (hypothesis): random requests of every signal, with keys drawn from the table and
  arbitrary ones, against `reference` below (Table's sets read directly, genai.classify
  uncached), for the shipped table and for one with a user convention; the core's decisions per
  key against `Table.decide`; requests written by other encoders (fields in another order, value
  fields split in two) parse to what upb makes of the reference.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_router import _native
from otlp_router.model import conventions
from otlp_router.model.attributes import set_value, value_of
from otlp_router.model.conventions import MODEL_CALL_TYPES, Table
from otlp_router.model.genai import classify
from otlp_router.model.signals import SIGNALS, Signal
from otlp_router.routing import privacy
from otlp_router.routing.privacy import strip_content, strip_wire
from otlp_router.settings import Section
from tests.privacy_cases import STRATEGIES, keys

GOLDEN = Path(__file__).parent / "golden" / "privacy"
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _golden() -> list[dict]:
    return [json.loads(line) for f in sorted(GOLDEN.glob("*.jsonl")) for line in f.read_text().splitlines()]


GOLDEN_CASES = _golden()


def test_the_golden_corpus_is_there_and_broad() -> None:
    sources = {c["source"].split(":")[0] for c in GOLDEN_CASES}
    assert {"fixture", "fixture-events", "bench", "hypothesis"} <= sources
    assert {c["signal"] for c in GOLDEN_CASES} == {"traces", "logs", "metrics"}
    assert sum(c["removed"] > 0 for c in GOLDEN_CASES) > 300


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[c["source"] for c in GOLDEN_CASES])
def test_golden_privacy_byte_for_byte(case: dict) -> None:
    signal = SIGNALS[case["signal"]]
    wire, expected = base64.b64decode(case["wire"]), base64.b64decode(case["expected"])
    stripped = strip_wire(wire, signal)
    got, removed = (wire, 0) if stripped is None else stripped
    assert (got, removed) == (expected, case["removed"])
    message = signal.request_type.FromString(wire)
    assert strip_content(message, signal) == case["removed"]
    assert message.SerializeToString(deterministic=True) == expected


# ---------------------------------------------------------------------------------------------
# The reference: privacy as its README paragraph says, on upb messages
# ---------------------------------------------------------------------------------------------

def reference(message: Message, signal: Signal, table: Table) -> int:
    def content(k: str) -> bool:
        return k in table.content_keys or (k.startswith(table.content_prefixes) and k not in table.not_content)

    def kept(k: str) -> bool:
        return not content(k) and (k in table.keep_keys or k.startswith(table.keep_prefixes))

    def strip(attributes: Any, drop: Any) -> int:
        gone = [i for i, kv in enumerate(attributes) if drop(kv.key)]
        for i in reversed(gone):
            del attributes[i]
        return len(gone)

    removed = 0
    for rs in getattr(message, signal.resource_field):
        typed_resource = {kv.key: value_of(kv.value) for kv in rs.resource.attributes if kv.key in table.type_keys}
        rule_resource = {kv.key: value_of(kv.value) for kv in rs.resource.attributes if kv.key in table.resource_keys}
        removed += strip(rs.resource.attributes, content)
        for ss in getattr(rs, signal.scope_field):
            for item in getattr(ss, signal.items_field):
                if signal.name == "traces":
                    drop = content
                    typed = {kv.key: value_of(kv.value) for kv in item.attributes if kv.key in table.type_keys}
                    if (any(not kept(kv.key) and not content(kv.key) for kv in item.attributes)
                            and (typed or typed_resource)
                            and classify({**typed_resource, **typed}, item.name, ss.scope.name, ss.scope.version,
                                         rule_resource, table) in MODEL_CALL_TYPES):
                        def drop(k: str) -> bool:
                            return not kept(k)
                    lost = [(kv.key, kv.value.SerializeToString()) for kv in item.attributes
                            if drop(kv.key) and kv.key in table.salvage]
                    extra = privacy._salvage(lost, {kv.key for kv in item.attributes}, table, ss.scope.name) \
                        if lost else []
                    removed += strip(item.attributes, drop)
                    for kv in extra:
                        item.attributes.add().MergeFromString(kv)
                    events = [e for e in item.events if e.name not in table.content_events]
                    removed += len(item.events) - len(events)
                    del item.events[:]
                    item.events.extend(events)
                    for e in item.events:
                        removed += strip(e.attributes, content)
                    continue
                for attributes in signal.attribute_lists(item):
                    removed += strip(attributes, content)
                if signal.name == "logs":
                    name = item.event_name or next(
                        (kv.value.string_value for kv in item.attributes if kv.key == "event.name"), "")
                    if name in table.content_events and item.HasField("body"):
                        item.ClearField("body")
                        removed += 1
    return removed


USER = [{"name": "acme-sdk",
         "fields": {"model": [{"key": "acme.llm.model", "priority": 1}],
                    "input": [{"key": "acme.llm.request", "priority": 1}],
                    "usage.input": [{"key": "acme.llm.tokens_in", "priority": 1}],
                    "metadata": [{"prefix": "acme.meta.", "priority": 1, "read": "flat"}]},
         "types": [{"priority": 1, "key": "acme.kind", "values": {"llm": "GENERATION"}}],
         "content": {"keys": ["acme.llm.system"], "prefixes": ["acme.secret.", "gen_ai.usage.secret"],
                     "not": ["acme.secret.ok"], "events": ["acme.message"]},
         "keep": {"keys": ["request_data.kept"], "prefixes": ["acme.keep."]}}]


def _user_table() -> Table:
    top = Section({"conventions": USER}, "router.yaml", "genai")
    return conventions.build(conventions.read(top))


TABLES = {"shipped": conventions.active, "user": _user_table}


@pytest.fixture(params=sorted(TABLES))
def table(request: Any) -> Iterator[Table]:
    before = conventions.active()
    t = TABLES[request.param]()
    conventions.install(t)
    yield t
    conventions.install(before)


acme_keys = keys | st.sampled_from(["acme.llm.model", "acme.llm.request", "acme.llm.tokens_in", "acme.meta.team",
                                    "acme.kind", "acme.llm.system", "acme.secret.x", "acme.secret.ok",
                                    "acme.keep.y", "acme.other", "request_data.kept"])


def _check(message: Message, signal: Signal, table: Table) -> None:
    wire = message.SerializeToString(deterministic=True)
    expected = signal.request_type.FromString(wire)
    removed = reference(expected, signal, table)
    stripped = strip_wire(wire, signal)
    if stripped is None:
        assert removed == 0
        assert expected.SerializeToString(deterministic=True) == wire
    else:
        assert (stripped[0], stripped[1]) == (expected.SerializeToString(deterministic=True), removed)


@FAST
@given(data=st.data())
def test_the_core_agrees_with_the_reference_for_random_requests(table: Table, data: st.DataObject) -> None:
    signal = data.draw(st.sampled_from(sorted(STRATEGIES)))
    message = data.draw(STRATEGIES[signal])
    if table.convention_of("acme-sdk") is not None:   # the user table: its own keys on some items too
        for item in _items(message, SIGNALS[signal]):
            for attributes in _attribute_lists(item, SIGNALS[signal]):
                for key in data.draw(st.lists(acme_keys, max_size=3)):
                    set_value(attributes.add(key=key).value, data.draw(st.sampled_from(["llm", "x", "", 3])))
            if signal == "traces" and data.draw(st.booleans()):
                item.events.add(name="acme.message").attributes.add(key="acme.secret.x").value.string_value = "s"
    _check(message, SIGNALS[signal], table)


def _items(message: Message, signal: Signal) -> Iterator[Any]:
    for rs in getattr(message, signal.resource_field):
        for ss in getattr(rs, signal.scope_field):
            yield from getattr(ss, signal.items_field)


def _attribute_lists(item: Any, signal: Signal) -> tuple[Any, ...]:
    return signal.attribute_lists(item)


@FAST
@given(key=acme_keys)
def test_the_core_decides_every_key_as_the_table_does(table: Table, key: str) -> None:
    assert privacy._compiled(table).decide(key) == Table.decide(table, key)


# ---------------------------------------------------------------------------------------------
# Bytes from other encoders: the same message as upb makes of the reference's result
# ---------------------------------------------------------------------------------------------

def _fields(b: bytes) -> list[tuple[int, bytes]]:
    """(field number, the field's whole bytes) of a message."""
    out, i = [], 0
    while i < len(b):
        start = i
        tag, i = _varint(b, i)
        wire = tag & 7
        if wire == 0:
            _, i = _varint(b, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            n, i = _varint(b, i)
            i += n
        out.append((tag >> 3, b[start:i]))
    return out


def _varint(b: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        x = b[i]
        i += 1
        result |= (x & 0x7F) << shift
        if x < 0x80:
            return result, i
        shift += 7


def _shuffled(message: Message, rnd: random.Random) -> bytes:
    """The message with the fields of every submessage in random order (repeated fields keep
    their relative order: that is the list's order), as another encoder may write it."""
    out = b""
    fields = list(message.ListFields())
    rnd.shuffle(fields)
    for field, value in fields:
        values = value if field.is_repeated else [value]
        for v in values:
            if field.message_type is not None:
                body = _shuffled(v, rnd)
                out += _tag(field.number, 2) + _len(len(body)) + body
            else:
                single = type(message)()
                if field.is_repeated:
                    getattr(single, field.name).append(v)
                else:
                    setattr(single, field.name, v)
                out += single.SerializeToString()
    return out


def _tag(number: int, wire: int) -> bytes:
    return _len(number << 3 | wire)


def _len(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@FAST
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_bytes_in_another_field_order_give_the_same_message(data: st.DataObject, seed: int) -> None:
    signal = SIGNALS[data.draw(st.sampled_from(sorted(STRATEGIES)))]
    message = data.draw(STRATEGIES[signal.name])
    table = conventions.active()
    wire = _shuffled(message, random.Random(seed))
    assert signal.request_type.FromString(wire) == message
    expected = signal.request_type.FromString(wire)
    removed = reference(expected, signal, table)
    stripped = strip_wire(wire, signal)
    got, count = (wire, 0) if stripped is None else stripped
    assert (signal.request_type.FromString(got), count) == (expected, removed)


def test_a_value_given_twice_merges_as_upb_merges_it() -> None:
    """A KeyValue whose value field occurs twice: the type rules see upb's merged value."""
    span = b"".join([
        _tag(1, 2) + _len(16) + b"\x01" * 16, _tag(2, 2) + _len(8) + b"\x02" * 8,
        _attr(b"gen_ai.operation.name", _tag(3, 0) + b"\x05", _tag(1, 2) + _len(4) + b"chat"),
        _attr(b"my.prompt", _tag(1, 2) + _len(6) + b"secret"),
        _attr(b"gen_ai.request.model", _tag(1, 2) + _len(1) + b"m"),
    ])
    wire = _tag(1, 2) + _len(len(span) + 4) + _tag(2, 2) + _len(len(span) + 2) + _tag(2, 2) + _len(len(span)) + span
    expected = ExportTraceServiceRequest.FromString(wire)
    removed = reference(expected, SIGNALS["traces"], conventions.active())
    got, count = strip_wire(wire, SIGNALS["traces"])
    assert removed == 1 and (ExportTraceServiceRequest.FromString(got), count) == (expected, 1)


def _attr(key: bytes, *values: bytes) -> bytes:
    kv = _tag(1, 2) + _len(len(key)) + key + b"".join(_tag(2, 2) + _len(len(v)) + v for v in values)
    return _tag(9, 2) + _len(len(kv)) + kv


def test_a_request_without_content_is_left_as_it_is() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="x").attributes.add(key="a").value.int_value = 1
    assert strip_wire(request.SerializeToString(), SIGNALS["traces"]) is None


def test_damaged_bytes_are_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="invalid protobuf for traces"):
        strip_wire(b"\x0a\x05\x12\x03", SIGNALS["traces"])


def test_the_core_is_built_once_per_table() -> None:
    table = conventions.active()
    assert privacy._compiled(table) is privacy._compiled(table)
    assert isinstance(privacy._compiled(table), _native.Privacy)
