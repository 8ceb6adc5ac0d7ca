"""`workers: N` (issue 16): a ready line only once every worker can take a
hand-over, /readyz with the details a single router gives, and /metrics added
up sensibly (gauges that are maxima, process metrics per process)."""

from __future__ import annotations

import asyncio
import http.client
import shutil
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from otlp_router import peers
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.peers import Peers, socket_path
from otlp_router.spool.base import SpoolFull
from otlp_router.workers import merge_metrics, merge_readiness
from tests.downstream import HttpSink, Reply
from tests.support import RouterProcess, base_config, make_request, wait_for

PB = {"Content-Type": "application/x-protobuf"}


def _post_trace(port: int, trace: int) -> int:
    """One span of trace `trace`, on a new connection (the kernel picks the worker)."""
    request = make_request(spans=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.trace_id = trace.to_bytes(16, "big")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/traces", body=request.SerializeToString(), headers=PB)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_the_first_requests_right_after_the_ready_line_are_taken(tmp_path) -> None:
    """Fresh starts with `workers: 2` and a per-trace destination (so spans are
    handed over to their owner): every request sent as soon as the ready line
    is out is answered 200, never 429 "worker N cannot be reached"."""
    statuses: list[int] = []
    for start in range(5):
        directory = tmp_path / f"start-{start}"
        directory.mkdir()
        config = base_config(directory, workers=2, destinations={
            "traces": {"type": "file", "dir": str(directory / "traces"), "format": "json", "trace_idle": "1s"}})
        router = RouterProcess(config, directory)
        try:
            statuses.extend(_post_trace(router.http_port, t + 1) for t in range(8))  # both owners among 8 traces
        finally:
            router.stop()
        assert "cannot be reached" not in router.stderr, router.stderr
        shutil.rmtree(directory)
    assert statuses == [200] * 40, statuses


class _OkServer:
    """A bare HTTP/1.1 server on a unix socket that answers every request 200."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


def test_a_hand_over_waits_briefly_for_an_owner_that_is_still_starting(tmp_path, monkeypatch) -> None:
    batch = Batch(TRACES, None, 1, make_request(spans=1).SerializeToString())

    async def main() -> None:
        mine = Peers(0, 2, tmp_path, {"traces"})
        try:
            async def owner_starts_late() -> asyncio.AbstractServer:
                await asyncio.sleep(0.5)
                return await asyncio.start_unix_server(_OkServer().handle, path=str(socket_path(tmp_path, 1)))
            starting = asyncio.create_task(owner_starts_late())
            await mine.hand_over(1, "traces", batch)     # no socket for 0.5 s: waited for, then taken
            server = await starting
            server.close()
            await server.wait_closed()
            socket_path(tmp_path, 1).unlink()
            # An owner that does not come back within the wait: 429 (SpoolFull), with its reason.
            monkeypatch.setattr(peers, "HAND_OVER_CONNECT_WAIT", 0.3)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(SpoolFull, match="worker 1 cannot be reached"):
                await mine.hand_over(1, "traces", batch)
            assert 0.2 < loop.time() - started < 2.0
        finally:
            await mine.close()
    asyncio.run(main())


@pytest.fixture
def rejecting_backend():
    sink = HttpSink()
    sink.script = [Reply(status=400, body=b"bad batch")] * 50
    yield sink
    sink.close()


def test_readyz_of_workers_has_receivers_spools_and_destinations(start_router, tmp_path, rejecting_backend) -> None:
    config = base_config(tmp_path, workers=2, destinations={
        "out": {"type": "file", "dir": str(tmp_path / "out"), "format": "otlp_json"},
        "backend": {"type": "otlp_http", "endpoint": f"http://127.0.0.1:{rejecting_backend.port}"}})
    router = start_router(config)
    status, _, body = router.get_admin("/readyz")
    ready = orjson.loads(body)
    assert status == 200 and ready["ready"] is True
    assert ready["receivers"] == {"http": True, "grpc": True}
    assert ready["spools_writable"] == {"out": True, "backend": True}
    assert ready["destinations"] == {"out": {"ok": True, "last_error": None},
                                     "backend": {"ok": True, "last_error": None}}
    assert [(w["index"], w["alive"], w["ready"]) for w in ready["workers"]] == [(0, True, True), (1, True, True)]
    # A destination failing in any worker is failing in the merged answer, with its error.
    assert _post_trace(router.http_port, 1) == 200

    def failing() -> Any:
        doc = orjson.loads(router.get_admin("/readyz")[2])
        return not doc["destinations"]["backend"]["ok"] and doc
    ready = wait_for(failing, timeout=15)
    assert ready and "400" in ready["destinations"]["backend"]["last_error"]
    assert ready["destinations"]["out"]["ok"] is True and ready["ready"] is True


def test_metrics_of_workers_add_up_counters_take_maxima_and_keep_processes_apart(start_router, tmp_path) -> None:
    router = start_router(base_config(tmp_path, workers=2))
    for t in range(6):
        assert _post_trace(router.http_port, t + 1) == 200
    wait_for(lambda: b'otelcol_exporter_sent_spans_total{exporter="out"} 6.0' in router.get_admin("/metrics")[2])
    text = router.get_admin("/metrics")[2].decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("otelcol_receiver_accepted_spans_total", (("receiver", "otlp"), ("transport", "http")))] == 6
    assert samples[("otlp_router_receiver_accepted_items_total",
                    (("receiver", "otlp"), ("signal", "traces"), ("transport", "http")))] == 6
    build = [v for (name, _), v in samples.items() if name == "otlp_router_build_info"]
    assert build == [1.0]
    workers = orjson.loads(router.get_admin("/healthz")[2])["workers"]
    rss = {dict(labels)["worker"]: (dict(labels)["pid"], v) for (name, labels), v in samples.items()
           if name == "process_resident_memory_bytes"}
    assert set(rss) == {"0", "1", "supervisor"}
    assert {rss[str(w["index"])][0] for w in workers} == {str(w["pid"]) for w in workers}
    assert rss["supervisor"][0] == str(router.proc.pid) and all(v > 0 for _, v in rss.values())
    assert "# TYPE otlp_router_receiver_accepted_items_total counter" in text


def test_merge_metrics_sums_counters_and_takes_the_maximum_of_age_gauges() -> None:
    def worker(accepted: float, age: float, fds: float) -> str:
        return (f'# HELP otlp_router_receiver_accepted_items_total Items.\n'
                f'# TYPE otlp_router_receiver_accepted_items_total counter\n'
                f'otlp_router_receiver_accepted_items_total{{signal="traces"}} {accepted}\n'
                f'# HELP otlp_router_spool_oldest_pending_age_seconds Age.\n'
                f'# TYPE otlp_router_spool_oldest_pending_age_seconds gauge\n'
                f'otlp_router_spool_oldest_pending_age_seconds{{destination="out"}} {age}\n'
                f'# HELP otlp_router_spool_items Items.\n# TYPE otlp_router_spool_items gauge\n'
                f'otlp_router_spool_items{{destination="out"}} {accepted}\n'
                f'# HELP process_open_fds Fds.\n# TYPE process_open_fds gauge\nprocess_open_fds {fds}\n')
    merged = merge_metrics([worker(3, 12.5, 30), worker(4, 2.0, 31)],
                           [{"worker": "0", "pid": "10"}, {"worker": "1", "pid": "11"}])
    assert 'otlp_router_receiver_accepted_items_total{signal="traces"} 7.0' in merged
    assert 'otlp_router_spool_oldest_pending_age_seconds{destination="out"} 12.5' in merged   # max, not 14.5
    assert 'otlp_router_spool_items{destination="out"} 7.0' in merged                           # a sum
    assert 'process_open_fds{pid="10",worker="0"} 30.0' in merged
    assert 'process_open_fds{pid="11",worker="1"} 31.0' in merged


def test_merge_readiness_reports_the_worst_of_the_workers() -> None:
    workers = [{"index": 0, "pid": 1, "alive": True}, {"index": 1, "pid": 2, "alive": True}]
    good = {"ready": True, "receivers": {"http": True}, "spools_writable": {"d": True},
            "destinations": {"d": {"ok": True, "last_error": None}}}
    bad = {"ready": False, "receivers": {"http": False}, "spools_writable": {"d": False},
           "destinations": {"d": {"ok": False, "last_error": "HTTP 503"}}}
    merged = merge_readiness([good, bad], workers, stopping=False)
    assert merged["ready"] is False and merged["receivers"] == {"http": False}
    assert merged["spools_writable"] == {"d": False} and merged["destinations"]["d"] == {"ok": False,
                                                                                         "last_error": "HTTP 503"}
    assert [w["ready"] for w in merged["workers"]] == [True, False]
    assert merge_readiness([good, None], workers, stopping=False)["ready"] is False   # one did not answer
    assert merge_readiness([good, good], workers, stopping=True)["ready"] is False
    assert merge_readiness([good, good], workers, stopping=False)["ready"] is True
