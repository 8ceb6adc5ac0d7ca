"""The command line as an operator meets it, over real processes: help, options, messages,
`explain` input and report, `reload`, `decode | head`, a quiet log, a clean stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml

from otlp_router.model import otlp_json
from tests.downstream import HttpSink
from tests.support import ROOT, RouterProcess, base_config, make_request, numbered_request, run_cli, wait_for

PB = {"Content-Type": "application/x-protobuf"}


def _write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


# -- help and options ---------------------------------------------------------------------

@pytest.mark.parametrize("command", ["run", "check", "explain", "decode", "replay", "reload"])
def test_every_subcommand_help_has_a_description_and_config_help(command: str, tmp_path: Path) -> None:
    result = run_cli(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    usage, _, rest = result.stdout.partition("\n\n")
    description = rest.split("\n\n")[0]
    assert len(description) > 40 and not description.startswith(("positional", "options")), result.stdout
    assert "--log-level" in result.stdout
    if command != "decode":
        assert "the router's configuration file (default: router.yaml)" in " ".join(result.stdout.split())


def test_global_options_work_after_the_subcommand_too(tmp_path: Path) -> None:
    config = _write(tmp_path / "r.yaml", base_config(tmp_path, {"d": {"type": "discard"}}))
    for args in (["--log-level", "warning", "check", "-c", str(config)],
                 ["check", "-c", str(config), "--log-level", "warning", "--log-format", "json"],
                 ["check", "--log-format=json", "-c", str(config)]):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
    assert run_cli("check", "--log-level", "loud", cwd=tmp_path).returncode == 2  # still validated


# -- messages -----------------------------------------------------------------------------

def test_a_missing_config_says_it_cannot_be_read(tmp_path: Path) -> None:
    result = run_cli("check", "-c", "alt.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "otlp-router: cannot read alt.yaml: No such file or directory"


def test_a_typod_key_is_named_with_the_close_match(tmp_path: Path) -> None:
    config = base_config(tmp_path, {"d": {"type": "discard"}})
    config["destination"] = config.pop("destinations")
    result = run_cli("check", "-c", str(_write(tmp_path / "r.yaml", config)), cwd=tmp_path)
    assert result.returncode == 2
    assert "r.yaml: destination: unknown key (did you mean destinations? expected one of:" in result.stderr
    assert "is required" not in result.stderr
    # Inside a section too, where the key is required: the typo first, not "type: is required".
    config = base_config(tmp_path, {"d": {"typ": "discard"}})
    result = run_cli("check", "-c", str(_write(tmp_path / "r.yaml", config)), cwd=tmp_path)
    assert "destinations.d.typ: unknown key; did you mean type? (type is required)" in result.stderr


# -- explain --------------------------------------------------------------------------------

def _explain_config(tmp_path: Path) -> Path:
    return _write(tmp_path / "r.yaml", {
        "spool": {"dir": str(tmp_path / "spool")},
        "routes": [{"name": "all", "destinations": ["kept", "sampled"]}],
        "destinations": {"kept": {"type": "discard"},
                         "sampled": {"type": "discard", "sampling": {"rate": 0.0}}}})


def test_explain_reads_a_pretty_printed_request_and_says_sampled_out(tmp_path: Path) -> None:
    config = _explain_config(tmp_path)
    request = tmp_path / "request.json"
    request.write_text(json.dumps(orjson.loads(otlp_json.encode(make_request(spans=2))), indent=2))
    result = run_cli("explain", "-c", str(config), str(request), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("  -> sampled: sampled out") == 2 and result.stdout.count("  -> kept:") == 2
    result = run_cli("explain", "-c", str(config), "--json", str(request), cwd=tmp_path)
    entries = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(list(e["destinations"]), e["sampled_out"]) for e in entries] == [(["kept"], ["sampled"])] * 2


def test_explain_reads_json_lines_and_names_a_bad_line(tmp_path: Path) -> None:
    config = _explain_config(tmp_path)
    lines = tmp_path / "lines.jsonl"
    lines.write_bytes(otlp_json.encode(make_request(spans=1, seed=1)) + b"\n"
                      + otlp_json.encode(make_request(spans=1, seed=2)) + b"\n")
    result = run_cli("explain", "-c", str(config), "--json", str(lines), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    lines.write_bytes(lines.read_bytes() + b"{not json\n")
    result = run_cli("explain", "-c", str(config), str(lines), cwd=tmp_path)
    assert result.returncode == 2 and "line 3 (read as JSON lines): invalid JSON" in result.stderr
    broken = tmp_path / "broken.json"  # pretty-printed with a mistake: the document's error, not line 1's
    broken.write_text('{\n  "resourceSpans": [\n    {,}\n  ]\n}\n')
    result = run_cli("explain", "-c", str(config), str(broken), cwd=tmp_path)
    assert result.returncode == 2 and "is not OTLP JSON: invalid JSON" in result.stderr
    assert "line 1 column 2" not in result.stderr and "read as JSON lines" not in result.stderr


# -- decode | head --------------------------------------------------------------------------

def test_decode_into_a_reader_that_stops_early_exits_quietly(tmp_path: Path) -> None:
    export = tmp_path / "traces.jsonl"
    export.write_bytes(b"".join(otlp_json.encode(make_request(spans=20, seed=i % 200 + 1)) + b"\n"
                                for i in range(3000)))
    proc = subprocess.Popen([sys.executable, "-m", "otlp_router", "decode", str(export)], cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    code = proc.wait(60)
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert orjson.loads(first)["resourceSpans"]
    assert (code, stderr) == (0, b"")


# -- reload ---------------------------------------------------------------------------------

def test_reload_of_another_file_is_refused_and_of_the_same_one_says_which(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    router = RouterProcess(config, tmp_path)
    try:
        (tmp_path / "alt.yaml").write_text(router.config_path.read_text())
        result = run_cli("reload", "-c", "alt.yaml", cwd=tmp_path)
        assert result.returncode == 1, result.stdout
        assert f"was started with {router.config_path}, not alt.yaml" in result.stderr
        assert "nothing sent" in result.stderr
        time.sleep(0.5)
        assert "reloaded" not in router.stderr

        os.symlink(router.config_path, tmp_path / "link.yaml")  # the same file by another name is fine
        for name in ("router.yaml", "link.yaml"):
            result = run_cli("reload", "-c", name, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert f"{name} is valid; asked the router (pid {router.proc.pid}) to reload: it re-reads " \
                   f"{router.config_path}" in result.stdout
        assert wait_for(lambda: router.stderr.count("reloaded") >= 2, timeout=15), router.stderr
    finally:
        router.stop()


# -- a quiet log and a clean stop -------------------------------------------------------------

def test_workers_log_no_http_requests_and_leave_no_sockets_behind(tmp_path: Path) -> None:
    destinations = {"traces": {"type": "file", "dir": str(tmp_path / "traces"), "format": "json",
                               "trace_idle": "1s"}}
    router = RouterProcess(base_config(tmp_path, destinations, workers=2), tmp_path, timeout=60)
    try:
        assert sorted(p.name for p in (tmp_path / "spool").glob("worker-*.sock")) == \
            ["worker-0.sock", "worker-1.sock"]
        accepted = 0
        for n in range(40):  # 40 traces over fresh connections: some reach the worker that does not own them
            for _ in range(50):
                if router.post("/v1/traces", numbered_request(n, spans=2).SerializeToString(), PB)[0] == 200:
                    accepted += 1
                    break
                time.sleep(0.1)
        assert accepted == 40
        for _ in range(5):  # the supervisor asks every worker over its socket
            assert router.get_admin("/api/status")[0] == 200
            assert router.get_admin("/metrics")[0] == 200
        assert wait_for(lambda: len(list((tmp_path / "traces").rglob("*.json"))) >= 40, timeout=20)
    finally:
        code = router.stop(timeout=40)
    assert code == 0
    assert "httpx" not in router.stderr and "HTTP Request" not in router.stderr, router.stderr
    assert list((tmp_path / "spool").glob("worker-*.sock")) == []
    assert router.stderr_lines[-1].strip() == "otlp-router stopped", router.stderr
    assert router.stderr.count("otlp-router stopped") == 1  # the supervisor's, not one per worker


def test_check_prints_no_http_request_lines(tmp_path: Path) -> None:
    sink = HttpSink()
    try:
        config = _write(tmp_path / "r.yaml", base_config(tmp_path, {"fwd": {"type": "otlp_http",
                                                                             "endpoint": sink.url}}))
        result = run_cli("check", "-c", str(config), cwd=tmp_path)
    finally:
        sink.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "destination fwd (otlp_http): ok: HTTP 200" in result.stdout
    assert "httpx" not in result.stderr and "HTTP Request" not in result.stderr + result.stdout
