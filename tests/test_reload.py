"""Reload: SIGHUP or `otlp-router reload` swaps routes and destinations without dropping a connection
or a spooled span; an invalid config is refused and the old one keeps running."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys

import yaml

from tests.support import base_config, make_request, read_otlp_json_lines, wait_for

PB = {"Content-Type": "application/x-protobuf"}


def _post_on(conn: http.client.HTTPConnection, seed: int) -> int:
    conn.request("POST", "/v1/traces", body=make_request(spans=2, seed=seed).SerializeToString(), headers=PB)
    response = conn.getresponse()
    response.read()
    return response.status


def test_a_valid_reload_swaps_routes_and_keeps_connections(start_router, tmp_path) -> None:
    config = base_config(tmp_path, destinations={
        "a": {"type": "file", "dir": str(tmp_path / "a"), "format": "otlp_json"}})
    router = start_router(config)
    conn = http.client.HTTPConnection("127.0.0.1", router.http_port, timeout=10)
    assert _post_on(conn, 1) == 200
    config["destinations"] = {"b": {"type": "file", "dir": str(tmp_path / "b"), "format": "otlp_json"}}
    config["routes"] = [{"name": "to-b", "destinations": ["b"]}]
    router.config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "otlp_router", "reload", "-c", str(router.config_path)],
                            capture_output=True, text=True, timeout=30, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: "reloaded" in router.stderr)
    assert _post_on(conn, 2) == 200  # the same keep-alive connection, after the reload
    conn.close()
    router.stop()
    assert len(read_otlp_json_lines(tmp_path / "a")) == 1
    assert len(read_otlp_json_lines(tmp_path / "b")) == 1
    assert "destinations added ['b']" in router.stderr and "removed ['a']" in router.stderr


def test_an_invalid_config_is_refused_and_the_old_one_keeps_running(start_router, tmp_path) -> None:
    config = base_config(tmp_path)
    router = start_router(config)
    router.config_path.write_text("routes: [{name: x, destinations: [nowhere]}]\ndestinations: {}\n")
    result = subprocess.run([sys.executable, "-m", "otlp_router", "reload", "-c", str(router.config_path)],
                            capture_output=True, text=True, timeout=30, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "invalid config" in result.stderr
    router.proc.send_signal(signal.SIGHUP)  # the router itself refuses it too
    assert wait_for(lambda: "reload refused, the running config stays" in router.stderr)
    assert router.post("/v1/traces", make_request().SerializeToString(), PB)[0] == 200
    router.stop()
    assert len(read_otlp_json_lines(tmp_path / "out")) == 1


def test_a_changed_destination_keeps_what_its_spool_holds(start_router, tmp_path) -> None:
    from tests.downstream import HttpSink
    sink = HttpSink()
    port = sink.port
    sink.close()  # down: spans wait in the spool
    config = base_config(tmp_path, destinations={"down": {
        "type": "otlp_http", "endpoint": f"http://127.0.0.1:{port}/v1/traces",
        "retry": {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed": "0s"}}})
    router = start_router(config)
    sent = make_request(spans=5, seed=4)
    assert router.post("/v1/traces", sent.SerializeToString(), PB)[0] == 200
    sink = HttpSink()
    try:
        config["destinations"]["down"]["endpoint"] = sink.url  # the fixed address
        router.config_path.write_text(yaml.safe_dump(config))
        router.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "changed ['down']" in router.stderr)
        assert wait_for(lambda: len(sink.span_ids()) == 5, timeout=15)
    finally:
        sink.close()


def test_a_sighup_right_after_the_ready_line_reloads_and_never_ends_the_router(start_router, tmp_path) -> None:
    """Signal handlers are in place before the ready line: SIGHUP's default action ends a process."""
    for n in range(3):
        router = start_router(base_config(tmp_path / str(n)), workdir=tmp_path / str(n))
        router.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reloaded" in router.stderr, timeout=20), router.stderr
        assert router.proc.poll() is None
        router.stop()
