"""The native core writes each Aperture record byte for byte as the Python format does.

`_native.GenAI.aperture_record` (native/src/genai/aperture.rs) makes a model call's record from
the span's bytes; `aperture.record` + `encode_record` (cbor2) on the Python view is the
reference. False means no model call (Python's record is None); None means the core leaves the
span to Python, which no instrumentation fixture may need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_router.destinations.formats import aperture
from otlp_router.destinations.formats.trace_json import KeptSpan, span_refs
from otlp_router.model import genai, otlp_json
from tests.test_format_fuzz import FUZZ, batches
from tests.test_native_genai import FIXTURE_FILES, FIXTURES, kept_traces

RECORD_ID = 1_764_700_000_000_123


def spans_of(request: ExportTraceServiceRequest) -> list[KeptSpan]:
    return [part for trace in kept_traces(request).values() for part in trace]


def python(part: KeptSpan, privacy: bool, api_key_name: str | None) -> bytes | bool:
    ref = span_refs([part])[0]
    rec = aperture.record(ref, genai.view(ref.span, ref.resource, ref.scope_name, ref.scope_version),
                          record_id=RECORD_ID, privacy=privacy, api_key_name=api_key_name)
    return False if rec is None else aperture.encode_record(rec)


def native(part: KeptSpan, privacy: bool, api_key_name: str | None) -> bytes | bool | None:
    return genai.native_table().aperture_record(*part, RECORD_ID, privacy, api_key_name)


def assert_same(got: bytes | bool | None, want: bytes | bool) -> None:
    assert got is not None, "the core left this span to Python"
    if got != want:   # the first difference, readably
        assert (cbor2.loads(got) if got else got) == (cbor2.loads(want) if want else want)
        assert got == want


@pytest.mark.parametrize("name", FIXTURE_FILES)
@pytest.mark.parametrize("privacy, api_key_name", [(False, None), (True, None), (False, "team-a")])
def test_every_instrumentation_fixture_gives_pythons_records(name: str, privacy: bool,
                                                             api_key_name: str | None) -> None:
    request = otlp_json.decode(ExportTraceServiceRequest, (FIXTURES / name).read_bytes())
    for part in spans_of(request):
        assert_same(native(part, privacy, api_key_name), python(part, privacy, api_key_name))


def test_the_bench_payload_is_the_cores_own() -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    import pipeline_payloads
    spans = spans_of(pipeline_payloads.genai_request())
    records = [native(part, False, None) for part in spans]
    assert all(r is not None for r in records) and any(isinstance(r, bytes) for r in records)
    for part, got in zip(spans, records):
        assert_same(got, python(part, False, None))


@FUZZ
@given(batches(), st.booleans(), st.none() | st.text(max_size=6))
def test_any_spans_give_pythons_records(batch: tuple[bytes, Any, ExportTraceServiceRequest], privacy: bool,
                                        api_key_name: str | None) -> None:
    for part in spans_of(batch[2]):
        got = native(part, privacy, api_key_name)
        event("core" if got is not None else "left to Python")
        if got is not None:
            assert_same(got, python(part, privacy, api_key_name))
