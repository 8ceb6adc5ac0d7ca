"""Scale-out: a first tier spreading traces over second-tier routers with a consistent-hash ring."""

from __future__ import annotations

import time

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


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_endpoint_down_neither_resends_nor_holds_up_the_others(start_router, tmp_path) -> None:
    """Each endpoint has its own queue: the healthy one gets its parts once, at
    once; the other's wait in its queue until it comes up."""
    from tests.downstream import HttpSink
    healthy = HttpSink()
    down_port = _free_port()
    front = start_router(base_config(tmp_path, destinations={"tier2": {
        "type": "otlp_http", "compression": "none", "batch": {"flush_interval": "10ms"},
        "retry": {"initial_interval": "50ms", "max_interval": "200ms"},
        "loadbalance": {"endpoints": [f"http://127.0.0.1:{healthy.port}", f"http://127.0.0.1:{down_port}"]}}}))
    ring = HashRing([f"http://127.0.0.1:{healthy.port}", f"http://127.0.0.1:{down_port}"])
    sent = []
    for t in range(30):
        request = make_request(spans=2, seed=t + 1)
        sent.append(request)
        assert front.post("/v1/traces", request.SerializeToString(), PB)[0] == 200
    spans = [s for r in sent for s in r.resource_spans[0].scope_spans[0].spans]
    mine = {s.span_id for s in spans if ring.owner(s.trace_id) == 0}
    theirs = {s.span_id for s in spans if ring.owner(s.trace_id) == 1}
    assert mine and theirs
    try:
        assert wait_for(lambda: healthy.span_ids() == mine, timeout=20)
        assert wait_for(lambda: "state failing" in front.stderr, timeout=10)
        time.sleep(0.5)  # several retries of the other endpoint's parts
        received = [s.span_id for s in healthy.spans()]
        assert len(received) == len(set(received)), "the healthy endpoint got parts again"
        late = HttpSink(port=down_port)
        try:
            assert wait_for(lambda: late.span_ids() == theirs, timeout=20)
        finally:
            late.close()
        assert sorted(s.span_id for s in healthy.spans()) == sorted(mine)
    finally:
        healthy.close()
