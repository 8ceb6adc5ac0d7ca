"""Shaping on the wire (native/src/shaping): the golden corpus of the former Python transforms
(tests/golden/make_shaping.py) reproduced byte for byte, and hypothesis differential tests
against small references of those transforms written here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_router import _native
from otlp_router.model.attributes import set_value, value_of
from otlp_router.model.batch import Batch
from otlp_router.model.signals import SIGNALS, TRACES, Signal
from otlp_router.routing.actions import AttributeActions
from otlp_router.routing.redaction import BUILTIN_PATTERNS, Redaction
from otlp_router.routing.sampling import Sampling
from otlp_router.routing.shaping import Shaping
from otlp_router.settings import Section
from proto_tests.test_otlp_json import texts
from tests.shaping_cases import ACTIONS, REDACTION, SAMPLING, STRATEGIES, secret_text

GOLDEN = Path(__file__).resolve().parent / "golden" / "shaping"


def _load(name: str) -> list[dict[str, Any]]:
    with open(GOLDEN / f"{name}.jsonl") as f:
        return [json.loads(line) for line in f]


REQUESTS = {r["id"]: r for r in _load("requests")}


def _shaping(key: str, config: Any) -> Shaping:
    return Shaping.read(Section({key: config}, "golden.yaml", "destinations.d"))


def _golden(name: str, key: str) -> None:
    cases = _load(name)
    assert cases
    for case in cases:
        request = REQUESTS[case["request"]]
        wire = base64.b64decode(request["wire"])
        signal = SIGNALS[request["signal"]]
        batch = Batch(signal, None, 1000, wire)
        removed = _shaping(key, case["config"]).apply(batch)
        expected = wire if case["expected"] is None else base64.b64decode(case["expected"])
        assert batch.wire == expected, (request["source"], case["config"])
        if "removed" in case:
            assert removed == case["removed"], (request["source"], case["config"])
            assert batch.items == 1000 - removed


def test_sampling_reproduces_the_goldens() -> None:
    _golden("sampling", "sampling")


def test_actions_reproduce_the_goldens() -> None:
    _golden("actions", "attributes")


def test_redaction_reproduces_the_goldens() -> None:
    _golden("redaction", "redaction")


# --- sampling: the former Python transform, on upb messages ------------------------------------

class ReferenceSampling:
    def __init__(self, rate: float, by: str) -> None:
        self.rate, self.by = rate, by
        self.sessions: OrderedDict[bytes, bytes] = OrderedDict()

    def keeps(self, key: bytes) -> bool:
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / float(1 << 64) < self.rate

    def apply(self, message: Any, signal: Signal) -> int:
        if self.rate >= 1.0 or signal.name == "metrics":
            return 0
        containers = [getattr(ss, signal.items_field) for rs in getattr(message, signal.resource_field)
                      for ss in getattr(rs, signal.scope_field)]
        if self.by == "session.id":
            for items in containers:
                for item in items:
                    for kv in item.attributes:
                        if kv.key == "session.id":
                            self.sessions[item.trace_id] = str(value_of(kv.value)).encode()
                            self.sessions.move_to_end(item.trace_id)
                            break
        decisions: dict[bytes, bool] = {}
        removed = 0
        for items in containers:
            drop = []
            for i, item in enumerate(items):
                if not item.trace_id:
                    if not self.keeps(b"i:" + item.SerializeToString(deterministic=True)):
                        drop.append(i)
                    continue
                keep = decisions.get(item.trace_id)
                if keep is None:
                    key = self.sessions.get(item.trace_id, b"t:" + item.trace_id) if self.by == "session.id" \
                        else item.trace_id
                    keep = decisions[item.trace_id] = self.keeps(key)
                if not keep:
                    drop.append(i)
            for i in reversed(drop):
                del items[i]
            removed += len(drop)
        return removed


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(signal=st.sampled_from(["traces", "logs"]), requests=st.data(),
       rate=st.sampled_from([0.0, 0.2, 0.5, 0.8, 1.0]) | st.floats(0, 1), by=st.sampled_from(Sampling.BY))
def test_sampling_matches_the_reference(signal: str, requests: Any, rate: float, by: str) -> None:
    sig = SIGNALS[signal]
    native = Sampling(Section({"rate": rate, "by": by}, "t.yaml", "sampling"))
    reference = ReferenceSampling(rate, by)
    for _ in range(2):   # sessions remembered from one request to the next
        request = requests.draw(STRATEGIES[signal])
        wire = request.SerializeToString(deterministic=True)
        removed = reference.apply(request, sig)
        got = native.apply_wire(wire, sig)
        expected = request.SerializeToString(deterministic=True)
        assert (wire if got is None else got[0]) == expected
        assert (0 if got is None else got[1]) == removed
    assert list(native._sessions.items()) == list(reference.sessions.items())


def _one_record(record: bytes) -> bytes:
    """An ExportLogsServiceRequest of this LogRecord's bytes (short: one-byte lengths)."""
    n = len(record)
    return b"\x0a" + bytes([n + 4]) + b"\x12" + bytes([n + 2]) + b"\x12" + bytes([n]) + record


def test_a_lone_record_is_decided_by_its_content_however_encoded() -> None:
    """A log record without a trace id sent with its fields out of order (a valid, non-canonical
    encoding) is decided as its canonical bytes are."""
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

    from otlp_router.model.signals import LOGS
    sampling = Sampling(Section({"rate": 0.5}, "t.yaml", "sampling"))
    for i in range(40):
        record = LogRecord(time_unix_nano=i + 1, body={"string_value": f"r{i}"}).SerializeToString()
        swapped = record[9:] + record[:9]   # the body before the time: the same record to upb
        assert LogRecord.FromString(swapped) == LogRecord.FromString(record)
        got = [sampling.apply_wire(_one_record(b), LOGS) for b in (record, swapped)]
        assert (got[0] is None) == (got[1] is None)


def test_damaged_bytes_are_upbs_verdict() -> None:
    from google.protobuf.message import DecodeError

    wire = base64.b64decode(REQUESTS[0]["wire"])
    sampling = Sampling(Section(SAMPLING[1], "t.yaml", "sampling"))
    with pytest.raises(ValueError):
        _native.sample("traces", wire[:-1], False, sampling._decide)
    with pytest.raises(DecodeError):
        sampling.apply_wire(wire[:-1], SIGNALS["traces"])


# --- redaction: the former Python transform, on upb messages -----------------------------------

def reference_redact(r: Redaction, message: Any, signal: Signal) -> None:
    def value(v: Any) -> None:
        kind = v.WhichOneof("value")
        if kind == "string_value":
            masked = r.mask(v.string_value)
            if masked != v.string_value:
                v.string_value = masked
        elif kind == "array_value":
            for x in v.array_value.values:
                value(x)
        elif kind == "kvlist_value":
            for kv in v.kvlist_value.values:
                value(kv.value)

    def attributes(attrs: Any) -> None:
        drop = []
        for i, kv in enumerate(attrs):
            if (r.allowed is not None and not r.allowed(kv.key)) or (r.blocked and r.blocked(kv.key)):
                drop.append(i)
            elif r.rules:
                value(kv.value)
        for i in reversed(drop):
            del attrs[i]

    for rs in getattr(message, signal.resource_field):
        attributes(rs.resource.attributes)
        for ss in getattr(rs, signal.scope_field):
            attributes(ss.scope.attributes)
            for item in getattr(ss, signal.items_field):
                for attrs in signal.attribute_lists(item):
                    attributes(attrs)
                if signal.name == "traces":
                    if r.rules and item.status.message:
                        item.status.message = r.mask(item.status.message)
                    for ev in item.events:
                        attributes(ev.attributes)
                    for link in item.links:
                        attributes(link.attributes)
                elif signal.name == "logs" and r.rules and item.HasField("body"):
                    value(item.body)


_globs = st.lists(st.sampled_from(["*.password", "http.*", "user.?d", "[a-c]", "[!x]*", "k*", "note", "gen_ai.*"])
                  | texts, max_size=3)
redaction_configs = st.one_of(
    st.sampled_from(REDACTION),
    st.fixed_dictionaries({}, optional={
        "blocked_keys": _globs, "allowed_keys": _globs,
        "mask": st.lists(st.sampled_from(list(BUILTIN_PATTERNS)), unique=True),
        "patterns": st.lists(st.sampled_from(["ACME-[0-9]{6}", "[0-9]+", "x", "(?<=@)\\w+", "é"]), max_size=2),
        "replacement": st.sampled_from(["[REDACTED:{kind}]", "", "<{kind}>", "@4111111111111111"]),
    }),
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(signal=st.sampled_from(["traces", "logs", "metrics"]), requests=st.data(), config=redaction_configs)
def test_redaction_matches_the_reference(signal: str, requests: Any, config: dict[str, Any]) -> None:
    sig = SIGNALS[signal]
    redaction = Redaction(Section(config, "t.yaml", "redaction"))
    for _ in range(2):   # key decisions remembered from one request to the next
        request = requests.draw(STRATEGIES[signal])
        wire = request.SerializeToString(deterministic=True)
        reference_redact(redaction, request, sig)
        got = redaction.apply_wire(wire, sig)
        assert (wire if got is None else got) == request.SerializeToString(deterministic=True)


@settings(max_examples=400, deadline=None)
@given(text=st.text() | secret_text)
def test_the_mask_prefilter_never_skips_a_match(text: str) -> None:
    """A string the core does not ask about is one no built-in mask changes."""
    redaction = Redaction(Section({}, "t.yaml", "redaction"))
    request = ExportTraceServiceRequest(resource_spans=[{"scope_spans": [{"spans": [
        {"attributes": [{"key": "k", "value": {"string_value": text}}]}]}]}])
    got = redaction.apply_wire(request.SerializeToString(), TRACES)
    assert (got is not None) == (redaction.mask(text) != text)


def test_redaction_of_damaged_bytes_is_upbs_verdict() -> None:
    from google.protobuf.message import DecodeError

    wire = base64.b64decode(REQUESTS[0]["wire"])
    redaction = Redaction(Section({"blocked_keys": ["a"]}, "t.yaml", "redaction"))
    with pytest.raises(DecodeError):
        redaction.apply_wire(wire[:-1], TRACES)


# --- attribute actions: the former Python transform, on upb messages ---------------------------

def reference_actions(actions: AttributeActions, message: Any, signal: Signal) -> None:
    def find(attrs: Any, key: str) -> int:
        return next((i for i, kv in enumerate(attrs) if kv.key == key), -1)

    def put(a: Any, attrs: Any, index: int) -> None:
        if a.from_attribute is not None:
            source = find(attrs, a.from_attribute)
            if source < 0:
                return
            value = attrs[source].value
            target = attrs[index].value if index >= 0 else attrs.add(key=a.key).value
            target.CopyFrom(value)
            return
        target = attrs[index].value if index >= 0 else attrs.add(key=a.key).value
        target.Clear()
        set_value(target, a.value)

    def act(a: Any, attrs: Any) -> None:
        if a.action == "insert" and find(attrs, a.key) < 0:
            put(a, attrs, -1)
        elif a.action == "update" and find(attrs, a.key) >= 0:
            put(a, attrs, find(attrs, a.key))
        elif a.action == "upsert":
            put(a, attrs, find(attrs, a.key))
        elif a.action == "rename" and (i := find(attrs, a.key)) >= 0:
            existing = find(attrs, a.to)
            if existing >= 0:
                attrs[existing].value.CopyFrom(attrs[i].value)
                del attrs[i]
            else:
                attrs[i].key = a.to
        elif a.action == "delete":
            drop = [i for i, kv in enumerate(attrs)
                    if (a.pattern.search(kv.key) if a.pattern is not None else kv.key == a.key)]
            for i in reversed(drop):
                del attrs[i]
        elif a.action == "hash" and (i := find(attrs, a.key)) >= 0:
            raw = value_of(attrs[i].value)
            data = raw if isinstance(raw, bytes) else str(raw).encode()
            digest = hmac.new(a.hash_key, data, hashlib.sha256).hexdigest() if a.hash_key \
                else hashlib.sha256(data).hexdigest()
            attrs[i].value.Clear()
            attrs[i].value.string_value = digest

    def holds(rule: Any, item: Any) -> bool:
        """The filters this test draws, {attribute: K, exists: B}, as the former Python rules read
        them: the item's attribute K (the last of repeats) is present and not an empty value;
        metrics carry none at the metric."""
        cond, subject, key, op, expected = rule.tree
        assert (cond, subject, op) == ("cond", "attribute", "exists")
        values = [value_of(kv.value) for kv in getattr(item, "attributes", ()) if kv.key == key]
        present = signal.name != "metrics" and bool(values) and values[-1] is not None
        return present == expected

    for rs in getattr(message, signal.resource_field):
        for ss in getattr(rs, signal.scope_field):
            for item in getattr(ss, signal.items_field):
                for a in actions.actions:
                    if (a.include is None or holds(a.include, item)) and (a.exclude is None or not holds(a.exclude, item)):
                        for attrs in signal.attribute_lists(item):
                            act(a, attrs)


_action_keys = st.sampled_from(["a", "b", "user.id", "note", "session.id", "team", "env", ""])
_one_action = st.one_of(
    st.builds(lambda action, key, value: {"action": action, "key": key, "value": value},
              st.sampled_from(["insert", "update", "upsert"]), _action_keys,
              st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | texts
              | st.lists(st.integers(0, 3), max_size=2) | st.dictionaries(texts, st.integers(0, 3), max_size=2)),
    st.builds(lambda action, key, src: {"action": action, "key": key, "from_attribute": src},
              st.sampled_from(["insert", "update", "upsert"]), _action_keys, _action_keys),
    st.builds(lambda key, to: {"action": "rename", "key": key, "to": to}, _action_keys, _action_keys),
    st.builds(lambda key: {"action": "delete", "key": key}, _action_keys),
    st.builds(lambda p: {"action": "delete", "pattern": p}, st.sampled_from(["^internal\\.", "a", "\\.", "^$", "é"])),
    st.builds(lambda key, secret: {"action": "hash", "key": key, **({"hash_key": secret} if secret else {})},
              _action_keys, st.sampled_from(["", "s3cret"])),
)
_filters = st.sampled_from([{}, {"include": {"attribute": "a", "exists": True}},
                            {"exclude": {"attribute": "note", "exists": True}}])
action_lists = st.one_of(st.sampled_from(ACTIONS), st.lists(
    st.builds(lambda a, f: {**a, **f}, _one_action, _filters), min_size=1, max_size=5))


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(signal=st.sampled_from(["traces", "logs", "metrics"]), requests=st.data(), items=action_lists)
def test_actions_match_the_reference(signal: str, requests: Any, items: list[dict[str, Any]]) -> None:
    sig = SIGNALS[signal]
    actions = AttributeActions(items, "t.yaml", "attributes")
    for _ in range(2):   # pattern answers remembered from one request to the next
        request = requests.draw(STRATEGIES[signal])
        wire = request.SerializeToString(deterministic=True)
        reference_actions(actions, request, sig)
        got = actions.apply_wire(wire, sig)
        assert (wire if got is None else got) == request.SerializeToString(deterministic=True)
