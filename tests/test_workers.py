"""`workers: N`: processes sharing the ports, one document per trace, metrics added up."""

from __future__ import annotations

import http.client

import orjson

from tests.support import base_config, make_request, read_otlp_json_lines, wait_for

PB = {"Content-Type": "application/x-protobuf"}


def test_two_workers_share_the_port_keep_traces_whole_and_add_up_metrics(start_router, tmp_path) -> None:
    config = base_config(tmp_path, destinations={
        "traces": {"type": "file", "dir": str(tmp_path / "traces"), "format": "json", "trace_idle": "1s"},
        "raw": {"type": "file", "dir": str(tmp_path / "raw"), "format": "otlp_json"}})
    config["workers"] = 2
    router = start_router(config)
    assert "workers=2" in router.stderr
    traces = 20
    sent = 0
    for part in range(4):  # each piece of every trace on a new connection: the kernel spreads them
        for t in range(traces):
            request = make_request(spans=1, seed=1)
            span = request.resource_spans[0].scope_spans[0].spans[0]
            span.trace_id = (t + 1).to_bytes(16, "big")
            span.span_id = ((t + 1) * 10 + part + 1).to_bytes(8, "big")
            conn = http.client.HTTPConnection("127.0.0.1", router.http_port, timeout=10)
            conn.request("POST", "/v1/traces", body=request.SerializeToString(), headers=PB)
            assert conn.getresponse().status == 200
            conn.close()
            sent += 1

    def documents():
        docs: dict[str, list] = {}
        for path in (tmp_path / "traces").rglob("*.json"):
            doc = orjson.loads(path.read_bytes())
            docs.setdefault(doc["id"], []).append(doc)
        return len(docs) == traces and docs
    docs = wait_for(documents, timeout=20)
    assert docs and all(len(d) == 1 and len(d[0]["observations"]) == 4 for d in docs.values())
    # Both workers took connections: each wrote raw OTLP under its own spool partition.
    status = wait_for(lambda: orjson.loads(router.get_admin("/api/status")[2]), timeout=5)
    assert [w["alive"] for w in status["workers"]] == [True, True]
    assert status["accepted"] == sent
    assert all(w["accepted"] > 0 for w in status["workers"])  # the kernel gave both workers connections
    _, _, metrics = router.get_admin("/metrics")
    assert f'otlp_router_receiver_accepted_items_total{{receiver="otlp",signal="traces",transport="http"}} {float(sent)}' \
        in metrics.decode()
    assert router.get_admin("/readyz")[0] == 200
    assert sorted(p.name for p in (tmp_path / "spool").glob("worker-*") if p.is_dir()) == ["worker-0", "worker-1"]
    router.stop()
    assert len(read_otlp_json_lines(tmp_path / "raw")) == sent


def test_fewer_workers_than_partitions_with_data_is_refused(tmp_path) -> None:
    import pytest
    from tests.support import RouterProcess
    import asyncio

    from otlp_router.model.batch import Batch
    from otlp_router.model.signals import TRACES
    from otlp_router.spool.disk import DiskSpool

    async def leave(directory, acknowledge: bool) -> None:
        spool = DiskSpool("raw", directory, 1 << 20)
        spool.open()
        await spool.append(Batch(TRACES, make_request(), 3))
        if acknowledge:
            spool.ack(await spool.read(10, 1 << 20))
        spool.release()
    asyncio.run(leave(tmp_path / "spool" / "worker-2" / "raw", acknowledge=True))   # drained: no obstacle
    asyncio.run(leave(tmp_path / "spool" / "worker-3" / "raw", acknowledge=False))  # still holds data
    config = base_config(tmp_path)
    config["workers"] = 2
    with pytest.raises(RuntimeError) as err:
        RouterProcess(config, tmp_path)
    assert "worker-3" in str(err.value) and "worker-2" not in str(err.value)
    assert "run with more workers" in str(err.value)
