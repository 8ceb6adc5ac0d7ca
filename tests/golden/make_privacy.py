"""Freeze privacy's behaviour (`strip_content`, as a `privacy: true` destination applies it) as
golden files (issue #17, before privacy moved into the native core).

Run once with the pure-Python privacy in place (it was, at 8dc7b67, when the committed corpus was
made):

    python tests/golden/make_privacy.py          # writes tests/golden/privacy/*.jsonl

Every case is one JSON line: ``source``, ``signal`` (traces / logs / metrics), ``wire`` (base64 of
the request's ``SerializeToString(deterministic=True)``), ``expected`` (base64 of the same after
``strip_content``, with the shipped conventions table) and ``removed`` (what it returned).

Sources (tests/privacy_cases.py): every GenAI fixture of tests/fixtures/genai, those fixtures'
span events as GenAI event log records (by ``event_name``, by the ``event.name`` attribute, and
not events), the bench's GenAI payload (bench/pipeline_payloads.py genai_request), and seeded
hypothesis requests of every signal whose keys come from the conventions table (content keys and
prefixes, kept keys and prefixes, type keys with the values type rules read, salvage keys with
JSON usage) and arbitrary ones, with span events, links, scope attributes, metric metadata and
exemplars (which privacy leaves alone).  Generation is seeded (hypothesis ``derandomize``), so a
re-run gives the same files with the same hypothesis version.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from otlp_router.model.signals import SIGNALS  # noqa: E402
from otlp_router.routing.privacy import strip_content  # noqa: E402
from tests.privacy_cases import STRATEGIES, fixed_requests  # noqa: E402

OUT = Path(__file__).resolve().parent / "privacy"
COUNTS = {"traces": 1000, "logs": 300, "metrics": 150}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def case(source: str, signal: str, request: Any) -> dict:
    wire = request.SerializeToString(deterministic=True)
    message = SIGNALS[signal].request_type.FromString(wire)
    removed = strip_content(message, SIGNALS[signal])
    return {"source": source, "signal": signal, "wire": b64(wire),
            "expected": b64(message.SerializeToString(deterministic=True)), "removed": removed}


def examples(strategy: st.SearchStrategy, n: int) -> list[Any]:
    found: list[Any] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x: Any) -> None:
        found.append(x)

    collect()
    return found


def write(name: str, cases: list[dict]) -> None:
    OUT.mkdir(exist_ok=True)
    with open(OUT / f"{name}.jsonl", "w") as f:
        for c in cases:
            f.write(json.dumps(c, sort_keys=True) + "\n")
    print(f"{name}: {len(cases)} cases, {sum(c['removed'] > 0 for c in cases)} with something removed")


def main() -> None:
    write("fixed", [case(source, signal, request) for source, signal, request in fixed_requests()])
    for signal, n in COUNTS.items():
        write(signal, [case(f"hypothesis:{signal}:{i}", signal, request)
                       for i, request in enumerate(examples(STRATEGIES[signal], n))])


if __name__ == "__main__":
    main()
