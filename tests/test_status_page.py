"""The status page (issue 16): rendered on the server, so its numbers are there
without scripts; items / s over a real time window; refused requests by status
and in "recent problems"; the routes' signal filters; receivers, workers, dead
letters and the last reload."""

from __future__ import annotations

import http.client
import os
import re
import signal
import struct
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest
import yaml

from otlp_router.admin import Throughput, merge_problems, render_page
from tests.support import base_config, make_request, wait_for
from tests.test_admin import _chromium

PB = {"Content-Type": "application/x-protobuf"}


class NoScripts:
    """A proxy to the admin port whose answers forbid every script
    (`Content-Security-Policy: script-src 'none'`): the browser shows only what
    the server rendered. (Chromium's --blink-settings=scriptEnabled=false also
    stops --dump-dom and --screenshot, which run through scripts of their own.)"""

    def __init__(self, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                try:
                    conn.request("GET", self.path)
                    answer = conn.getresponse()
                    body = answer.read()
                finally:
                    conn.close()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.getheader("content-type") or "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Security-Policy", "script-src 'none'")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_scripts() -> Iterator[Any]:
    proxies: list[NoScripts] = []

    def make(port: int) -> NoScripts:
        proxies.append(NoScripts(port))
        return proxies[-1]
    yield make
    for proxy in proxies:
        proxy.close()


def _chromium_run(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--enable-logging=stderr", "--v=0", *extra, url],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _cell_texts(dom: str, tbody: str) -> list[list[str]]:
    body = re.search(rf'<tbody id="{tbody}">(.*?)</tbody>', dom, re.S)
    assert body, tbody
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def _card(dom: str, name: str) -> str:
    found = re.search(rf'<b id="{name}">([^<]*)</b>', dom)
    assert found, name
    return found.group(1)


def _refuse_some(router: Any) -> None:
    assert router.post("/v1/traces", b"{}", {"Content-Type": "text/plain"})[0] == 415
    assert router.post("/v1/traces", b"{}", {"Content-Type": "text/plain"})[0] == 415
    assert router.post("/v1/traces", b"", PB, method="GET")[0] == 405
    assert router.post("/v1/traces", b"\xff\xff", PB)[0] == 400


def _config(tmp_path: Path, **top: Any) -> dict[str, Any]:
    return base_config(tmp_path, routes=[
        {"name": "only-logs", "signals": ["logs"], "destinations": ["out"]},
        {"name": "traces", "signals": ["traces"], "destinations": ["out"]},
        {"name": "rest", "default": True, "destinations": ["out"]}], **top)


def test_the_page_shows_its_numbers_without_scripts_in_headless_chromium(start_router, tmp_path, no_scripts) -> None:
    router = start_router(_config(tmp_path))
    assert router.post("/v1/traces", make_request(spans=7).SerializeToString(), PB)[0] == 200
    _refuse_some(router)
    wait_for(lambda: orjson.loads(router.get_admin("/api/status")[2])["destinations"][0]["sent"] == 7)
    proxy = no_scripts(router.admin_port)
    result = _chromium_run(tmp_path, proxy.url, "--dump-dom")
    dom = result.stdout
    assert "loading" not in dom and "–" not in dom, dom        # no empty shell waiting for a script
    assert _card(dom, "accepted") == "7" and _card(dom, "refused") == "4" and _card(dom, "ready") == "yes"
    assert _cell_texts(dom, "destinations")[0][:6] == ["out", "file", "ok", "0", "0", "7"]
    receivers = _cell_texts(dom, "receivers")
    assert ["http", f"127.0.0.1:{router.http_port}", "no", "yes"] in receivers
    assert ["grpc", f"127.0.0.1:{router.grpc_port}", "no", "yes"] in receivers
    assert sorted((r[0], r[3]) for r in _cell_texts(dom, "refused_requests")) == [("400", "1"), ("405", "1"),
                                                                                  ("415", "2")]
    routes = {r[0]: r[1] for r in _cell_texts(dom, "routes")}
    assert routes == {"only-logs": "all logs", "traces": "all traces",
                      "rest": "what no other route took (traces, logs, metrics)"}
    assert [w[:4] for w in _cell_texts(dom, "workers")] == [["0", str(router.proc.pid), "yes", "yes"]]
    assert _cell_texts(dom, "dead_letters")[0][:2] == ["out", "0"]
    assert "config " in dom and str(tmp_path / "router.yaml") in dom and "none since start" in dom
    assert re.search(r'<span id="updated">\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ</span>', dom)

    # And as a picture: a real page, not a blank one.
    shot = tmp_path / "status.png"
    _chromium_run(tmp_path, proxy.url, "--window-size=1280,1400", f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1280, 1400)
    assert len(data) > 30_000, len(data)   # a blank page of this size compresses to a few KB


def test_the_script_refreshes_what_the_server_rendered(start_router, tmp_path) -> None:
    router = start_router(_config(tmp_path))
    assert router.post("/v1/traces", make_request(spans=2).SerializeToString(), PB)[0] == 200
    page = router.get_admin("/")[2].decode()
    assert _card(page, "accepted") == "2"
    assert router.post("/v1/traces", make_request(spans=3, seed=2).SerializeToString(), PB)[0] == 200
    # The script's first refresh (at load) brings the page up to date from /api/status.
    result = _chromium_run(tmp_path, f"http://127.0.0.1:{router.admin_port}/", "--virtual-time-budget=5000",
                           "--dump-dom")
    dom = result.stdout
    assert _card(dom, "accepted") == "5" and '<div id="error"></div>' in dom
    assert [r[0] for r in _cell_texts(dom, "routes")] == ["only-logs", "traces", "rest"]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console


def test_refused_requests_are_counted_by_status_and_shown_in_recent_problems(start_router, tmp_path) -> None:
    router = start_router(_config(tmp_path))
    big = make_request(spans=50).SerializeToString()
    assert router.post("/v1/traces", big + b"\xff", PB)[0] == 400   # many spans, one refused request
    _refuse_some(router)
    status = orjson.loads(router.get_admin("/api/status")[2])
    assert status["refused"] == 5                                  # requests, not items
    by_status = {r["status"]: r["count"] for r in status["refused_requests"]}
    assert by_status == {"400": 2, "405": 1, "415": 2}
    problems = [p for p in status["problems"] if p["message"].startswith("refused a traces request over http")]
    messages = {p["message"].split(": ", 1)[1][:3]: p for p in problems}
    assert set(messages) == {"400", "405", "415"}
    assert messages["415"]["count"] == 2 and "unsupported content type text/plain" in messages["415"]["message"]
    assert "method GET not allowed" in messages["405"]["message"]


def test_items_per_second_is_a_rate_over_the_last_ten_seconds() -> None:
    rate = Throughput(window=10.0)
    total = 0.0
    for t in range(0, 30):              # 100 items a second for 30 s, sampled every second
        rate.add(float(t), total)
        total += 100
    assert rate.rate(30.0, total) == pytest.approx(100.0)
    # The load stops: the rate falls within one window, however few polls there are.
    assert rate.rate(35.0, total) == pytest.approx(50.0)
    assert rate.rate(40.0, total) == 0.0
    assert rate.rate(60.0, total) == 0.0
    # Sampled once a second, polled seldom: still the last 10 s, not the last N polls.
    rate = Throughput(window=10.0)
    for t in range(0, 100):
        rate.add(float(t), t * (10.0 if t < 90 else 0.0) + (900.0 if t >= 90 else 0.0))
    assert rate.rate(100.0, 900.0) == 0.0


def test_repeated_problems_show_once_with_their_count_and_workers() -> None:
    reload_refused = {"level": "ERROR", "logger": "otlp_router", "message": "reload refused, the running config "
                      "stays: router.yaml: routes: expected a list"}
    merged = merge_problems([{**reload_refused, "time": 10.0, "workers": [0]},
                             {**reload_refused, "time": 10.2, "workers": [1]},
                             {"level": "WARNING", "logger": "x", "message": "other", "time": 5.0, "count": 3}])
    assert [(p["message"][:6], p["count"], p["workers"], p["time"]) for p in merged] == [
        ("reload", 2, [0, 1], 10.2), ("other", 3, [], 5.0)]


def test_rendering_escapes_what_clients_and_backends_chose() -> None:
    status = {"version": "0.1", "pid": 1, "uptime_seconds": 1, "generated_at": 0, "accepted": 1, "throughput": 0.5,
              "refused": 0, "unrouted": 0, "ready": True, "routes": [], "receivers": [], "workers": [],
              "refused_requests": [], "destinations": [{
                  "name": "d", "type": "otlp_http", "state": "failing", "last_error": "<script>alert(1)</script>",
                  "spool_items": 0, "spool_bytes": 0, "sent": 0, "dropped": 0, "dead_lettered": 2,
                  "last_dead_letter": "<img src=x>", "dead_letter_reasons": {"rejected": 2}}],
              "problems": [{"time": 0, "level": "WARNING", "message": "refused: text/<b>", "count": 1}]}
    page = render_page(status)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x>" not in page and "text/&lt;b&gt;" in page
    assert "{{" not in page
    assert _cell_texts(page, "dead_letters")[0] == ["d", "2", "2", "0", "0", "&lt;img src=x&gt;"]
    assert '<td class="failing">failing</td>' in page


def test_workers_rows_and_a_refused_reload_shown_once(start_router, tmp_path, no_scripts) -> None:
    config = _config(tmp_path, workers=2)
    router = start_router(config)
    for seed in range(1, 5):
        conn = http.client.HTTPConnection("127.0.0.1", router.http_port, timeout=10)
        conn.request("POST", "/v1/traces", body=make_request(spans=1, seed=seed).SerializeToString(), headers=PB)
        assert conn.getresponse().status == 200
        conn.close()
    config_path = tmp_path / "router.yaml"
    config_path.write_text("routes: [unclosed\n")
    os.kill(router.proc.pid, signal.SIGHUP)

    def refused() -> Any:
        status = orjson.loads(router.get_admin("/api/status")[2])
        reloads = [p for p in status["problems"] if p["message"].startswith("reload refused")]
        return len(reloads) == 1 and reloads[0]["workers"] == [0, 1] and status
    status = wait_for(refused, timeout=15)
    assert status, orjson.loads(router.get_admin("/api/status")[2])["problems"]
    assert status["last_reload"]["result"] == "refused"
    assert status["accepted"] == 4 and sum(w["accepted"] for w in status["workers"]) == 4
    dom = _chromium_run(tmp_path, no_scripts(router.admin_port).url, "--dump-dom").stdout
    workers = _cell_texts(dom, "workers")
    assert [w[0] for w in workers] == ["0", "1"] and all(w[2:4] == ["yes", "yes"] for w in workers)
    assert sorted(w[1] for w in workers) == sorted(str(w["pid"]) for w in status["workers"])
    assert "refused (reload refused" in dom and _card(dom, "accepted") == "4"
    assert len([r for r in _cell_texts(dom, "problems") if r[2].startswith("reload refused")]) == 1

    # A reload that takes is shown as such.
    config_path.write_text(yaml.safe_dump(config))
    os.kill(router.proc.pid, signal.SIGHUP)
    status = wait_for(lambda: (s := orjson.loads(router.get_admin("/api/status")[2]))["last_reload"]["result"] == "ok"
                      and s, timeout=15)
    assert status and status["config_file"] == str(config_path)
