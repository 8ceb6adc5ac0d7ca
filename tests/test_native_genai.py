"""The native core writes the per-trace JSON document byte for byte as the Python format does.

`_native.GenAI.trace_document` (native/src/genai) reads the spans' protobuf bytes with the
conventions table compiled.  The reference is the golden corpus the Python format wrote before
the port (tests/golden/make_genai.py) and, for random spans, `trace_json.trace_document` +
`encode_document` itself.  Where a span needs what only Python can say (a number in Unicode
digits, a time in one of `datetime.fromisoformat`'s rarer forms), the core answers None and
Python writes the document; every instrumentation fixture and the bench payload must be the
core's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import base64
import gzip
import json

import orjson
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otlp_router.destinations.formats import trace_json
from otlp_router.destinations.formats.trace_json import (KeptSpan, SpanRef, encode_document, encode_trace, span_refs,
                                                         trace_document)
from otlp_router.model import conventions, genai, otlp_json
from otlp_router.model.attributes import set_value
from otlp_router import _native
from tests.golden.make_genai import GOLDEN_PRICES, golden_estimate, golden_prices
from tests.golden.make_genai import parts_of as kept_traces   # a request's spans as the assembler keeps them
from tests.test_format_fuzz import FUZZ, batches

FIXTURES = Path(__file__).parent / "fixtures" / "genai"
FIXTURE_FILES = sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "expected.json")

def native(trace_id: bytes, parts: list[KeptSpan]) -> bytes | None:
    return genai.native_table().trace_document(trace_id, parts)


def python(trace_id: bytes, parts: list[KeptSpan]) -> bytes:
    return encode_document(trace_document(trace_id, span_refs(parts)))


def assert_same(got: bytes | None, want: bytes) -> None:
    assert got is not None, "the core left this trace to Python"
    if got != want:   # the first difference, readably
        assert orjson.loads(got) == orjson.loads(want)
        assert got == want


def fixture(name: str) -> ExportTraceServiceRequest:
    return otlp_json.decode(ExportTraceServiceRequest, (FIXTURES / name).read_bytes())


GOLDEN = Path(__file__).parent / "golden" / "genai" / "traces.jsonl.gz"


def golden_rows() -> list[dict[str, Any]]:
    with gzip.open(GOLDEN, "rt") as f:
        return [json.loads(line) for line in f]


def golden_parts(row: dict[str, Any]) -> list[KeptSpan]:
    return [(base64.b64decode(s["span"]), base64.b64decode(s["resource"]), s["scope"], s["version"])
            for s in row["spans"]]


def test_the_core_writes_the_golden_documents() -> None:
    core = _native.GenAI(genai._native_spec(conventions.active()), golden_estimate, GOLDEN_PRICES)
    rows = golden_rows()
    left = []
    for row in rows:
        got = core.trace_document(bytes.fromhex(row["trace_id"]), golden_parts(row))
        if got is None:
            left.append(row["source"])
            continue
        assert got.decode() == row["document"], row["source"]
    assert not [source for source in left if not source.startswith("hypothesis:")]
    assert len(left) < len(rows) // 10, left


def test_python_still_writes_the_golden_documents() -> None:
    """The reference itself has not moved (else the goldens are to be made again, knowingly)."""
    with golden_prices():
        for row in golden_rows():
            got = python(bytes.fromhex(row["trace_id"]), golden_parts(row))
            assert got.decode() == row["document"], row["source"]


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_every_instrumentation_fixture_is_written_by_the_core_as_python_writes_it(name: str) -> None:
    for trace_id, parts in kept_traces(fixture(name)).items():
        assert_same(native(trace_id, parts), python(trace_id, parts))


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_each_span_alone_is_a_document_of_its_own(name: str) -> None:
    for trace_id, parts in kept_traces(fixture(name)).items():
        for part in parts:
            assert_same(native(trace_id, [part]), python(trace_id, [part]))


def one_span_observation(attributes: dict[str, Any], resource: dict[str, Any] | None = None,
                         scope: str = "") -> dict[str, Any]:
    """The observation of a span alone in its trace, as the core writes it (and Python, the same)."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for key, value in (resource or {}).items():
        set_value(rs.resource.attributes.add(key=key).value, value)
    ss = rs.scope_spans.add()
    ss.scope.name = scope
    s = ss.spans.add(name="call", trace_id=b"\x05" * 16, span_id=b"\x06" * 8, start_time_unix_nano=1,
                     end_time_unix_nano=2)
    for key, value in attributes.items():
        set_value(s.attributes.add(key=key).value, value)
    [(trace_id, parts)] = kept_traces(request).items()
    got = native(trace_id, parts)
    assert_same(got, python(trace_id, parts))
    [o] = orjson.loads(got)["observations"]
    return o


@pytest.mark.parametrize("resource", [{"langfuse.metadata.team": "search"}, {"langfuse.metadata": '{"team": "search"}'}])
def test_resource_metadata_is_read_by_the_core(resource: dict[str, Any]) -> None:
    assert one_span_observation({"gen_ai.request.model": "gpt-4o"}, resource)["metadata"]["team"] == "search"


def test_resource_environment_is_read_by_the_core() -> None:
    o = one_span_observation({"gen_ai.request.model": "gpt-4o"}, {"langfuse.environment": "staging", "service.name": "app"})
    assert o["environment"] == "staging" and o["metadata"]["resourceAttributes"]["service.name"] == "app"


def test_older_pydantic_ai_restating_anthropics_counts_does_not_count_them_twice() -> None:
    # pydantic-ai before 1.0 with Anthropic: gen_ai.usage.input_tokens includes the cache reads, and
    # details.input_tokens / output_tokens restate the provider's own counts beside them.
    o = one_span_observation({"gen_ai.request.model": "claude-3-5-sonnet-latest", "gen_ai.usage.input_tokens": 1200,
                              "gen_ai.usage.output_tokens": 300, "gen_ai.usage.details.input_tokens": 200,
                              "gen_ai.usage.details.output_tokens": 300,
                              "gen_ai.usage.details.cache_read_input_tokens": 1000}, scope="pydantic-ai")
    assert o["usageDetails"] == {"input": 200, "output": 300, "input_cached_tokens": 1000, "total": 1500}


def test_all_fixtures_as_one_trace_merge_as_python_merges_them() -> None:
    """Trace-level fields (metadata merged, root first, tags, input from generations) across
    every convention at once, with repeats (a span delivered twice) and reversed order."""
    parts = [part for name in FIXTURE_FILES for trace in kept_traces(fixture(name)).values() for part in trace]
    trace_id = b"\x01" * 16
    assert_same(native(trace_id, parts), python(trace_id, parts))
    again = parts[::-1] + parts[:5]
    assert_same(native(trace_id, again), python(trace_id, again))


def test_the_bench_payload_is_the_cores_own() -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    import pipeline_payloads
    for trace_id, parts in kept_traces(pipeline_payloads.genai_request()).items():
        assert_same(native(trace_id, parts), python(trace_id, parts))


def test_log_records_to_join_are_left_to_python() -> None:
    """encode_trace with log records takes Python's path (it joins them to their spans)."""
    trace_id, parts = next(iter(kept_traces(fixture("otel_genai.json")).items()))
    record = LogRecord(span_id=Span.FromString(parts[0][0]).span_id, trace_id=trace_id, time_unix_nano=1,
                       event_name="gen_ai.client.inference.operation.details")
    record.attributes.add(key="gen_ai.output.messages").value.string_value = '[{"role": "assistant"}]'
    logs = [trace_json.LogRef(record, {}, "gen_ai", "")]
    assert encode_trace(trace_id, parts, logs) == encode_document(trace_document(trace_id, span_refs(parts), logs))


def test_a_user_convention_is_read_by_the_core(tmp_path: Path) -> None:
    """A table with a router.yaml convention compiles for the core too (a new key, a new family)."""
    entries = [{"name": "acme", "fields": {"model": [{"key": "acme.model", "priority": 5}],
                                           "metadata": [{"prefix": "acme.meta.", "read": "flat", "priority": 5}]}}]
    user = conventions.read_entries(entries, "router.yaml", "genai.conventions", user=True)
    table = conventions.build(user)
    previous = conventions.active()
    conventions.install(table)
    try:
        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add(
            trace_id=b"\x02" * 16, span_id=b"\x03" * 8, name="call", start_time_unix_nano=1_700_000_000 * 10**9)
        for key, value in (("acme.model", "acme-1"), ("acme.meta.team", "search"), ("gen_ai.usage.input_tokens", 3)):
            kv = span.attributes.add(key=key)
            if isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = value
        trace_id, parts = next(iter(kept_traces(request).items()))
        got = native(trace_id, parts)
        assert_same(got, python(trace_id, parts))
        observation = orjson.loads(got)["observations"][0]
        assert observation["model"] == "acme-1" and observation["metadata"]["team"] == "search"
    finally:
        conventions.install(previous)


@FUZZ
@given(batches())
def test_any_spans_give_the_document_python_gives(batch: tuple[bytes, list[SpanRef], ExportTraceServiceRequest]) -> None:
    trace_id, _, request = batch
    parts = [part for trace in kept_traces(request).values() for part in trace]
    got = native(trace_id, parts)
    event("core" if got is not None else "left to Python")
    if got is not None:
        assert_same(got, python(trace_id, parts))



# --- damaged bytes: an answer or Python's, never an exception ------------------------------------

def _damaged(wire: bytes, data: Any) -> bytes:
    """`wire` with a few bytes flipped, cut or repeated."""
    out = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4))):
        if not out:
            break
        at = data.draw(st.integers(0, len(out) - 1))
        how = data.draw(st.sampled_from(["flip", "cut", "repeat"]))
        if how == "flip":
            out[at] ^= data.draw(st.integers(1, 255))
        elif how == "cut":
            del out[at:at + data.draw(st.integers(1, 8))]
        else:
            out[at:at] = out[at:at + data.draw(st.integers(1, 8))]
    return bytes(out)


_SPANS = [part for name in FIXTURE_FILES for trace in kept_traces(fixture(name)).values() for part in trace]


@FUZZ
@given(st.data())
def test_damaged_spans_give_a_document_or_pythons_verdict(data: Any) -> None:
    parts = data.draw(st.lists(st.sampled_from(_SPANS), min_size=1, max_size=3))
    damaged = [(_damaged(w, data) if data.draw(st.booleans()) else w,
                _damaged(r, data) if r and data.draw(st.booleans()) else r, n, v) for w, r, n, v in parts]
    got = native(b"\1" * 16, damaged)
    if got is not None:
        orjson.loads(got)   # a document, whatever the bytes
    for part in damaged:
        record = genai.native_table().aperture_record(*part, 1, False, None)
        assert record is None or record is False or isinstance(record, bytes)


@FUZZ
@given(st.data())
def test_damaged_requests_are_cut_into_spans_or_left_to_python(data: Any) -> None:
    wire = data.draw(st.binary(max_size=300)) if data.draw(st.booleans()) else _damaged(_request_wire(), data)
    split = _native.trace_spans(wire)
    if split is not None:
        resources, spans = split
        assert all(0 <= s[3] < len(resources) for s in spans)


def _request_wire() -> bytes:
    return fixture("otel_genai.json").SerializeToString()
