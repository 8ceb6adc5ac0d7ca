"""Fuzzing for longer than the tests: the decoders in-process and a running router.

    python bench/fuzz.py                 # 5 minutes
    python bench/fuzz.py --minutes 1

The same strategies and checks as proto_tests/test_fuzz_decoders.py and
proto_tests/test_fuzz_router.py, in rounds until the time is up, alternating between
the decoders in-process (every signal; damaged protobuf, damaged JSON, compressed and
mislabelled bodies, bombs, caps around the body size) and one router process
(hostile HTTP requests over a keep-alive connection, damaged gRPC calls).

Prints the cases tried, the answers by status, and the router's largest resident
memory (sampled every 100 ms, children included). A failing case is shrunk by
Hypothesis and saved under bench/fuzz-failures/<time>-<target>/ (body.bin, case.json
and the error); the folder is only created then, and its path printed. A router that
dies is reported with its log and restarted. Exit status 1 when anything failed.

Not a test: nothing in tests/ or proto_tests/ imports it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

from otlp_router.model.signals import SIGNALS
from otlp_router.receivers import payload
from proto_tests.test_fuzz_decoders import (
    BOMB_SIZE,
    DEFAULT_CAP,
    Case,
    bomb_cases,
    cases,
    json_bodies,
    protobuf_bodies,
)
from proto_tests.test_fuzz_router import (
    GrpcCall,
    GrpcClient,
    HttpClient,
    HttpRequest,
    check_grpc_answer,
    check_http_answer,
    grpc_calls,
    http_requests,
    router_config,
    rss_bytes,
)
from tests.support import RouterProcess

FAILURES = Path(__file__).resolve().parent / "fuzz-failures"
ROUND_EXAMPLES = {"decoders": 400, "http": 300, "grpc": 60}


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DecoderInput:
    case: Case
    cap: int


@st.composite
def decoder_inputs(draw: st.DrawFn) -> DecoderInput:
    """Any body the decoders can be handed, with the cap they are handed it under."""
    signal = draw(st.sampled_from(list(SIGNALS.values())))
    shape = draw(st.sampled_from(["protobuf", "json", "encoded", "encoded", "bomb"]))
    if shape == "bomb":
        case = draw(bomb_cases(signal))
        return DecoderInput(case, draw(st.sampled_from([1, 1024, DEFAULT_CAP, BOMB_SIZE - 1])))
    if shape == "encoded":
        case = draw(cases(signal))
    else:
        kind = payload.PROTOBUF if shape == "protobuf" else payload.JSON
        body = draw(protobuf_bodies(signal) if shape == "protobuf" else json_bodies(signal))
        case = Case(signal, kind, body, "identity", body, intact=True)
    # Caps around the decompressed size check the boundary: exactly `cap` bytes are accepted.
    cap = draw(st.sampled_from([DEFAULT_CAP, max(1, len(case.raw)), len(case.raw) + 1, max(1, len(case.raw) - 1)]))
    return DecoderInput(case, cap)


def describe(value: Any) -> tuple[dict[str, Any], bytes]:
    """What reproduces an input: its parameters (JSON) and its body bytes."""
    if isinstance(value, DecoderInput):
        c = value.case
        return ({"target": "payload.decompress + payload.decode", "signal": c.signal.name, "kind": c.kind,
                 "encoding": c.encoding, "cap": value.cap, "intact": c.intact, "raw_bytes": len(c.raw)}, c.body)
    if isinstance(value, HttpRequest):
        headers = " ".join(f"-H {json.dumps(f'{k}: {v}')}" for k, v in value.headers.items())
        return ({"target": "router HTTP", "method": value.method, "path": value.path, "headers": value.headers,
                 "chunked": value.chunked,
                 "curl": f"curl -sS -X {value.method} 'http://127.0.0.1:4318{value.path}' {headers} "
                         "--data-binary @body.bin"}, value.body)
    if isinstance(value, GrpcCall):
        return ({"target": "router gRPC", "signal": value.signal.name, "service": value.signal.grpc_service,
                 "method": "Export", "gzip": value.gzip}, value.body)
    return {"target": "unknown", "repr": repr(value)[:2000]}, b""


# ---------------------------------------------------------------------------------------------
# Rounds
# ---------------------------------------------------------------------------------------------

@dataclass
class Failure:
    target: str
    error: str
    saved: Path


@dataclass
class Stats:
    tried: Counter[str] = field(default_factory=Counter)
    answers: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    router_max_rss: int = 0
    router_restarts: int = 0

    def count(self, target: str, answer: str) -> None:
        self.tried[target] += 1
        self.answers.setdefault(target, Counter())[answer] += 1


def fuzz_round(target: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], str], examples: int,
               stats: Stats) -> Failure | None:
    """`examples` generated inputs through `check`; a failure is shrunk, saved and returned."""
    last: list[Any] = []

    @settings(max_examples=examples, deadline=None, database=None, verbosity=Verbosity.quiet,
              phases=(Phase.generate, Phase.shrink),
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(value: Any) -> None:
        last[:] = [value]  # after shrinking, Hypothesis runs the smallest failing input last
        stats.count(target, check(value))

    try:
        run()
    except Exception:  # noqa: BLE001 - every failure is a finding to save
        return save_failure(target, last[0] if last else None, traceback.format_exc())
    return None


def save_failure(target: str, value: Any, error: str) -> Failure:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = FAILURES / f"{stamp}-{target}"
    folder.mkdir(parents=True)
    meta, body = describe(value)
    (folder / "case.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    (folder / "body.bin").write_bytes(body)
    (folder / "error.txt").write_text(error)
    return Failure(target, error.strip().splitlines()[-1], folder)


def check_decoder_input(value: DecoderInput) -> str:
    return str(value.case.check(value.cap).status)


class Router:
    """The router under fuzzing, restarted if it dies, with its resident memory sampled."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.restarts = 0
        self.max_rss = 0
        self.process = self._start()
        self.http = HttpClient(self.process.http_port)
        self.grpc = GrpcClient(self.process.grpc_port)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _start(self) -> RouterProcess:
        directory = self.workdir / f"router-{self.restarts}"
        directory.mkdir()
        return RouterProcess(router_config(directory), directory)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.max_rss = max(self.max_rss, rss_bytes(self.process.proc.pid))

    def alive(self) -> bool:
        return self.process.proc.poll() is None

    def restart(self) -> str:
        """Starts a new router; returns the dead one's exit status and the end of its log."""
        self.process.kill()
        died = f"exit status {self.process.proc.returncode}\n{self.process.stderr[-5000:]}"
        self.restarts += 1
        self.http.close()
        self.grpc.close()
        self.process = self._start()
        self.http = HttpClient(self.process.http_port)
        self.grpc = GrpcClient(self.process.grpc_port)
        return died

    def check_http(self, request: HttpRequest) -> str:
        answer = self.http.send(request)
        check_http_answer(request, answer)
        return str(answer.status)

    def check_grpc(self, call: GrpcCall) -> str:
        code, body, details = self.grpc.call(call)
        check_grpc_answer(call, code, body, details)
        return code.name

    def close(self) -> None:
        self._stop.set()
        self._sampler.join(1)
        self.http.close()
        self.grpc.close()
        try:
            self.process.stop()
        except RuntimeError:
            self.process.kill()


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to fuzz (default 5)")
    return parser.parse_args(argv)


def run(minutes: float) -> Stats:
    stats = Stats()
    deadline = time.monotonic() + minutes * 60
    workdir = Path(tempfile.mkdtemp(prefix="otlp-router-fuzz-"))
    router = Router(workdir)
    print(f"fuzzing for {minutes:g} min; router pid {router.process.proc.pid}, http :{router.process.http_port}, "
          f"grpc :{router.process.grpc_port}", file=sys.stderr, flush=True)
    rounds: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], str]]] = [
        ("decoders", decoder_inputs(), check_decoder_input),
        ("http", http_requests(), router.check_http),
        ("grpc", grpc_calls(), router.check_grpc),
    ]
    try:
        while time.monotonic() < deadline:
            for target, strategy, check in rounds:
                if time.monotonic() >= deadline:
                    break
                failure = fuzz_round(target, strategy, check, ROUND_EXAMPLES[target], stats)
                if failure is not None:
                    stats.failures.append(failure)
                    print(f"FAILURE in {target}: {failure.error}\n  saved: {failure.saved}", file=sys.stderr,
                          flush=True)
                if target != "decoders" and not router.alive():
                    died = router.restart()
                    stats.failures.append(save_failure(f"{target}-router-died", None, died))
                    print(f"FAILURE: the router died ({died.splitlines()[0]}); restarted", file=sys.stderr,
                          flush=True)
            print(f"  {int(deadline - time.monotonic())} s left, {sum(stats.tried.values()):,} cases",
                  file=sys.stderr, flush=True)
    finally:
        router.close()
        stats.router_max_rss, stats.router_restarts = router.max_rss, router.restarts
        shutil.rmtree(workdir, ignore_errors=True)
    return stats


def report(stats: Stats, seconds: float) -> str:
    lines = [f"fuzzed for {seconds:.0f} s: {sum(stats.tried.values()):,} cases"]
    for target in ("decoders", "http", "grpc"):
        answers = stats.answers.get(target, Counter())
        shown = ", ".join(f"{answer} {n:,}" for answer, n in sorted(answers.items()))
        lines.append(f"  {target:8} {stats.tried[target]:>8,} cases   answers: {shown or '-'}")
    lines.append(f"  router max RSS {stats.router_max_rss / 2**20:.0f} MiB (sampled every 100 ms, workers "
                 f"included); restarts {stats.router_restarts}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    lines.append(f"  bench process (in-process decoders) max RSS {own / 2**20:.0f} MiB")
    if stats.failures:
        lines.append(f"FAILURES ({len(stats.failures)}):")
        lines.extend(f"  {f.target}: {f.error}\n    {f.saved}" for f in stats.failures)
    else:
        lines.append("no failures")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    stats = run(args.minutes)
    print(report(stats, time.monotonic() - started), flush=True)
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
