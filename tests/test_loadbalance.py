"""Scale-out: a first tier spreading traces over second-tier routers with a consistent-hash ring."""

from __future__ import annotations

import orjson

from otlp_router.destinations.loadbalance import HashRing
from tests.support import base_config, make_request, wait_for

PB = {"Content-Type": "application/x-protobuf"}


def test_the_ring_is_stable_and_moves_few_keys_when_an_endpoint_joins() -> None:
    keys = [i.to_bytes(16, "big") for i in range(5000)]
    two = HashRing(["a:4317", "b:4317"])
    three = HashRing(["a:4317", "b:4317", "c:4317"])
    before = [two.owner(k) for k in keys]
    assert before == [HashRing(["a:4317", "b:4317"]).owner(k) for k in keys]  # same on every router
    assert 0.35 < before.count(0) / len(keys) < 0.65
    moved = sum(1 for k, b in zip(keys, before) if three.owner(k) != b)
    assert moved / len(keys) < 0.45  # about a third move to the new endpoint, the rest stay


def _documents(directory) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for path in directory.rglob("*.json"):
        doc = orjson.loads(path.read_bytes())
        out.setdefault(doc["id"], []).append(doc)
    return out


def test_three_routers_in_two_tiers_keep_every_trace_whole(start_router, tmp_path) -> None:
    tier2 = []
    for name in ("b", "c"):
        config = base_config(tmp_path / name, destinations={"traces": {
            "type": "file", "dir": str(tmp_path / name / "traces"), "format": "json", "trace_idle": "1s"}})
        tier2.append(start_router(config, workdir=tmp_path / name))
    front = start_router(base_config(tmp_path / "a", destinations={"tier2": {
        "type": "otlp_grpc", "insecure": True, "batch": {"flush_interval": "10ms"},
        "loadbalance": {"by": "trace_id", "endpoints": [f"127.0.0.1:{r.grpc_port}" for r in tier2]}}}),
        workdir=tmp_path / "a")
    traces = 24
    for part in range(3):  # every request mixes spans of all traces; each trace arrives in three pieces
        request = make_request(spans=1, seed=1)
        spans = request.resource_spans[0].scope_spans[0].spans
        template = spans[0]
        del spans[:]
        for t in range(traces):
            span = spans.add()
            span.CopyFrom(template)
            span.trace_id = (t + 1).to_bytes(16, "big")
            span.span_id = ((t + 1) * 10 + part + 1).to_bytes(8, "big")
            span.parent_span_id = b"" if part == 0 else ((t + 1) * 10 + 1).to_bytes(8, "big")
        assert front.post("/v1/traces", request.SerializeToString(), PB)[0] == 200

    def settled():
        docs = [_documents(tmp_path / n / "traces") for n in ("b", "c")]
        return sum(len(d) for d in docs) == traces and docs
    docs = wait_for(settled, timeout=20)
    assert docs, "not every trace arrived"
    b, c = docs
    assert b and c  # both second-tier routers took a share
    assert not set(b) & set(c)  # no trace split across routers
    for trace_docs in (*b.values(), *c.values()):
        assert len(trace_docs) == 1 and len(trace_docs[0]["observations"]) == 3  # one whole document
