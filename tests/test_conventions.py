"""The conventions table (otlp_router/model/conventions.yaml + router.yaml's `genai: {conventions}`):
its shape, strict reading of user entries, one table read by every consumer, privacy over every
fixture, and the fixtures converted from Langfuse's tests through a real router into per-trace JSON.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_router.destinations.formats.aperture import decode_records, record
from otlp_router.destinations.formats.trace_json import SpanRef, encode_document, trace_document
from otlp_router.model import content, conventions, otlp_json
from otlp_router.model.attributes import set_value, to_dict
from otlp_router.model.genai import view
from otlp_router.model.signals import TRACES
from otlp_router.routing.privacy import may_hold_content, strip_content
from otlp_router.settings import ConfigError, Section
from tests.support import base_config, run_cli, wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "genai"
EXPECTED: dict[str, dict[str, dict[str, Any]]] = orjson.loads((FIXTURES / "expected.json").read_bytes())
FILES = sorted(EXPECTED)
MARKER = b"SECRET-"
JS = {"Content-Type": "application/json"}

ISSUE_CONVENTIONS = {   # issue 15's list → the table's entry names
    "OTel GenAI": "otel-genai", "OpenInference": "openinference", "OpenLLMetry": "openllmetry",
    "Langfuse SDK": "langfuse", "OpenRouter": "openrouter", "Vercel AI SDK": "vercel-ai-sdk",
    "Pydantic AI / Logfire": "pydantic-ai", "LiveKit": "livekit", "Google ADK": "google-adk", "Genkit": "genkit",
    "Semantic Kernel": "semantic-kernel", "MLflow": "mlflow", "LiteLLM": "litellm", "Strands": "strands",
    "Flue": "flue", "OpenLit": "openlit",
}


def load(file: str) -> ExportTraceServiceRequest:
    return otlp_json.decode(ExportTraceServiceRequest, (FIXTURES / file).read_bytes())


def refs_of(request: ExportTraceServiceRequest) -> list[SpanRef]:
    out = []
    for rs in request.resource_spans:
        resource = to_dict(rs.resource.attributes)
        for ss in rs.scope_spans:
            out += [SpanRef(s, resource, ss.scope.name, ss.scope.version) for s in ss.spans]
    return out


def document(request: ExportTraceServiceRequest) -> dict[str, Any]:
    refs = refs_of(request)
    return trace_document(refs[0].span.trace_id, refs)


@pytest.fixture
def installed() -> Iterator[None]:
    """Restore the shipped table after a test installs another."""
    before = conventions.active()
    yield
    conventions.install(before)


def entries(raw: Any) -> list[conventions.Convention]:
    top = Section({"conventions": raw}, "router.yaml", "genai")
    out = conventions.read(top)
    top.done()
    return out


# --- the shipped table ----------------------------------------------------------------------------

def test_the_table_names_every_convention_of_the_issue() -> None:
    names = {c.name for c in conventions.active().conventions}
    assert set(ISSUE_CONVENTIONS.values()) <= names


def test_every_convention_has_a_fixture_and_every_fixture_names_its_source() -> None:
    used: set[str] = set()
    for file in FILES:
        for ref in refs_of(load(file)):
            sink: set[str] = set()
            from otlp_router.model.genai import view_from_attributes
            view_from_attributes({**ref.resource, **to_dict(ref.span.attributes)}, ref.span.events, ref.span.name,
                                 scope_name=ref.scope_name, scope_version=ref.scope_version, resource=ref.resource,
                                 used=sink)
            used |= sink
    assert set(ISSUE_CONVENTIONS.values()) - {"strands", "litellm", "openlit", "semantic-kernel"} <= used
    # Those four read as OTel GenAI does (their fixtures show it); the table notes what differs.
    for file in ("strands.json", "litellm.json", "openlit.json", "semantic_kernel.json"):
        assert file in EXPECTED


def test_content_fields_sources_are_content_and_every_key_has_a_needle() -> None:
    table = conventions.active()
    for source in table.sources:
        if source.field in conventions.CONTENT_FIELDS:
            assert source.content, (source.convention, source.field)
    for key in (*table.content_keys, *table.content_prefixes, *table.content_events, *table.type_keys):
        assert may_hold_content(key.encode()), key
    assert not table.content_keys & table.keep_keys


def test_privacy_and_the_view_read_one_table() -> None:
    table = conventions.active()
    assert content.CONTENT_KEYS == table.content_keys and content.CONTENT_EVENTS == table.content_events
    assert content.is_content_key("request_data") and content.is_content_key("flue.turn.input")
    assert content.keeps("gen_ai.usage.input_tokens") and not content.keeps("request_data")
    assert not content.keeps("custom.attribute")   # on a model call: not named, so it goes


# --- user entries: read strictly --------------------------------------------------------------------

CUSTOM = {"name": "acme-sdk", "title": "ACME's in-house LLM SDK",
          "fields": {"model": [{"key": "acme.llm.model", "priority": 1}],
                     "input": [{"key": "acme.llm.request", "priority": 1}],
                     "output": [{"key": "acme.llm.response", "priority": 1}],
                     "usage.input": [{"key": "acme.llm.tokens_in", "priority": 1}],
                     "usage.input_cached_tokens": [{"key": "acme.llm.tokens_cached", "priority": 1}],
                     "user_id": [{"key": "acme.user", "priority": 1}],
                     "metadata": [{"prefix": "acme.meta.", "priority": 1, "read": "flat"}]},
          "types": [{"priority": 1, "key": "acme.kind", "values": {"llm": "GENERATION"}}],
          "content": {"keys": ["acme.llm.system"]}}


def test_a_user_convention_reaches_the_view_the_document_and_privacy(installed: None) -> None:
    conventions.install(conventions.build(entries([CUSTOM])))
    from tests.test_format_trace_json import span as make_span
    s = make_span("acme-call", 1, 10, attributes={
        "acme.kind": "llm", "acme.llm.model": "acme-7b", "acme.llm.request": "SECRET-PROMPT hi",
        "acme.llm.response": "SECRET-COMPLETION hello", "acme.llm.tokens_in": 30, "acme.llm.tokens_cached": 10,
        "acme.user": "u-1", "acme.meta.team": "search", "acme.llm.system": "SECRET-SYSTEM", "acme.other": "x"})
    [o] = trace_document(s.trace_id, [SpanRef(s, {}, "acme", "1")])["observations"]
    assert (o["type"], o["model"], o["input"], o["output"]) == ("GENERATION", "acme-7b", "SECRET-PROMPT hi",
                                                                "SECRET-COMPLETION hello")
    assert o["usageDetails"] == {"input": 20, "input_cached_tokens": 10, "total": 30}
    assert o["metadata"]["team"] == "search"
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(s)
    strip_content(request, TRACES)
    kept = {kv.key for kv in request.resource_spans[0].scope_spans[0].spans[0].attributes}
    assert kept == {"acme.kind", "acme.llm.model", "acme.llm.tokens_in", "acme.llm.tokens_cached", "acme.user",
                    "acme.meta.team"}   # content and (on a model call) what the table does not name: gone


def test_a_user_entry_named_like_a_shipped_one_replaces_it(installed: None) -> None:
    mine = {"name": "openlit", "fields": {"model": [{"key": "openlit.model", "priority": 0}]}}
    table = conventions.build(entries([mine]))
    [openlit] = [c for c in table.conventions if c.name == "openlit"]
    assert openlit.user and [s.key for s in openlit.sources] == ["openlit.model"]
    conventions.install(table)
    assert view(_span({"openlit.model": "m", "gen_ai.request.model": "other"})).model == "m"


def _span(attributes: dict[str, Any]) -> Any:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span
    s = Span(name="s", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    for key, value in attributes.items():
        set_value(s.attributes.add(key=key).value, value)
    return s


@pytest.mark.parametrize("raw, path, problem", [
    ([{"name": "x", "feilds": {}}], "genai.conventions[0].feilds", "unknown key"),
    ([{"name": "x", "fields": {"modle": []}}], "genai.conventions[0].fields.modle", "unknown field"),
    ([{"name": "x", "fields": {"model": [{"key": "k"}]}}], "genai.conventions[0].fields.model[0].priority",
     "is required"),
    ([{"name": "x", "fields": {"model": [{"key": "k", "priority": 1, "reed": "text"}]}}],
     "genai.conventions[0].fields.model[0].reed", "unknown key"),
    ([{"name": "x", "fields": {"model": [{"key": "k", "priority": 1, "read": "magic"}]}}],
     "genai.conventions[0].fields.model[0].read", "unknown reader"),
    ([{"name": "x", "fields": {"input": [{"prefix": "p.", "priority": 1}]}}],
     "genai.conventions[0].fields.input[0].prefix", "a prefix is read by"),
    ([{"name": "x", "fields": {"model": [{"key": "k", "prefix": "p.", "priority": 1}]}}],
     "genai.conventions[0].fields.model[0]", "exactly one of"),
    ([{"name": "x", "types": [{"priority": 1, "key": "k", "values": {"a": "LLM"}}]}],
     "genai.conventions[0].types[0].values.a", "expected one of"),
    ([{"name": "x", "types": [{"priority": 1, "any_of": ["k"]}]}], "genai.conventions[0].types[0].type",
     "any_of needs"),
    ([{"name": "x", "content": {"keys": "a", "prefix": ["b."]}}], "genai.conventions[0].content.prefix",
     "unknown key"),
    ([{"name": "x"}, {"name": "x"}], "genai.conventions[1].name", "listed twice"),
    ([{"title": "no name"}], "genai.conventions[0].name", "is required"),
    ({"name": "x"}, "genai.conventions", "expected a list"),
])
def test_a_malformed_user_convention_is_refused_naming_the_key(raw: Any, path: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        entries(raw)
    assert refused.value.path == path and problem in refused.value.problem, str(refused.value)
    assert str(refused.value).startswith(f"router.yaml: {path}: ")


def test_configure_reads_the_genai_section_strictly() -> None:
    table = conventions.configure(Section({"conventions": [CUSTOM]}, "router.yaml", "genai"))
    assert table.convention_of("acme-sdk") is not None and table.convention_of("langfuse") is not None
    with pytest.raises(ConfigError, match=r"router.yaml: genai.convention: unknown key"):
        conventions.configure(Section({"convention": []}, "router.yaml", "genai"))


# --- privacy over every fixture ----------------------------------------------------------------------

@pytest.mark.parametrize("file", FILES)
def test_privacy_leaves_no_content_anywhere_and_keeps_model_usage_cost_ids_and_metadata(file: str) -> None:
    request = load(file)
    assert MARKER in request.SerializeToString(), "the fixture carries content"
    full = document(request)
    full_views = {r.span.name: view(r.span, r.resource, r.scope_name, r.scope_version) for r in refs_of(request)}
    assert strip_content(request, TRACES) > 0
    assert MARKER not in request.SerializeToString() and MARKER not in otlp_json.encode(request)
    private = document(request)
    assert MARKER not in encode_document(private)
    for ref in refs_of(request):
        v = view(ref.span, ref.resource, ref.scope_name, ref.scope_version)
        before = full_views[ref.span.name]
        for field in ("type", "model", "provider", "usage_details", "input_tokens", "output_tokens", "cached_tokens",
                      "reasoning_tokens", "cost", "cost_details", "user_id", "session_id", "trace_name", "tags",
                      "metadata", "environment", "level", "name", "model_parameters"):
            assert getattr(v, field) == getattr(before, field), (ref.span.name, field)
        rec = record(ref, v, record_id=1, privacy=True, api_key_name=None)
        assert rec is None or MARKER not in orjson.dumps(rec, option=orjson.OPT_NON_STR_KEYS)
    assert [o["id"] for o in private["observations"]] == [o["id"] for o in full["observations"]]


def test_logfire_older_content_keys_do_not_survive_privacy() -> None:
    request = load("pydantic_ai.json")
    strip_content(request, TRACES)
    [span] = [r.span for r in refs_of(request) if r.span.name == "Chat Completion with 'gpt-4o-mini'"]
    keys = {kv.key for kv in span.attributes}
    assert not keys & {"request_data", "response_data"}
    # What the table reads from them that is not content stays, as plain attributes.
    assert {"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llm.response.model"} <= keys


def test_an_unknown_key_on_a_model_call_goes_and_on_other_spans_stays() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    generation = spans.add(name="chat", trace_id=b"\x01" * 16, span_id=b"\x01" * 8)
    tool = spans.add(name="tool", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    for s, attributes in ((generation, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                                        "new_sdk.prompt_text": "SECRET", "trace.metadata.team": "a"}),
                          (tool, {"gen_ai.operation.name": "execute_tool", "new_sdk.prompt_text": "kept"})):
        for key, value in attributes.items():
            set_value(s.attributes.add(key=key).value, value)
    strip_content(request, TRACES)
    assert {kv.key for kv in generation.attributes} == {"gen_ai.operation.name", "gen_ai.request.model",
                                                        "trace.metadata.team"}
    assert "new_sdk.prompt_text" in {kv.key for kv in tool.attributes}


# --- Langfuse's cases through a real router ------------------------------------------------------------

def _documents(root: Path) -> list[dict[str, Any]]:
    return [orjson.loads(p.read_bytes()) for p in root.rglob("*.json")]


def _observations(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["traceId"], o["id"]): o for d in docs for o in d["observations"]}


def test_fixtures_through_a_router_into_per_trace_json_public_and_private(start_router, tmp_path) -> None:
    destinations = {
        "public": {"type": "file", "dir": str(tmp_path / "public"), "format": "json", "trace_idle": "200ms"},
        "private": {"type": "file", "dir": str(tmp_path / "private"), "format": "json", "trace_idle": "200ms",
                    "privacy": True},
        "private_otlp": {"type": "file", "dir": str(tmp_path / "otlp"), "format": "otlp_json", "privacy": True},
    }
    router = start_router(base_config(tmp_path, destinations=destinations))
    spans = 0
    for file in FILES:
        body = (FIXTURES / file).read_bytes()
        status, _, _ = router.post("/v1/traces", body, JS)
        assert status == 200, file
        spans += len(refs_of(load(file)))

    def written(name: str) -> dict[tuple[str, str], dict[str, Any]] | None:
        got = _observations(_documents(tmp_path / name))
        return got if len(got) >= spans else None

    public = wait_for(lambda: written("public"), timeout=30)
    private = wait_for(lambda: written("private"), timeout=30)
    assert public and private, "every span written to both destinations"
    for file in FILES:
        expected_doc = document(load(file))   # the format functions on the same spans
        for o in expected_doc["observations"]:
            got = public[(o["traceId"], o["id"])]
            assert got == o, (file, o["name"])
            hidden = private[(o["traceId"], o["id"])]
            assert MARKER not in orjson.dumps(hidden), (file, o["name"])
            for key in ("type", "name", "model", "usageDetails", "costDetails", "environment", "level",
                        "modelParameters"):
                assert hidden[key] == o[key], (file, o["name"], key)
    # Expectations from Langfuse's tests, read in what the router wrote.
    for file in ("vercel_ai_sdk.json", "genkit.json", "langfuse_sdk.json", "google_adk.json", "pydantic_ai.json"):
        ids = {r.span.name: (r.span.trace_id.hex(), r.span.span_id.hex()) for r in refs_of(load(file))}
        for name, expected in EXPECTED[file].items():
            o = public[ids[name]]
            assert o["type"] == expected["type"], (file, name)
            if "usage_details" in expected:
                assert o["usageDetails"] == (expected["usage_details"] or {}), (file, name)
    def exported() -> bytes:
        return b"".join(p.read_bytes() for p in (tmp_path / "otlp").rglob("*") if p.is_file())

    # Logfire's older content keys do not leak into a private OTLP JSON destination either.
    otlp = wait_for(lambda: (data := exported()) and data.count(b'"traceId"') >= spans and data, timeout=20)
    assert otlp and b"request_data" not in otlp and MARKER not in otlp


def test_a_custom_convention_from_router_yaml_reaches_the_document_and_the_record(start_router, tmp_path) -> None:
    from otlp_router import config as config_module
    config = base_config(tmp_path, destinations={
        "public": {"type": "file", "dir": str(tmp_path / "public"), "format": "json", "trace_idle": "200ms"},
        "aperture": {"type": "file", "dir": str(tmp_path / "aperture"), "format": "cbor_zstd", "every": "200ms"}},
        genai={"conventions": [CUSTOM]})
    config_module.parse(yaml.safe_dump(config))
    router = start_router(config)
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"scope": {"name": "acme"}, "spans": [{
        "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "acme-call", "startTimeUnixNano": str(time.time_ns()),
        "endTimeUnixNano": str(time.time_ns()), "attributes": [
            {"key": "acme.kind", "value": {"stringValue": "llm"}},
            {"key": "acme.llm.model", "value": {"stringValue": "acme-7b"}},
            {"key": "acme.llm.tokens_in", "value": {"intValue": "30"}},
            {"key": "acme.user", "value": {"stringValue": "u-1"}}]}]}]}]})
    assert router.post("/v1/traces", body, JS)[0] == 200
    docs = wait_for(lambda: _documents(tmp_path / "public"), timeout=20)
    [o] = docs[0]["observations"]
    assert (o["type"], o["model"], o["usageDetails"]) == ("GENERATION", "acme-7b", {"input": 30, "total": 30})
    records = wait_for(lambda: [r for p in (tmp_path / "aperture").rglob("*.cbor.zstd")
                                for r in decode_records(p.read_bytes())], timeout=20)
    [r] = records
    assert (r["model"], r["usage"]["input_tokens"], r["identity"]["login_name"]) == ("acme-7b", 30, "u-1")


def test_a_malformed_custom_convention_stops_the_router_naming_the_key(tmp_path) -> None:
    bad = base_config(tmp_path, genai={"conventions": [{"name": "acme", "fields": {"model": [{"key": "k"}]}}]})
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(bad))
    started = run_cli("run", "-c", "router.yaml", cwd=tmp_path)
    assert started.returncode == 2, started.stderr
    assert "router.yaml: genai.conventions[0].fields.model[0].priority: is required" in started.stderr
    assert "ready" not in started.stdout + started.stderr
