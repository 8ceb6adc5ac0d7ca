"""The native core writes the Aperture record of a span byte for byte as the Python format does.

`_native.GenAI.aperture_record` (native/src/genai/aperture.rs) reads the span's and its
Resource's protobuf bytes, takes the canonical view the per-trace JSON takes, and writes the
record as CBOR the way `cbor2.dumps` writes the dict aperture.py's `record` makes.  The
reference is `aperture.encode_record(aperture.record(...))` itself.  The core answers False for
a span that is not a model call (`record` gives None) and None where the span needs what only
Python can say (then Python makes the record); every instrumentation fixture must be the
core's own.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cbor2
import orjson
import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otlp_router import _native
from otlp_router.destinations import assembly
from otlp_router.destinations.formats import aperture
from otlp_router.destinations.formats.trace_json import SpanRef
from otlp_router.model import genai, otlp_json
from otlp_router.model.attributes import set_value, to_dict
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.spool.base import Entry
from tests.test_format_fuzz import FUZZ, batches, json_texts

FIXTURES = Path(__file__).parent / "fixtures" / "genai"
FIXTURE_FILES = sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "expected.json")
KEY_NAMES = (None, "team-a")

# (span bytes, resource bytes, scope name, scope version, ref)
Part = tuple[bytes, bytes, str, str, SpanRef]


def parts_of(request: ExportTraceServiceRequest) -> list[Part]:
    """A request's spans as the Aperture batcher hands them to the core, with their refs."""
    out = []
    for rs in request.resource_spans:
        resource = to_dict(rs.resource.attributes)
        resource_wire = rs.resource.SerializeToString()
        for ss in rs.scope_spans:
            for span in ss.spans:
                out.append((span.SerializeToString(), resource_wire, ss.scope.name, ss.scope.version,
                            SpanRef(span, resource, ss.scope.name, ss.scope.version)))
    return out


def python(ref: SpanRef, record_id: int, privacy: bool, api_key_name: str | None) -> bytes | None:
    view = genai.view(ref.span, ref.resource, ref.scope_name, ref.scope_version)
    rec = aperture.record(ref, view, record_id=record_id, privacy=privacy, api_key_name=api_key_name)
    return None if rec is None else aperture.encode_record(rec)


def native(part: Part, record_id: int, privacy: bool, api_key_name: str | None) -> bytes | bool | None:
    span, resource, name, version, _ = part
    return genai.native_table().aperture_record(span, resource, name, version, record_id, privacy, api_key_name)


def _same_values(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself (cbor2 reads NaN back as a float NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same_values(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_values(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def assert_same(got: bytes | bool | None, want: bytes | None) -> None:
    assert got is not None, "the core left this span to Python"
    if want is None:
        assert got is False
        return
    assert isinstance(got, bytes), got
    if got != want:   # the first difference, readably
        assert cbor2.loads(got) == cbor2.loads(want)
        assert got == want


def fixture(name: str) -> ExportTraceServiceRequest:
    return otlp_json.decode(ExportTraceServiceRequest, (FIXTURES / name).read_bytes())


# --- the instrumentations' spans ---------------------------------------------------------------

@pytest.mark.parametrize("name", FIXTURE_FILES)
@pytest.mark.parametrize("privacy", [False, True])
def test_every_instrumentation_fixture_is_recorded_by_the_core_as_python_records_it(name: str,
                                                                                     privacy: bool) -> None:
    for i, part in enumerate(parts_of(fixture(name))):
        for api_key_name in KEY_NAMES:
            record_id = 1_700_000_000_000_000 + i
            want = python(part[4], record_id, privacy, api_key_name)
            assert_same(native(part, record_id, privacy, api_key_name), want)


def test_the_fixtures_records_read_back_as_python_wrote_them() -> None:
    """Not only the bytes: what a reader gets (cbor2.loads) is the record dict itself."""
    recorded = set()
    for name in FIXTURE_FILES:
        for part in parts_of(fixture(name)):
            view = genai.view(part[4].span, part[4].resource, part[2], part[3])
            rec = aperture.record(part[4], view, record_id=7, privacy=False, api_key_name=None)
            got = native(part, 7, False, None)
            if rec is None:
                assert got is False
            else:
                assert isinstance(got, bytes) and _same_values(cbor2.loads(got), rec), name
                recorded.add(name)
    assert len(recorded) >= len(FIXTURE_FILES) - 2, sorted(set(FIXTURE_FILES) - recorded)   # (LiveKit: no model call)


def test_the_bench_payload_is_the_cores_own() -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    import pipeline_payloads
    for i, part in enumerate(parts_of(pipeline_payloads.genai_request())):
        assert_same(native(part, i + 1, False, None), python(part[4], i + 1, False, None))


def _span(attrs: dict[str, Any], **fields: Any) -> tuple[Span, dict[str, Any]]:
    span = Span(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="chat gpt-4o", start_time_unix_nano=1_700_000_000 * 10**9,
                end_time_unix_nano=1_700_000_001_234_567_891, **fields)
    for key, value in {"gen_ai.request.model": "gpt-4o", **attrs}.items():
        set_value(span.attributes.add(key=key).value, value)
    return span, {}


@pytest.mark.parametrize("attrs", [
    {},
    {"http.route": "/v1/chat/completions?key=x", "http.response.status_code": "404"},
    {"url.path": "/", "http.target": "/v1beta/models/gemini:streamGenerateContent/"},
    {"http.status_code": 99, "http.response.status_code": "0599"},
    {"http.response.status_code": True},
    {"http.response.status_code": "1" * 5000},
    {"http.request.header.X-Custom": ["a", 1, 2.5, None, True, 1e16, 1e-5, float("nan"), float("-inf")],
     "http.request.header.Authorization": "Bearer x", "http.request.header.": "empty name",
     "http.response.header.set-coo\u212aie": "kelvin sign", "http.response.header.content-type": "text/plain",
     "http.request.header.x-custom": "again"},
    {"gen_ai.tool.call.id": "c1", "gen_ai.tool.name": "f", "gen_ai.tool.call.arguments": '{"a": 1}'},
    {"gen_ai.tool.call.arguments": "only arguments"},
    {"gen_ai.provider.name": "Anthropic", "gen_ai.operation.name": "text_completion"},
    {"gen_ai.provider.name": "aws.bedrock", "gen_ai.operation.name": "embeddings"},
    {"gen_ai.provider.name": "somebody"},
    {"gen_ai.request.model": "claude-3-opus"},
    {"gen_ai.request.model": "gemini-2.0", "gen_ai.operation.name": "embeddings"},
    {"gen_ai.request.model": "", "gen_ai.provider.name": "gemini", "openinference.span.kind": "LLM"},
    {"gen_ai.user.id": "", "user.id": 42, "session.id": 7},
    {"gen_ai.usage.input_tokens": 2**63 - 1, "gen_ai.usage.output_tokens": 5,
     "gen_ai.usage.cache_read_input_tokens": 3, "gen_ai.usage.reasoning_tokens": 2},
    {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.cost": 0.25},
    {"gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "tool_call", "id": "c", "name": "f",'
                               ' "arguments": {"x": [1, 2.5, null, 18446744073709551615]}}]}]',
     "gen_ai.input.messages": '[{"role": "user", "content": "\\u00e9"}]'},
    {"gen_ai.completion": '{"choices": [{"message": {}, "delta": {"tool_calls": [{"id": "d", "function":'
                          ' {"name": "g", "arguments": "{}"}}]}}, 3]}'},
    {"gen_ai.completion": '{"output": [{"type": "function_call", "call_id": "", "id": "i", "input": 1}]}'},
    {"gen_ai.completion": '{"content": [{"type": "tool_use", "id": "u", "name": "h", "input": {"q": 1}}],'
                          ' "function_call": {"name": "legacy"}}'},
    {"trace.metadata.openrouter.api_key_name": "from-openrouter"},
])
@pytest.mark.parametrize("privacy", [False, True])
def test_records_of_odd_spans(attrs: dict[str, Any], privacy: bool) -> None:
    span, resource = _span(attrs)
    ref = SpanRef(span, resource, "scope", "1")
    part: Part = (span.SerializeToString(), b"", "scope", "1", ref)
    for api_key_name in (None, "", "team-a"):
        assert_same(native(part, 1, privacy, api_key_name), python(ref, 1, privacy, api_key_name))


def test_a_repeated_key_is_read_by_its_last_value_only() -> None:
    """As Python's dict of the attributes holds them: the last value at the first place, so a
    header first given as a map (no text of it) and then as a string is a header, not a refusal."""
    span, resource = _span({})
    for key, value in (("http.request.header.x-a", {"m": 1}), ("http.route", "/v1/messages"),
                       ("http.request.header.x-b", "b"), ("http.request.header.x-a", "a"),
                       ("http.route", "/v1/embeddings")):
        set_value(span.attributes.add(key=key).value, value)
    ref = SpanRef(span, resource, "scope", "1")
    part: Part = (span.SerializeToString(), b"", "scope", "1", ref)
    record = native(part, 1, False, None)
    assert_same(record, python(ref, 1, False, None))
    decoded = cbor2.loads(record)
    assert decoded["path"] == "/v1/embeddings" and decoded["api_type"] == "oai_embeddings"
    assert decoded["capture"]["requestHeaders"] == {"x-a": ["a"], "x-b": ["b"]}


def test_extreme_times_ids_and_node_ids() -> None:
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    for start, end in ((0, 0), (2**64 - 1, 2**64 - 1), (5, 2**64 - 1), (10, 5), (1_000, 500_999)):
        span, _ = _span({}, status={"code": 2})
        span.start_time_unix_nano, span.end_time_unix_nano = start, end
        span.span_id = b""
        for resource_attrs in ({}, {"host.id": "", "service.instance.id": 12, "host.name": "h"},
                               {"host.id": True, "host.name": "name"}):
            resource = Resource()
            for key, value in resource_attrs.items():
                set_value(resource.attributes.add(key=key).value, value)
            ref = SpanRef(span, to_dict(resource.attributes), "s", "")
            part: Part = (span.SerializeToString(), resource.SerializeToString(), "s", "", ref)
            for record_id in (0, 1, 2**63, 2**64, 2**100, -5):
                assert_same(native(part, record_id, False, None), python(ref, record_id, False, None))


def test_an_id_past_128_bits_is_left_to_python() -> None:
    span, _ = _span({})
    part: Part = (span.SerializeToString(), b"", "", "", SpanRef(span, {}, "", ""))
    assert native(part, 2**200, False, None) is None


def _convention_keys() -> list[str]:
    """Every attribute key the conventions table reads."""
    table = yaml.safe_load((Path(genai.__file__).parent / "conventions.yaml").read_text())
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name in ("key", "attribute"):
                if isinstance(node.get(name), str):
                    keys.add(node[name])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(table)
    return sorted(keys)


_INT64 = st.integers(-(2**63), 2**63 - 1)
_ODD_VALUES = st.one_of(st.text(max_size=8), _INT64, st.floats(), st.booleans(),
                        st.lists(st.one_of(st.text(max_size=4), _INT64, st.floats()), max_size=3),
                        st.sampled_from(['{"a": [1, {"b": 2.5}]}', "[1, 2", "ERROR", "2024-01-01T00:00:00Z"]))


@FUZZ
@given(st.dictionaries(st.sampled_from(_convention_keys()), _ODD_VALUES, max_size=12))
def test_a_span_that_is_no_model_call_is_no_record_whatever_its_fields_hold(attrs: dict[str, Any]) -> None:
    """The core reads a tool call's type and nothing else (its view's fields are not wanted):
    it answers False for it at once, never leaving it to Python for a field it cannot read."""
    attrs = {**attrs, "gen_ai.operation.name": "execute_tool"}
    span, resource = _span(attrs)
    span.name = "execute_tool f"
    ref = SpanRef(span, resource, "scope", "1")
    if genai.view(span, resource, "scope", "1").is_genai:
        return   # another key made it a model call after all
    part: Part = (span.SerializeToString(), b"", "scope", "1", ref)
    assert native(part, 1, False, None) is False
    assert python(ref, 1, False, None) is None


# --- any spans -----------------------------------------------------------------------------------

@FUZZ
@given(batches(), st.booleans(), st.none() | st.text(max_size=6), st.integers(0, 2**70))
def test_any_spans_give_the_record_python_gives(batch: tuple[bytes, list[SpanRef], ExportTraceServiceRequest],
                                                privacy: bool, api_key_name: str | None, record_id: int) -> None:
    _, _, request = batch
    for part in parts_of(request):
        got = native(part, record_id, privacy, api_key_name)
        event("left to Python" if got is None else "not a model call" if got is False else "core")
        if got is None:
            continue
        try:
            want = python(part[4], record_id, privacy, api_key_name)
        except Exception as e:  # noqa: BLE001 - the core answers only what Python makes
            raise AssertionError(f"the core made a record where Python raises {e!r}") from e
        assert_same(got, want)


# --- the CBOR writer -------------------------------------------------------------------------------

_INT128 = st.integers(-2**127, 2**127 - 1) | st.sampled_from(
    [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1, 2**64, -2**64, -2**64 - 1, -24, -25,
     2**127 - 1, -2**127])
_FLOATS = st.floats() | st.sampled_from([0.0, -0.0, float("nan"), float("inf"), float("-inf"), 5e-324, 65504.0,
                                         1.7976931348623157e308, 1.5])
plain_values = st.recursive(
    st.none() | st.booleans() | _INT128 | _FLOATS | st.text() | st.binary(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner) | st.tuples(inner, inner),
    max_leaves=30,
)


@given(plain_values)
def test_write_cbor_is_cbor2_dumps(value: Any) -> None:
    assert _native._genai_cbor_of(value) == cbor2.dumps(value)


@given(json_texts)
def test_write_cbor_of_parsed_json_is_cbor2_dumps(text: str) -> None:
    try:
        want = cbor2.dumps(orjson.loads(text))
    except orjson.JSONDecodeError:
        want = None
    assert _native._genai_cbor_of_json(text) == want


def test_long_containers_and_strings_take_longer_heads() -> None:
    for n in (23, 24, 255, 256, 65535, 65536):
        for value in ("x" * n, b"x" * n, [0] * n, {str(i): i for i in range(n)}):
            assert _native._genai_cbor_of(value) == cbor2.dumps(value)
    nested: Any = []
    for _ in range(300):
        nested = [nested, {"k": nested}][:1]
    assert _native._genai_cbor_of(nested) == cbor2.dumps(nested)


@pytest.mark.parametrize("n", [0, 200, 240, 65480, 65530, 70000])
def test_bodies_dumped_at_every_head_size_are_pythons(n: int) -> None:
    """The core writes a dumped body straight into the record after a head of three bytes and
    moves it where its length takes another head (the JSON of a message list of `n` characters
    of content is a little longer than `n`: both sides of 255 and 65535)."""
    messages = orjson.dumps([{"role": "user", "content": "x" * n}]).decode()
    span, resource = _span({"gen_ai.input.messages": messages, "gen_ai.output.messages": messages})
    ref = SpanRef(span, resource, "scope", "1")
    part: Part = (span.SerializeToString(), b"", "scope", "1", ref)
    record = native(part, 1, False, None)
    assert_same(record, python(ref, 1, False, None))
    capture = cbor2.loads(record)["capture"]
    assert capture["rawRequestBody"] == capture["requestBody"].encode()


# --- the batcher -----------------------------------------------------------------------------------

class _PythonOnly:
    """A core that leaves every request to Python."""

    def aperture_records(self, *args: Any) -> None:
        return None


class _LeavesToPython:
    """The real core, except that it leaves the spans `leave` picks to Python, as it does those
    only Python can record: its answer cut short before the first of them."""

    def __init__(self, leave: Any) -> None:
        self.core, self.leave, self.calls = genai.native_table(), leave, 0

    def aperture_records(self, request: bytes, start: int, *args: Any) -> Any:
        self.calls += 1
        cbor, made, stop = self.core.aperture_records(request, start, *args)
        end = stop if stop is not None else len(_span_ids(request))
        positions = [p for p in range(start, end) if self.leave(request, p)]
        if not positions:
            return cbor, made, stop
        cut = [m for m in made if m[0] < positions[0]]
        return cbor[:sum(length for _, _, length, _ in cut)], cut, positions[0]


def _span_ids(request: bytes) -> list[bytes]:
    return [s.span_id for rs in ExportTraceServiceRequest.FromString(request).resource_spans
            for ss in rs.scope_spans for s in ss.spans]


def _entry(request: ExportTraceServiceRequest, api_key_name: str | None = "team-a") -> Entry:
    items = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    batch = Batch(TRACES, request, items, request.SerializeToString(), api_key_name=api_key_name,
                  received=1_700_000_000.5)
    return Entry(batch, batch.size, 1)


def _gathered(request: ExportTraceServiceRequest, privacy: bool) -> tuple[list[bytes], list[int], list[Any]]:
    batcher = assembly.RecordBatcher(every=60.0, limit=10_000, privacy=privacy)
    poisoned = batcher.add(_entry(request), 0.0, lambda e: None)
    groups = batcher.due(0.0, everything=True)
    records = [r for g in groups for r in g.records.records()]
    ids = [i for g in groups for i in g.record_ids]
    return records, ids, poisoned


def _all_fixtures() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for name in FIXTURE_FILES:
        request.resource_spans.extend(fixture(name).resource_spans)
    return request


@pytest.mark.parametrize("privacy", [False, True])
def test_the_batcher_gathers_the_records_python_made(monkeypatch: pytest.MonkeyPatch, privacy: bool) -> None:
    request = _all_fixtures()
    native_run = _gathered(request, privacy)
    monkeypatch.setattr(assembly.genai, "native_table", lambda: _PythonOnly())
    python_run = _gathered(request, privacy)
    assert native_run == python_run
    assert native_run[0] and native_run[2] == []
    assert native_run[1] == sorted(set(native_run[1]))   # increasing ids


def test_the_batcher_numbers_records_alike_whichever_makes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans the core leaves to Python, between spans it records, take the same ids."""
    request = _all_fixtures()
    want = _gathered(request, False)
    count = len(_span_ids(request.SerializeToString()))
    core = _LeavesToPython(lambda request, position: position % 2 == 1)
    monkeypatch.setattr(assembly.genai, "native_table", lambda: core)
    assert _gathered(request, False) == want
    assert core.calls > count // 2   # one call per run of spans between those left to Python


def test_spans_only_python_can_record_are_left_to_it_mid_request() -> None:
    """A status code in other digits than ASCII ones is Python's to read (what int() makes of
    them): the core stops before such a span, Python records it, and the core goes on after it."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n in range(5):
        span, _ = _span({"http.response.status_code": "\u0662\u0660\u0661" if n in (1, 3) else "201"})
        span.span_id = bytes([n + 1]) * 8
        spans.append(span)
    wire = request.SerializeToString()
    cbor, made, stop = genai.native_table().aperture_records(wire, 0, 0, 100, False, None)
    assert stop == 1 and [m[0] for m in made] == [0] and len(cbor) == made[0][2]
    records, ids, poisoned = _gathered(request, False)
    assert len(records) == 5 and not poisoned
    assert ids == [1_700_000_000_500_000 + n for n in range(1, 6)]
    refs = [SpanRef(span, {}, "", "") for span in spans]
    assert records == [python(ref, record_id, False, "team-a") for ref, record_id in zip(refs, ids)]


def test_an_object_full_in_the_middle_of_a_request_takes_the_rest_into_the_next() -> None:
    request = _all_fixtures()
    records, ids, _ = _gathered(request, False)
    batcher = assembly.RecordBatcher(every=60.0, limit=3, privacy=False)
    batcher.add(_entry(request), 0.0, lambda e: None)
    groups = batcher.due(0.0, everything=True)
    sizes = [3] * (len(records) // 3) + ([len(records) % 3] if len(records) % 3 else [])
    assert [len(g.records) for g in groups] == sizes
    assert [r for g in groups for r in g.records.records()] == records
    assert [i for g in groups for i in g.record_ids] == ids
    assert all(sum(len(p) for p in g.members.values()) == len(g.records) for g in groups)


def test_an_objects_spans_are_those_of_its_records_in_record_order() -> None:
    """What a log event joins a record by: the span of each record an object holds, in record
    order, across requests and when a request's records fill one object and go on in the next."""
    request = _all_fixtures()
    records, _, _ = _gathered(request, False)
    batcher = assembly.RecordBatcher(every=60.0, limit=len(records) - 1, privacy=False)
    first, second = _entry(request), _entry(request)
    for entry in (first, second):
        batcher.add(entry, 0.0, lambda e: None)
    groups = batcher.due(0.0, everything=True)
    assert [len(g.records) for g in groups] == [len(records) - 1, len(records) - 1, 2]
    for group in groups:
        spans = list(group.spans())
        assert [span_id.hex() for _, _, span_id in spans] == \
            [cbor2.loads(r)["capture_id"] for r in group.records.records()]
        assert all(assembly._span_at(entry, position).span.span_id == span_id
                   for entry, position, span_id in spans)
    entries = [entry for g in groups for entry, _, _ in g.spans()]
    assert entries == [first] * len(records) + [second] * len(records)


def test_a_span_python_cannot_record_poisons_that_span_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A span the core leaves to Python, whose record raises there, goes to the dead letter alone."""
    request = _all_fixtures()
    good, _, _ = _gathered(request, False)
    core = genai.native_table()
    spans = [(s, rs.resource, ss.scope) for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    span = next(s for s, resource, scope in spans
                if isinstance(core.aperture_record(s.SerializeToString(), resource.SerializeToString(), scope.name,
                                                   scope.version, 1, False, None), bytes))
    victim = span.span_id = b"\xee" * 8   # (fixtures share span ids)
    real = assembly.aperture_record

    def failing(ref: SpanRef, *args: Any, **kwargs: Any) -> Any:
        if ref.span.span_id == victim:
            raise ValueError("cannot record")
        return real(ref, *args, **kwargs)

    leaves = _LeavesToPython(lambda request, position: _span_ids(request)[position:position + 1] == [victim])
    monkeypatch.setattr(assembly, "aperture_record", failing)
    monkeypatch.setattr(assembly.genai, "native_table", lambda: leaves)
    records, _, poisoned = _gathered(request, False)
    assert len(records) == len(good) - 1
    assert len(poisoned) == 1 and poisoned[0].parts[0].items == 1
    assert "cannot record" in poisoned[0].reason
