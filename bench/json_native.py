"""OTLP JSON codec: the native core (otlp_router._native) against the former pure-Python codec,
in one run.

The former codec is loaded from git (``git show REV:otlp_router/model/otlp_json.py``, REV
defaulting to the last commit that still had the pure-Python version) or from a file given
with ``--baseline``.  Payload: bench/codec.py's request (100 spans, 10 attributes and 2 events
each), plus the same spans with 3 KB of GenAI message content each.  Prints spans/s of decode
(JSON bytes -> message) and encode (message -> JSON bytes) for both codecs and the ratios.

With ``--native-baseline SO`` (another build of ``otlp_router._native``, e.g. one copied
before a change), it also times the transcoder alone (``json_to_proto``: JSON bytes -> wire
bytes) of that build and of this one back to back, rounds interleaved and in CPU time so that
load on the machine hits both alike, and prints us per request, MB/s and the ratio.

    python bench/json_native.py [--baseline FILE | --rev REV] [--native-baseline SO]
                                [--rounds N] [--min-time S]
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from bench.codec import SPANS, attribute, payload  # noqa: E402
from bench.harness import seconds_per_call  # noqa: E402
from otlp_router import _native  # noqa: E402
from otlp_router.model import otlp_json as native  # noqa: E402

PURE_PYTHON_REV = "f759cb1"  # the last commit with the generated pure-Python codec


def load_baseline(path: str | None, rev: str) -> ModuleType:
    if path is None:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:otlp_router/model/otlp_json.py"],
                                check=True, capture_output=True, text=True).stdout
        handle = tempfile.NamedTemporaryFile("w", suffix="_otlp_json_python.py", delete=False)
        handle.write(source)
        handle.close()
        path = handle.name
    spec = importlib.util.spec_from_file_location("otlp_json_python", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "_Careful" in source_of(module), f"{path} is not the pure-Python codec"
    return module


def source_of(module: ModuleType) -> str:
    return Path(module.__file__ or "").read_text()


def load_native(path: str) -> ModuleType:
    """Another build of the extension module, loaded beside the package's own."""
    loader = importlib.machinery.ExtensionFileLoader("otlp_router._native", path)
    spec = importlib.util.spec_from_file_location("otlp_router._native", path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def cpu_per_call(fns: dict[str, Callable[[], object]], min_time: float, rounds: int) -> dict[str, float]:
    """Best CPU seconds per call of each fn; the rounds alternate between them."""
    loops = {}
    for name, fn in fns.items():
        n = 1
        while True:
            start = time.process_time()
            for _ in range(n):
                fn()
            if time.process_time() - start >= min_time:
                break
            n *= 2
        loops[name] = n
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.process_time()
            for _ in range(loops[name]):
                fn()
            best[name] = min(best[name], (time.process_time() - start) / loops[name])
    return best


def genai_payload() -> ExportTraceServiceRequest:
    request = payload()
    for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.attributes.extend([
            attribute("gen_ai.request.model", "gpt-4o"),
            attribute("gen_ai.input.messages", ('[{"role":"user","content":"' + f"question {i} " * 150)[:1500] + '"}]'),
            attribute("gen_ai.output.messages", ('[{"role":"assistant","content":"' + "answer é " * 170)[:1500] + '"}]'),
        ])
    return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a file holding the pure-Python otlp_json module")
    parser.add_argument("--rev", default=PURE_PYTHON_REV, help="git revision to take it from otherwise")
    parser.add_argument("--native-baseline", metavar="SO", help="another build of otlp_router._native to "
                        "compare json_to_proto with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.3)
    args = parser.parse_args()
    python = load_baseline(args.baseline, args.rev)
    before = load_native(args.native_baseline) if args.native_baseline else None
    kind = ExportTraceServiceRequest.DESCRIPTOR.full_name

    for name, request in (("100 spans x 10 attributes", payload()), ("GenAI spans, 3 KB content", genai_payload())):
        body = python.encode(request)
        assert native.encode(request) == body
        assert native.decode(ExportTraceServiceRequest, body) == python.decode(ExportTraceServiceRequest, body)
        print(f"{name}: {len(body)} bytes of JSON")

        def rate(fn: object) -> float:
            return SPANS / seconds_per_call(fn, args.min_time, args.rounds)  # type: ignore[arg-type]

        rates = {
            "decode python": rate(lambda: python.decode(ExportTraceServiceRequest, body)),
            "decode native": rate(lambda: native.decode(ExportTraceServiceRequest, body)),
            "encode python": rate(lambda: python.encode(request)),
            "encode native": rate(lambda: native.encode(request)),
        }
        for key, value in rates.items():
            print(f"  {key:14s} {value:>12,.0f} spans/s")
        print(f"  decode native/python {rates['decode native'] / rates['decode python']:.2f}x, "
              f"encode native/python {rates['encode native'] / rates['encode python']:.2f}x")
        if before is not None:
            assert before.json_to_proto(kind, body) == _native.json_to_proto(kind, body)
            cpu = cpu_per_call({"baseline": lambda: before.json_to_proto(kind, body),
                                "this build": lambda: _native.json_to_proto(kind, body)},
                               args.min_time, args.rounds)
            for key, seconds in cpu.items():
                print(f"  json_to_proto {key:10s} {seconds * 1e6:9.1f} us/request {len(body) / seconds / 1e6:7.0f} MB/s")
            print(f"  json_to_proto baseline/this build {cpu['baseline'] / cpu['this build']:.2f}x (CPU time)")


if __name__ == "__main__":
    main()
