"""Per-destination shaping: attribute actions, redaction, sampling, and isolation between destinations."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_router.model.attributes import to_dict
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.pipeline import Pipeline
from otlp_router.routing.actions import AttributeActions
from otlp_router.routing.redaction import Redaction
from otlp_router.routing.sampling import Sampling
from otlp_router.routing.shaping import Shaping
from otlp_router.routing.table import RoutingTable
from otlp_router.settings import ConfigError, Section


def _accepting_all(names: list[str]) -> dict[str, frozenset[str]]:
    return {n: frozenset({"traces", "logs", "metrics"}) for n in names}


def _request(*spans: dict[str, Any], trace_ids: list[bytes] | None = None) -> ExportTraceServiceRequest:
    out = []
    for i, attrs in enumerate(spans):
        out.append({"trace_id": (trace_ids[i] if trace_ids else b"\x07" * 16), "span_id": (i + 1).to_bytes(8, "big"),
                    "name": f"s{i}", "kind": 3,
                    "attributes": [{"key": k, "value": {"string_value": v} if isinstance(v, str) else {"int_value": v}}
                                   for k, v in attrs.items()]})
    return ExportTraceServiceRequest(resource_spans=[{"scope_spans": [{"spans": out}]}])


def _attrs(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    return [to_dict(s.attributes) for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def _actions(items: list[dict[str, Any]]) -> AttributeActions:
    return AttributeActions(items, "t.yaml", "destinations.d.attributes")


def test_insert_update_upsert() -> None:
    req = _request({"a": "1", "b": "2"}, {})
    _actions([{"action": "insert", "key": "a", "value": "new"},      # present: untouched
              {"action": "insert", "key": "env", "value": "prod"},   # absent: added
              {"action": "update", "key": "b", "value": "updated"},  # only where present
              {"action": "upsert", "key": "copy", "from_attribute": "env"}]).apply(req, TRACES)
    assert _attrs(req) == [{"a": "1", "b": "updated", "env": "prod", "copy": "prod"},
                           {"a": "new", "env": "prod", "copy": "prod"}]


def test_rename_delete_and_delete_by_pattern() -> None:
    req = _request({"llm.user": "u1", "internal.x": "1", "internal.y": "2", "keep": "k", "drop": "d"})
    _actions([{"action": "rename", "key": "llm.user", "to": "user.id"},
              {"action": "delete", "key": "drop"},
              {"action": "delete", "pattern": "^internal\\."}]).apply(req, TRACES)
    assert _attrs(req) == [{"user.id": "u1", "keep": "k"}]


def test_hash_is_keyed_hmac_sha256() -> None:
    req = _request({"user.id": "alice"})
    _actions([{"action": "hash", "key": "user.id", "hash_key": "s3cret"}]).apply(req, TRACES)
    assert _attrs(req)[0]["user.id"] == hmac.new(b"s3cret", b"alice", hashlib.sha256).hexdigest()


def test_include_and_exclude_use_the_match_rules() -> None:
    req = _request({"tier": "free"}, {"tier": "paid"})
    _actions([{"action": "insert", "key": "flag", "value": 1,
               "include": {"attribute": "tier", "equals": "free"}},
              {"action": "insert", "key": "other", "value": 2,
               "exclude": {"attribute": "tier", "equals": "free"}}]).apply(req, TRACES)
    assert _attrs(req) == [{"tier": "free", "flag": 1}, {"tier": "paid", "other": 2}]


def test_an_actions_rules_see_the_item_as_the_actions_before_it_left_it() -> None:
    # Found by the core's differential test: the rules were read once, before any action ran.
    req = _request({"note": "n", "user.id": "u", "tier": "free"}, {"user.id": "v"})
    _actions([{"action": "delete", "key": "note"},
              {"action": "delete", "key": "user.id", "exclude": {"attribute": "note", "exists": True}},
              {"action": "rename", "key": "tier", "to": "plan"},
              {"action": "insert", "key": "paid", "value": False, "include": {"attribute": "plan", "equals": "free"}},
              {"action": "update", "key": "paid", "value": True,
               "include": {"attribute": "paid", "exists": True}}]).apply(req, TRACES)
    assert _attrs(req) == [{"plan": "free", "paid": True}, {}]


def test_bad_action_names_its_path() -> None:
    with pytest.raises(ConfigError) as err:
        _actions([{"action": "explode", "key": "x"}])
    assert err.value.path == "destinations.d.attributes[0].action"


def _redaction(**settings: Any) -> Redaction:
    return Redaction(Section(settings, "t.yaml", "destinations.d.redaction"))


def test_redaction_masks_emails_cards_bearer_tokens_and_api_keys() -> None:
    req = _request({"note": "mail bob@example.com card 4111 1111 1111 1111 not 1234 5678 9012 3456",
                    "auth": "Bearer abc.def-ghi", "key": "use sk-or-v1-0123456789abcdef0123 now"})
    _redaction().apply(req, TRACES)
    got = _attrs(req)[0]
    assert "bob@example.com" not in got["note"] and "[REDACTED:email]" in got["note"]
    assert "4111" not in got["note"] and "1234 5678 9012 3456" in got["note"]  # Luhn-invalid: not a card
    assert got["auth"] == "[REDACTED:bearer]"
    assert "sk-or-v1" not in got["key"]


def test_redaction_blocks_keys_by_pattern() -> None:
    req = _request({"db.password": "x", "http.request.header.cookie": "c", "ok": "y"})
    _redaction(blocked_keys=["*.password", "http.request.header.*"], mask=[]).apply(req, TRACES)
    assert _attrs(req) == [{"ok": "y"}]


def test_allow_list_mode_fails_closed() -> None:
    req = _request({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3, "surprise": "z"})
    _redaction(allowed_keys=["gen_ai.*"], mask=[]).apply(req, TRACES)
    assert _attrs(req) == [{"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3}]


def test_unknown_mask_and_bad_pattern_are_config_errors() -> None:
    with pytest.raises(ConfigError) as err:
        _redaction(mask=["ssn"])
    assert err.value.path == "destinations.d.redaction.mask[0]"
    with pytest.raises(ConfigError) as err:
        _redaction(patterns=["("])
    assert err.value.path == "destinations.d.redaction.patterns[0]"


def _sampling(**settings: Any) -> Sampling:
    return Sampling(Section(settings, "t.yaml", "destinations.d.sampling"))


def test_sampling_keeps_or_drops_whole_traces_deterministically() -> None:
    trace_ids = [bytes([i]) * 16 for i in range(200) for _ in range(3)]
    req = _request(*[{} for _ in trace_ids], trace_ids=trace_ids)
    again = ExportTraceServiceRequest()
    again.CopyFrom(req)
    _sampling(rate=0.3).apply(req, TRACES)
    _sampling(rate=0.3).apply(again, TRACES)
    kept = [s.trace_id for s in req.resource_spans[0].scope_spans[0].spans]
    assert kept == [s.trace_id for s in again.resource_spans[0].scope_spans[0].spans]  # same on every router
    counts = {t: kept.count(t) for t in set(kept)}
    assert set(counts.values()) == {3}  # a trace is kept whole
    assert 20 < len(counts) < 100  # about 30% of 200 traces


@pytest.mark.parametrize("by", ["trace_id", "session.id"])
def test_log_records_without_a_trace_are_sampled_one_by_one(by: str) -> None:
    """Issue 13, finding 7: they all hashed the empty key, so a rate kept all or none."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from otlp_router.model.signals import LOGS
    request = ExportLogsServiceRequest(resource_logs=[{"scope_logs": [{"log_records": [
        {"body": {"string_value": f"record {i}"}, "time_unix_nano": i} for i in range(400)]}]}])
    again = ExportLogsServiceRequest()
    again.CopyFrom(request)
    removed = _sampling(rate=0.5, by=by).apply(request, LOGS)
    assert 120 < removed < 280
    _sampling(rate=0.5, by=by).apply(again, LOGS)
    assert again == request   # the same records kept by every router, every time


def test_sampling_by_session_keeps_a_session_together_across_traces() -> None:
    sampling = _sampling(rate=0.5, by="session.id")
    sessions = [f"session-{i}" for i in range(40)]
    decisions = {}
    for n, session in enumerate(sessions):
        for t in range(3):  # three traces of the session; only the first span says the session
            trace_id = bytes([n, t]) * 8
            req = _request({"session.id": session}, {}, trace_ids=[trace_id, trace_id])
            sampling.apply(req, TRACES)
            kept = len(req.resource_spans[0].scope_spans[0].spans)
            assert kept in (0, 2)
            decisions.setdefault(session, set()).add(kept)
    assert all(len(d) == 1 for d in decisions.values())
    assert {next(iter(d)) for d in decisions.values()} == {0, 2}


def test_fan_out_gives_each_destination_its_own_view() -> None:
    table = RoutingTable.read("t.yaml", [{"name": "all", "destinations": ["private", "open"]}], _accepting_all(["private", "open"]))
    shaping = {"private": Shaping(privacy=True, actions=_actions([{"action": "insert", "key": "p", "value": "1"}])),
               "open": Shaping()}
    pipeline = Pipeline(table, {}, shaping)
    req = _request({"gen_ai.prompt": "SECRET-prompt", "gen_ai.usage.input_tokens": 5})
    out = dict(pipeline.prepare(Batch(TRACES, req, 1, req.SerializeToString())))
    assert _attrs(out["private"].message) == [{"gen_ai.usage.input_tokens": 5, "p": "1"}]
    assert _attrs(out["open"].message) == [{"gen_ai.prompt": "SECRET-prompt", "gen_ai.usage.input_tokens": 5}]


def test_route_level_privacy_applies_to_what_that_route_sends() -> None:
    table = RoutingTable.read("t.yaml", [
        {"name": "eu", "match": {"attribute": "region", "equals": "eu"}, "privacy": True, "destinations": ["store"]},
        {"name": "rest", "default": True, "destinations": ["store"]},
    ], _accepting_all(["store"]))
    pipeline = Pipeline(table, {})
    req = _request({"region": "eu", "gen_ai.prompt": "SECRET-1"}, {"region": "us", "gen_ai.prompt": "visible"})
    out = pipeline.prepare(Batch(TRACES, req, 2))
    prompts = sorted(a.get("gen_ai.prompt", "-") for _, b in out for a in _attrs(b.message))
    assert prompts == ["-", "visible"]
