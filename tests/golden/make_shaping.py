"""Freeze shaping's behaviour (sampling, attribute actions, redaction, each as a destination
applies it) as golden files (issue #17, before shaping moved into the native core).

Run once with the pure-Python transforms in place (they were, at 3f07721, when the committed
corpus was made):

    python tests/golden/make_shaping.py          # writes tests/golden/shaping/*.jsonl

`requests.jsonl`: one request a line, ``id``, ``source``, ``signal`` and ``wire`` (base64 of its
``SerializeToString(deterministic=True)``).  `redaction.jsonl`, `actions.jsonl`,
`sampling.jsonl`: one (request, config) pair a line, ``request`` (its id), ``config`` (the
transform's section as router.yaml gives it), ``expected`` (base64 of the request after the
transform, serialised the same way; null when unchanged) and, for sampling, ``removed``.  Every
config of tests/shaping_cases.py meets every request of the signals it shapes; sampling starts
afresh (nothing remembered) for each pair.

Requests: the fixtures of tests/test_routing_shaping.py, the bench payload (bench/
pipeline_payloads.py genai_request), and seeded hypothesis requests of every signal
(tests/shaping_cases.py).  Generation is seeded (hypothesis ``derandomize``), so a re-run gives
the same files with the same hypothesis version.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from otlp_router.model.batch import Batch  # noqa: E402
from otlp_router.model.signals import SIGNALS  # noqa: E402
from otlp_router.routing.shaping import Shaping  # noqa: E402
from otlp_router.settings import Section  # noqa: E402
from tests.shaping_cases import ACTIONS, REDACTION, SAMPLING, STRATEGIES  # noqa: E402

OUT = Path(__file__).resolve().parent / "shaping"
COUNTS = {"traces": 250, "logs": 150, "metrics": 60}
CONFIGS = {"redaction": REDACTION, "attributes": ACTIONS, "sampling": SAMPLING}
FILES = {"redaction": "redaction", "attributes": "actions", "sampling": "sampling"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def shaped(key: str, config: Any, signal: str, wire: bytes) -> tuple[bytes, int]:
    """The request after the destination's transform `key` with `config`, and items removed."""
    shaping = Shaping.read(Section({key: config}, "golden.yaml", "destinations.d"))
    batch = Batch(SIGNALS[signal], None, 0, wire)
    removed = shaping.apply(batch)
    return batch.message.SerializeToString(deterministic=True), removed


def examples(strategy: st.SearchStrategy, n: int) -> list[Any]:
    found: list[Any] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x: Any) -> None:
        found.append(x)

    collect()
    return found


def fixed() -> Iterator[tuple[str, str, Any]]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from tests.privacy_cases import bench_request
    from tests.test_routing_shaping import _request

    yield "fixed:attributes", "traces", _request({"a": "1", "b": "2"}, {})
    yield "fixed:rename", "traces", _request({"llm.user": "u1", "internal.x": "1", "internal.y": "2", "keep": "k",
                                               "drop": "d"})
    yield "fixed:hash", "traces", _request({"user.id": "alice"})
    yield "fixed:masks", "traces", _request({
        "note": "mail bob@example.com card 4111 1111 1111 1111 not 1234 5678 9012 3456",
        "auth": "Bearer abc.def-ghi", "key": "use sk-or-v1-0123456789abcdef0123 now"})
    yield "fixed:blocked", "traces", _request({"db.password": "x", "http.request.header.cookie": "c", "ok": "y"})
    yield "fixed:allowed", "traces", _request({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3,
                                               "surprise": "z"})
    trace_ids = [bytes([i]) * 16 for i in range(200) for _ in range(3)]
    yield "fixed:traces", "traces", _request(*[{} for _ in trace_ids], trace_ids=trace_ids)
    yield "fixed:sessions", "traces", _request(*[{"session.id": f"session-{i // 2}"} if i % 2 == 0 else {}
                                                 for i in range(80)],
                                               trace_ids=[bytes([i // 2, 1]) * 8 for i in range(80)])
    yield "fixed:logs", "logs", ExportLogsServiceRequest(resource_logs=[{"scope_logs": [{"log_records": [
        {"body": {"string_value": f"record {i}"}, "time_unix_nano": i} for i in range(400)]}]}])
    yield "bench:genai_request", "traces", bench_request()


def write(name: str, rows: list[dict]) -> None:
    OUT.mkdir(exist_ok=True)
    with open(OUT / f"{name}.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def main() -> None:
    requests = list(fixed())
    for signal, n in COUNTS.items():
        requests += [(f"hypothesis:{signal}:{i}", signal, r) for i, r in enumerate(examples(STRATEGIES[signal], n))]
    rows = [{"id": i, "source": source, "signal": signal, "wire": b64(r.SerializeToString(deterministic=True))}
            for i, (source, signal, r) in enumerate(requests)]
    write("requests", rows)
    for key, configs in CONFIGS.items():
        out = []
        for row in rows:
            if key == "sampling" and row["signal"] == "metrics":
                continue   # metrics belong to no trace or session
            wire = base64.b64decode(row["wire"])
            for config in configs:
                got, removed = shaped(key, config, row["signal"], wire)
                case = {"request": row["id"], "config": config, "expected": None if got == wire else b64(got)}
                if key == "sampling":
                    case["removed"] = removed
                out.append(case)
        write(FILES[key], out)
        print(f"{FILES[key]}: {len(out)} cases, {sum(c['expected'] is not None for c in out)} changed")


if __name__ == "__main__":
    main()
