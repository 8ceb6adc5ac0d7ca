"""Relative paths in router.yaml are the config file's directory's, whatever the working
directory; `check` creates no directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from otlp_router import config
from tests.certs import make_pki
from tests.support import ROOT, make_request, read_otlp_json_lines, run_cli, wait_for

KEY = "k" * 24
PB = {"Content-Type": "application/x-protobuf"}


def _tree(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def test_every_relative_path_resolves_against_the_config_files_directory(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "etc" / "tls")
    text = f"""
receivers:
  otlp:
    http: {{endpoint: 127.0.0.1:0, tls: {{cert_file: tls/{pki.server_cert.name}, key_file: tls/{pki.server_key.name},
                                       client_ca_file: tls/{pki.ca.name}}}}}
    auth: {{api_keys: [{{name: a, key_file: secrets/key}}]}}
admin: {{endpoint: 127.0.0.1:0, auth: {{token_file: secrets/token}}}}
spool: {{dir: ./state/spool}}
routes: [{{name: all, destinations: [lines, traces, fwd]}}]
destinations:
  lines: {{type: file, dir: out/lines, format: otlp_json}}
  traces: {{type: file, dir: "${{env:OUT_DIR}}", format: json}}
  fwd: {{type: otlp_http, endpoint: "https://127.0.0.1:9", tls: {{ca_file: tls/{pki.ca.name}}}}}
"""
    (tmp_path / "etc" / "secrets").mkdir(parents=True)
    (tmp_path / "etc" / "secrets" / "key").write_text(KEY)
    (tmp_path / "etc" / "secrets" / "token").write_text("t" * 20)
    os.environ["OUT_DIR"] = "out/traces"
    try:
        cfg = config.parse(text, str(tmp_path / "etc" / "router.yaml"))
    finally:
        del os.environ["OUT_DIR"]
    etc = tmp_path / "etc"
    assert cfg.spool.dir == etc / "state" / "spool"
    assert cfg.destinations["lines"].destination.dir == etc / "out" / "lines"  # type: ignore[attr-defined]
    assert cfg.destinations["traces"].destination.store.dir == etc / "out" / "traces"  # type: ignore[attr-defined]
    assert cfg.http is not None and cfg.http.tls is not None
    assert (cfg.http.tls.cert_file, cfg.http.tls.client_ca_file) == (str(pki.server_cert), str(pki.ca))
    assert cfg.auth is not None and cfg.admin is not None  # both read their files from etc/secrets


def test_absolute_paths_stay_and_the_default_spool_is_next_to_the_config(tmp_path: Path) -> None:
    text = f"""
routes: [{{name: all, destinations: [d]}}]
destinations: {{d: {{type: file, dir: {tmp_path / "abs"}}}}}
"""
    cfg = config.parse(text, str(tmp_path / "conf" / "router.yaml"))
    assert cfg.destinations["d"].destination.dir == tmp_path / "abs"  # type: ignore[attr-defined]
    assert cfg.spool.dir == tmp_path / "conf" / "data" / "spool"


def _start(config_file: Path, cwd: Path) -> tuple[subprocess.Popen[str], list[str], int, threading.Thread]:
    proc = subprocess.Popen([sys.executable, "-m", "otlp_router", "run", "-c", str(config_file)], cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("otlp-router ready"):
                ready.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(30):
        proc.kill()
        _close(proc, reader)
        raise AssertionError("".join(lines))
    port = int(re.search(r"http=\S+:(\d+)", "".join(lines)).group(1))  # type: ignore[union-attr]
    return proc, lines, port, reader


def _close(proc: subprocess.Popen[str], reader: threading.Thread) -> None:
    proc.wait(30)
    reader.join(10)
    assert proc.stderr is not None
    proc.stderr.close()


def test_a_router_started_elsewhere_uses_the_files_next_to_its_config(tmp_path: Path) -> None:
    import http.client

    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    (etc / "secrets").mkdir(parents=True)
    elsewhere.mkdir()
    (etc / "secrets" / "key").write_text(KEY + "\n")
    (etc / "router.yaml").write_text(yaml.safe_dump({
        "receivers": {"otlp": {"http": {"endpoint": "127.0.0.1:0"},
                               "auth": {"api_keys": [{"name": "a", "key_file": "secrets/key"}]}}},
        "workers": 1, "spool": {"dir": "spool"},
        "routes": [{"name": "all", "destinations": ["out"]}],
        "destinations": {"out": {"type": "file", "dir": "out", "format": "otlp_json"}}}))
    proc, lines, port, reader = _start(etc / "router.yaml", elsewhere)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/traces", make_request().SerializeToString(),
                     {**PB, "Authorization": f"Bearer {KEY}"})
        assert conn.getresponse().status == 200
        conn.close()
        assert wait_for(lambda: read_otlp_json_lines(etc / "out"), timeout=15)
        assert (etc / "spool" / "otlp-router.pid").read_text().strip() == str(proc.pid)
        # `reload` from a third directory finds the router through the same resolved spool.dir.
        result = run_cli("reload", "-c", os.path.relpath(etc / "router.yaml", tmp_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert wait_for(lambda: any("reloaded" in line for line in lines), timeout=15), "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        _close(proc, reader)
    assert _tree(elsewhere) == set()  # nothing written where it was started
    assert lines[-1].strip() == "otlp-router stopped", "".join(lines)


def test_check_creates_no_directory(tmp_path: Path) -> None:
    conf, cwd = tmp_path / "conf", tmp_path / "cwd"
    conf.mkdir()
    cwd.mkdir()
    (conf / "existing").mkdir()
    (conf / "a-file").write_text("")
    (conf / "router.yaml").write_text(yaml.safe_dump({
        "routes": [{"name": "all", "destinations": ["traces", "raw", "there"]}],
        "destinations": {"traces": {"type": "file", "dir": "data/traces", "format": "json"},
                         "raw": {"type": "file", "dir": "data/raw", "format": "otlp_json"},
                         "there": {"type": "file", "dir": "existing", "format": "otlp_json"}}}))
    before_conf, before_cwd = _tree(conf), _tree(cwd)
    result = run_cli("check", "-c", str(conf / "router.yaml"), cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"destination traces (file): ok: {conf / 'data' / 'traces'} does not exist yet; would create it " \
           f"under {conf} (writable)" in result.stdout
    assert f"destination there (file): ok: {conf / 'existing'} is writable" in result.stdout
    assert (_tree(conf), _tree(cwd)) == (before_conf, before_cwd)  # the probe in `existing` is gone too

    (conf / "router.yaml").write_text(yaml.safe_dump({
        "routes": [{"name": "all", "destinations": ["bad"]}],
        "destinations": {"bad": {"type": "file", "dir": "a-file/sub", "format": "otlp_json"}}}))
    result = run_cli("check", "-c", str(conf / "router.yaml"), cwd=cwd)
    assert result.returncode == 1
    assert f"FAILED: {conf / 'a-file' / 'sub'} cannot be created: {conf / 'a-file'} is not a directory" \
        in result.stdout
