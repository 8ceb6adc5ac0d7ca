"""Freeze the per-trace JSON document (issue #17, before the GenAI view and the format moved into
the native core) as a golden file.

Run with the Python format in place (trace_json.trace_document + encode_document, as at 800177d,
when the committed corpus was made):

    python tests/golden/make_genai.py            # writes tests/golden/genai/traces.jsonl.gz

One trace a line: ``id``, ``source``, ``trace_id`` (hex), ``spans`` (each ``span``: base64 of the
Span's bytes, ``resource``: base64 of its Resource's bytes, ``scope`` and ``version``) and
``document``: the document as the format wrote it (UTF-8 JSON text).

Cost estimates come from a fixed price list (`golden_estimate`, not genai-prices, whose newer
releases change prices): the golden test gives the core the same list.

Traces: every trace of every instrumentation fixture (tests/fixtures/genai), each of their spans
alone, all of them as one trace (and again reversed, with repeats), the bench payload's traces
(bench/pipeline_payloads.py genai_request) and seeded hypothesis batches of arbitrary spans
(tests/test_format_fuzz.py `batches`: odd values under every key the format reads).  Generation
is seeded (hypothesis ``derandomize``), so a re-run gives the same file with the same
hypothesis version; a hypothesis trace whose line would pass 16 KB (deep nesting, 5000-digit
strings) is left out, to keep the file small (the differential test in tests/test_native_genai.py
runs those shapes afresh).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from hypothesis import HealthCheck, Phase, given, settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import Span  # noqa: E402

from otlp_router.destinations.formats.trace_json import SpanRef, encode_document, trace_document  # noqa: E402
from otlp_router.model import otlp_json, prices  # noqa: E402
from otlp_router.model.attributes import to_dict  # noqa: E402
from tests.test_format_fuzz import batches  # noqa: E402

OUT = Path(__file__).resolve().parent / "genai"
FIXTURES = ROOT / "tests" / "fixtures" / "genai"
HYPOTHESIS_BATCHES = 600
MAX_HYPOTHESIS_LINE = 16_384

Part = tuple[bytes, bytes, str, str]   # span bytes, resource bytes, scope name, scope version


GOLDEN_PRICES = "golden-prices 1"


def golden_estimate(model: str | None, provider: str | None, at_unix_nano: int, input_tokens: int | None,
                    output_tokens: int | None, cache_read: int | None = None, cache_write: int | None = None,
                    reasoning: int | None = None) -> prices.Estimate | None:
    """A fixed price list: gpt-* and claude-* models, per token, cache reads at a tenth."""
    if not model or (input_tokens is None and output_tokens is None):
        return None
    rate = 2.5e-6 if model.startswith("gpt") else 3e-6 if model.startswith("claude") else None
    if rate is None:
        return None
    cached = min(cache_read or 0, input_tokens or 0)
    inp = ((input_tokens or 0) - cached) * rate + cached * rate / 10
    out = (output_tokens or 0) * rate * 4
    return prices.Estimate(inp, out, inp + out, model.split("-202")[0], provider or "golden")


@contextlib.contextmanager
def golden_prices() -> Iterator[None]:
    """The Python format priced by `golden_estimate` while the block runs."""
    estimate, source = prices.estimate, prices.source
    prices.estimate, prices.source = golden_estimate, lambda: GOLDEN_PRICES   # type: ignore[assignment]
    try:
        yield
    finally:
        prices.estimate, prices.source = estimate, source   # type: ignore[assignment]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def parts_of(request: ExportTraceServiceRequest) -> dict[bytes, list[Part]]:
    """A request's spans by trace, as the trace assembler keeps them."""
    traces: dict[bytes, list[Part]] = {}
    for rs in request.resource_spans:
        resource = rs.resource.SerializeToString()
        for ss in rs.scope_spans:
            for span in ss.spans:
                traces.setdefault(span.trace_id, []).append(
                    (span.SerializeToString(), resource, ss.scope.name, ss.scope.version))
    return traces


def document(trace_id: bytes, parts: list[Part]) -> str:
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    refs = [SpanRef(Span.FromString(w), to_dict(Resource.FromString(r).attributes), n, v) for w, r, n, v in parts]
    return encode_document(trace_document(trace_id, refs)).decode()


def seeded_batches(n: int) -> list[Any]:
    found: list[Any] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(batches())
    def collect(batch: Any) -> None:
        found.append(batch)

    collect()
    return found


def traces() -> Iterator[tuple[str, bytes, list[Part]]]:
    everything: list[Part] = []
    for path in sorted(FIXTURES.glob("*.json")):
        if path.name == "expected.json":
            continue
        request = otlp_json.decode(ExportTraceServiceRequest, path.read_bytes())
        for trace_id, parts in parts_of(request).items():
            yield f"fixture:{path.name}", trace_id, parts
            for i, part in enumerate(parts):
                yield f"fixture:{path.name}:span{i}", trace_id, [part]
            everything += parts
    yield "fixtures:one-trace", b"\x01" * 16, everything
    yield "fixtures:one-trace-reversed", b"\x01" * 16, everything[::-1] + everything[:5]
    import pipeline_payloads
    for trace_id, parts in parts_of(pipeline_payloads.genai_request()).items():
        yield "bench:genai_request", trace_id, parts
    for i, (trace_id, _, request) in enumerate(seeded_batches(HYPOTHESIS_BATCHES)):
        parts = [part for trace in parts_of(request).values() for part in trace]
        yield f"hypothesis:{i}", trace_id, parts


def main() -> None:
    OUT.mkdir(exist_ok=True)
    n = 0
    with gzip.open(OUT / "traces.jsonl.gz", "wt", compresslevel=9) as f, golden_prices():
        for source, trace_id, parts in traces():
            row = {"id": n, "source": source, "trace_id": trace_id.hex(),
                   "spans": [{"span": b64(w), "resource": b64(r), "scope": s, "version": v} for w, r, s, v in parts],
                   "document": document(trace_id, parts)}
            line = json.dumps(row, sort_keys=True) + "\n"
            if source.startswith("hypothesis:") and len(line) > MAX_HYPOTHESIS_LINE:
                continue
            f.write(line)
            n += 1
    print(f"traces.jsonl.gz: {n} traces")


if __name__ == "__main__":
    main()
