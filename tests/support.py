"""Shared test helpers: a router started as a real process, and OTLP payloads."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = Path(__file__).resolve().parent.parent
_READY = re.compile(r"otlp-router ready(?: http=(?P<http>\S+))?(?: grpc=(?P<grpc>\S+))?(?: admin=(?P<admin>\S+))?")


class RouterProcess:
    """`python -m otlp_router run` on port 0 endpoints; ports are read from its ready line."""

    def __init__(self, config: dict[str, Any] | str, workdir: Path, timeout: float = 20.0,
                 preexec_fn: Any = None) -> None:
        self.workdir = workdir
        self.config_path = workdir / "router.yaml"
        self.config_path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
        self.stderr_lines: list[str] = []
        self._ready = threading.Event()
        self.http_port = self.grpc_port = self.admin_port = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "otlp_router", "run", "-c", str(self.config_path)],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=preexec_fn)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"router did not start (exit {self.proc.returncode}):\n{self.stderr}")

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            m = _READY.search(line)
            if m:
                if m.group("http"):
                    self.http_port = int(m.group("http").rsplit(":", 1)[1])
                if m.group("grpc"):
                    self.grpc_port = int(m.group("grpc").rsplit(":", 1)[1])
                if m.group("admin"):
                    self.admin_port = int(m.group("admin").rsplit(":", 1)[1])
                self._ready.set()

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def get_admin(self, path: str) -> tuple[int, dict[str, str], bytes]:
        return self.post(path, b"", {}, method="GET", port=self.admin_port)

    def post(self, path: str, body: bytes, headers: dict[str, str], method: str = "POST", port: int | None = None
             ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.http_port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait for the drain, return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(f"router did not stop within {timeout}s:\n{self.stderr}")
        self._close()
        return self.proc.returncode

    def _close(self) -> None:
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`otlp-router ARGS` in a process of its own, as a user runs it (no standard input)."""
    return subprocess.run([sys.executable, "-m", "otlp_router", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})


def base_config(tmp: Path, destinations: dict[str, Any] | None = None,
                routes: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    """A router config on port 0 endpoints writing OTLP JSON files under `tmp/out`."""
    destinations = destinations or {"out": {"type": "file", "dir": str(tmp / "out"), "format": "otlp_json"}}
    return {
        "receivers": {"otlp": {"http": {"endpoint": "127.0.0.1:0"}, "grpc": {"endpoint": "127.0.0.1:0"}}},
        "spool": {"dir": str(tmp / "spool")},
        "admin": {"endpoint": "127.0.0.1:0"},
        "workers": 1,  # one process unless a test is about workers
        "routes": routes or [{"name": "all", "destinations": list(destinations)}],
        "destinations": destinations,
        **top,
    }


def make_request(spans: int = 3, attributes: int = 3, seed: int = 1) -> ExportTraceServiceRequest:
    """A request with one resource and scope and `spans` spans of one trace, the first the parent."""
    trace_id = bytes([seed] * 16)
    span_list = []
    for i in range(spans):
        span_list.append({
            "trace_id": trace_id,
            "span_id": bytes([seed, 0, 0, 0, 0, 0]) + (i + 1).to_bytes(2, "big"),
            "parent_span_id": b"" if i == 0 else bytes([seed, 0, 0, 0, 0, 0, 0, 1]),
            "name": f"span-{i}",
            "kind": 3,
            "start_time_unix_nano": 1_700_000_000_000_000_000 + i,
            "end_time_unix_nano": 1_700_000_000_500_000_000 + i,
            "attributes": [{"key": f"attr.{j}", "value": {"string_value": f"value-{i}-{j}"}}
                           for j in range(attributes)],
            "events": [{"name": "ev", "time_unix_nano": 1_700_000_000_100_000_000,
                        "attributes": [{"key": "n", "value": {"int_value": i}}]}],
            "status": {"code": 1},
        })
    return ExportTraceServiceRequest(resource_spans=[{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "test-svc"}}]},
        "scope_spans": [{"scope": {"name": "test-scope", "version": "1.0"}, "spans": span_list}],
    }])


def read_otlp_json_lines(directory: Path, signal: str = "traces") -> list[bytes]:
    """Every line of every OTLP JSON file a file destination wrote under `directory`."""
    lines = []
    for path in sorted((directory / signal).rglob("*.jsonl")):
        lines.extend(line for line in path.read_bytes().splitlines() if line)
    return lines


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def numbered_request(n: int, spans: int = 10) -> ExportTraceServiceRequest:
    """Request number n, one trace whose span ids (n, i) make every span distinct and countable."""
    request = make_request(spans=spans, seed=(n % 250) + 1)
    for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.span_id = (n * 10_000 + i + 1).to_bytes(8, "big")
        span.trace_id = (n + 1).to_bytes(16, "big")
        span.parent_span_id = b""
    return request


class AckedLoad(threading.Thread):
    """Posts numbered requests to whichever router `current[0]` is; remembers the
    span ids of every request answered 200."""

    def __init__(self, current: list[RouterProcess], spans: int = 10) -> None:
        super().__init__(daemon=True)
        self.current, self.spans = current, spans
        self.acked: set[bytes] = set()
        self.sent = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            request = numbered_request(self.sent, self.spans)
            self.sent += 1
            try:
                status, _, _ = self.current[0].post("/v1/traces", request.SerializeToString(),
                                                    {"Content-Type": "application/x-protobuf"})
            except OSError:
                time.sleep(0.02)
                continue
            if status == 200:
                self.acked.update(s.span_id for s in request.resource_spans[0].scope_spans[0].spans)
            else:
                time.sleep(0.02)
