"""The admin endpoint: Prometheus metrics, health, readiness and the status page."""

from __future__ import annotations

import orjson

from tests.support import make_request, wait_for

PB = {"Content-Type": "application/x-protobuf"}


def test_metrics_count_received_routed_and_sent_items(start_router) -> None:
    router = start_router()
    assert router.post("/v1/traces", make_request(spans=7).SerializeToString(), PB)[0] == 200
    assert router.post("/v1/traces", b"\xff\xff", PB)[0] == 400

    def metrics() -> str:
        status, headers, body = router.get_admin("/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        return body.decode()
    text = wait_for(lambda: 'otlp_router_exporter_sent_items_total{destination="out",signal="traces"} 7.0'
                    in metrics() and metrics())
    assert text
    assert 'otlp_router_receiver_accepted_items_total{receiver="otlp",signal="traces",transport="http"} 7.0' in text
    assert 'otlp_router_routed_items_total{route="all",signal="traces"} 7.0' in text
    assert 'otlp_router_receiver_refused_requests_total{receiver="otlp",signal="traces",status="400",transport="http"} 1.0' in text
    assert 'otlp_router_spool_items{destination="out"} 0.0' in text


def test_healthz_and_readyz(start_router) -> None:
    router = start_router()
    status, _, body = router.get_admin("/healthz")
    assert status == 200 and orjson.loads(body)["status"] == "ok"
    status, _, body = router.get_admin("/readyz")
    ready = orjson.loads(body)
    assert status == 200 and ready["ready"] is True
    assert ready["receivers"] == {"http": True, "grpc": True}
    assert ready["spools_writable"] == {"out": True} and ready["destinations"]["out"]["ok"] is True


def test_status_api_and_page(start_router) -> None:
    router = start_router()
    assert router.post("/v1/traces", make_request(spans=3).SerializeToString(), PB)[0] == 200
    status, _, body = router.get_admin("/api/status")
    doc = orjson.loads(body)
    assert status == 200 and doc["accepted"] == 3
    assert [d["name"] for d in doc["destinations"]] == ["out"] and doc["routes"][0]["name"] == "all"
    status, headers, page = router.get_admin("/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"api/status" in page
