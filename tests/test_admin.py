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
    assert 'otlp_router_spool_oldest_pending_age_seconds{destination="out"} 0.0' in text
    assert 'otlp_router_exporter_batch_items_count{destination="out"} 1.0' in text
    assert 'otlp_router_exporter_latency_seconds_count{destination="out"} 1.0' in text


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


def _chromium() -> str:
    """Debian's Chromium, installed on first use (CI starts without it)."""
    import os
    import shutil
    import subprocess
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        # A fresh machine has no package lists yet: `install` alone finds no chromium.
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env,
                           timeout=600)
        found = shutil.which("chromium")
    assert found, "the status page test needs Chromium (Debian package chromium)"
    return found


def test_status_page_renders_in_headless_chromium_without_console_errors(start_router, tmp_path) -> None:
    import subprocess
    router = start_router()
    assert router.post("/v1/traces", make_request(spans=3).SerializeToString(), PB)[0] == 200
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--dump-dom", f"http://127.0.0.1:{router.admin_port}/"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    dom = result.stdout
    assert "<td>out</td>" in dom and "<td>file</td>" in dom  # the live table filled in from /api/status
    assert '<div id="error"></div>' in dom  # no fetch or render error shown
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
