"""The admin port and the workers' sockets: no secret in what they show, the
admin token, and the internal token and mode of the workers' sockets (issue 14)."""

from __future__ import annotations

import http.client
import socket
import stat
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support import RouterProcess, base_config, make_request, wait_for

PB = {"Content-Type": "application/x-protobuf"}
SECRET = "xaat-very-secret-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789abcdef"


class EchoBackend:
    """An OTLP/HTTP backend that refuses every export with 400, quoting the
    request's Authorization header in its error (as some proxies and APIs do)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = f"invalid request (Authorization: {self.headers.get('Authorization')})".encode()
                self.send_response(400)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo_backend():
    backend = EchoBackend()
    yield backend
    backend.close()


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("worker", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(self.path))


def _uds(path: Path, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b"") -> int:
    conn = _UnixConnection(path)
    try:
        conn.request(method, url, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _echo_config(tmp_path: Path, backend: EchoBackend, **top: Any) -> dict[str, Any]:
    return base_config(tmp_path, destinations={"backend": {
        "type": "otlp_http", "endpoint": backend.url, "headers": {"Authorization": f"Bearer {SECRET}"}}}, **top)


def _admin_texts(router: RouterProcess, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {path: _get(router.admin_port, path, headers)[2].decode() for path in ("/api/status", "/readyz", "/metrics")}


def _assert_masked_everywhere(router: RouterProcess, tmp_path: Path, headers: dict[str, str] | None = None) -> None:
    def dead_lettered() -> Any:
        doc = orjson.loads(_get(router.admin_port, "/api/status", headers)[2])
        return doc["destinations"][0]["dead_lettered"] and doc
    status = wait_for(dead_lettered, timeout=15)
    assert status, router.stderr
    texts = _admin_texts(router, headers)
    for path, text in texts.items():
        assert SECRET not in text, (path, text)
    backend = status["destinations"][0]
    assert backend["state"] == "failing" and "Authorization: ****" in backend["last_error"]
    assert "Authorization: ****" in backend["last_dead_letter"]
    assert any("Authorization: ****" in p["message"] for p in status["problems"]), status["problems"]
    readyz = orjson.loads(texts["/readyz"])
    if "destinations" in readyz:  # a single router's readiness shows each destination's last error
        assert "Authorization: ****" in readyz["destinations"]["backend"]["last_error"]
    dead = [p for p in (tmp_path / "spool").rglob("dead/*") if p.is_file()]
    assert dead, list((tmp_path / "spool").rglob("*"))
    for path in dead:
        content = path.read_bytes()
        assert SECRET.encode() not in content and b"Authorization: ****" in content, path
    router.stop()
    assert SECRET not in router.stderr


# -- 1. no secret on the admin port or in dead letters -----------------------

def test_an_echoed_secret_header_is_masked_in_status_readyz_problems_and_dead_letters(
        start_router, tmp_path, echo_backend) -> None:
    router = start_router(_echo_config(tmp_path, echo_backend))
    assert router.post("/v1/traces", make_request().SerializeToString(), PB)[0] == 200
    _assert_masked_everywhere(router, tmp_path)


def test_with_workers_the_supervisor_shows_no_secret_either(start_router, tmp_path, echo_backend) -> None:
    config = _echo_config(tmp_path, echo_backend, workers=2)
    config["admin"]["auth"] = {"token": ADMIN_TOKEN}
    router = start_router(config)
    assert router.post("/v1/traces", make_request().SerializeToString(), PB)[0] == 200
    _assert_masked_everywhere(router, tmp_path, {"Authorization": f"Bearer {ADMIN_TOKEN}"})


# -- 2. the admin token ---------------------------------------------------------

def _check_admin_token(router: RouterProcess) -> None:
    port = router.admin_port
    assert _get(port, "/healthz")[0] == 200          # liveness probes carry no credentials
    for path in ("/", "/metrics", "/readyz", "/api/status", "/no-such-path"):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abc"},
                        {"Authorization": f"Basic {ADMIN_TOKEN}"}, {"Authorization": f"Bearer {ADMIN_TOKEN}x"}):
            status, answer, _ = _get(port, path, headers)
            assert status == 401 and answer["www-authenticate"].startswith("Bearer"), (path, headers, status)
    good = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for path in ("/", "/metrics", "/readyz", "/api/status"):
        assert _get(port, path, good)[0] == 200, path
    assert _get(port, "/", {"Authorization": f"bearer {ADMIN_TOKEN}"})[0] == 200  # the scheme is case-insensitive
    # A token in the URL is only taken by the page, which trades it for a cookie.
    assert _get(port, f"/api/status?token={ADMIN_TOKEN}")[0] == 401
    assert _get(port, "/?token=wrong-token-0123456789abc")[0] == 401
    status, answer, _ = _get(port, f"/?token={ADMIN_TOKEN}")
    assert status == 303 and answer["location"] == "./" and ADMIN_TOKEN not in answer["location"]
    cookie = answer["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and ADMIN_TOKEN not in cookie
    pair = cookie.split(";", 1)[0]
    for path in ("/", "/api/status", "/metrics"):
        assert _get(port, path, {"Cookie": pair})[0] == 200, path
    name, value = pair.split("=", 1)
    assert _get(port, "/api/status", {"Cookie": f"{name}={value[:-1]}0"})[0] == 401


def test_the_admin_token_guards_every_path_but_healthz(start_router, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", ADMIN_TOKEN)
    config = base_config(tmp_path)
    config["admin"]["auth"] = {"token": "${env:ADMIN_TOKEN}"}
    router = start_router(config)
    _check_admin_token(router)
    router.stop()
    assert ADMIN_TOKEN not in router.stderr


def test_the_admin_token_from_a_file_guards_the_supervisor_of_workers(start_router, tmp_path) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    config = base_config(tmp_path, workers=2)
    config["admin"]["auth"] = {"token_file": str(token_file)}
    router = start_router(config)
    _check_admin_token(router)
    status = orjson.loads(_get(router.admin_port, "/api/status", {"Authorization": f"Bearer {ADMIN_TOKEN}"})[2])
    assert [w["alive"] for w in status["workers"]] == [True, True]


@pytest.mark.parametrize("auth, problem", [
    ({"token": "too-short"}, "admin.auth.token: the admin token must be at least 16 characters"),
    ({"token": ADMIN_TOKEN, "token_file": "/nonexistent"}, "admin.auth: expected exactly one of token, token_file"),
    ({"token_file": "/nonexistent/token"}, "admin.auth.token_file: cannot read /nonexistent/token"),
    ({"tokens": ADMIN_TOKEN}, "admin.auth"),
])
def test_a_bad_admin_auth_section_stops_start_up(tmp_path, auth, problem) -> None:
    config = base_config(tmp_path)
    config["admin"]["auth"] = auth
    with pytest.raises(RuntimeError) as err:
        RouterProcess(config, tmp_path)
    assert problem in str(err.value)
    assert "too-short" not in str(err.value).split(problem, 1)[1]


def test_the_status_page_works_in_chromium_with_the_token(start_router, tmp_path) -> None:
    from tests.test_admin import _chromium
    config = base_config(tmp_path)
    config["admin"]["auth"] = {"token": ADMIN_TOKEN}
    router = start_router(config)
    assert router.post("/v1/traces", make_request(spans=3).SerializeToString(), PB)[0] == 200

    def dump(url: str, profile: str) -> str:
        result = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / profile}", "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        return result.stdout
    dom = dump(f"http://127.0.0.1:{router.admin_port}/?token={ADMIN_TOKEN}", "with-token")
    assert "<td>out</td>" in dom and "<td>file</td>" in dom, dom  # the cookie took the page's fetches through
    assert '<div id="error"></div>' in dom
    dom = dump(f"http://127.0.0.1:{router.admin_port}/", "without-token")
    assert "<td>out</td>" not in dom and "api/status" not in dom  # the page itself is behind the token


# -- 3. the workers' internal sockets --------------------------------------------

def test_worker_sockets_are_owner_only_and_need_the_internal_token(start_router, tmp_path) -> None:
    import os
    config = base_config(tmp_path, workers=2, destinations={
        "traces": {"type": "file", "dir": str(tmp_path / "traces"), "format": "json", "trace_idle": "1s"}})
    router = start_router(config)
    sockets = sorted((tmp_path / "spool").glob("worker-*.sock"))
    assert [p.name for p in sockets] == ["worker-0.sock", "worker-1.sock"]
    for path in sockets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    span_request = make_request(spans=1).SerializeToString()
    for path in sockets:
        for headers in ({}, {"x-otlp-router-internal": "guess"}, {"x-otlp-router-internal": ""}):
            assert _uds(path, "GET", "/api/status", headers) == 403
            assert _uds(path, "GET", "/metrics", headers) == 403
            assert _uds(path, "GET", "/healthz", headers) == 403
            assert _uds(path, "POST", "/internal/append/traces", {
                **headers, "x-signal": "traces", "x-items": "1", "x-received": "0.0"}, span_request) == 403
    # The token is per start, in the workers' environment only; with it, the socket answers.
    workers = orjson.loads(router.get_admin("/healthz")[2])["workers"]
    environ = Path(f"/proc/{workers[0]['pid']}/environ").read_bytes().split(b"\0")
    token = next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"OTLP_ROUTER_INTERNAL_TOKEN="))
    assert len(token) >= 32 and token not in router.stderr
    assert _uds(sockets[0], "GET", "/api/status", {"x-otlp-router-internal": token}) == 200
    assert os.environ.get("OTLP_ROUTER_INTERNAL_TOKEN") is None
    # Hand-over between workers still works: each trace whole in one document.
    traces = 10
    for part in range(3):
        for t in range(traces):
            request = make_request(spans=1)
            span = request.resource_spans[0].scope_spans[0].spans[0]
            span.trace_id = (t + 1).to_bytes(16, "big")
            span.span_id = ((t + 1) * 10 + part + 1).to_bytes(8, "big")
            conn = http.client.HTTPConnection("127.0.0.1", router.http_port, timeout=10)
            conn.request("POST", "/v1/traces", body=request.SerializeToString(), headers=PB)
            assert conn.getresponse().status == 200
            conn.close()

    def documents() -> Any:
        docs = [orjson.loads(p.read_bytes()) for p in (tmp_path / "traces").rglob("*.json")]
        return len(docs) == traces and docs
    docs = wait_for(documents, timeout=20)
    assert docs and all(len(d["observations"]) == 3 for d in docs)
    status = orjson.loads(router.get_admin("/api/status")[2])
    assert status["accepted"] == 3 * traces and router.get_admin("/readyz")[0] == 200
    router.stop()
    # A restart draws a new token: the old one opens nothing.
    router = start_router(config)
    assert _uds(sockets[0], "GET", "/api/status", {"x-otlp-router-internal": token}) == 403


def test_one_masking_function_for_logs_tracebacks_and_texts_shown_elsewhere() -> None:
    import logging

    from otlp_router import logs
    logs.hide([f"Bearer {SECRET}", SECRET])
    assert logs.mask(f"HTTP 400: (Authorization: Bearer {SECRET}) and {SECRET}") == \
        "HTTP 400: (Authorization: ****) and ****"
    try:
        raise ValueError(f"backend said: {SECRET}")
    except ValueError:
        record = logging.LogRecord("otlp_router.delivery", logging.ERROR, __file__, 1, "failed: %s", (SECRET,),
                                   exc_info=__import__("sys").exc_info())
    assert logs._mask.filter(record)
    for formatter in (logging.Formatter(), logs.JsonFormatter()):
        text = formatter.format(record)
        assert SECRET not in text and "failed: ****" in text and "backend said: ****" in text, text
