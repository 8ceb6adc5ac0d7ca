"""Cost where spans carry none: model calls priced from genai-prices' table (model/prices.py).

The reference price in each test is genai-prices' own answer for the same call, so the tests hold
whatever a newer table says a model costs; what they pin is what the router hands the table
(counts with cache reads, cache writes and reasoning inside them, the provider, the day) and the
rules around it: a span's own cost wins, an unknown model gets none, only model calls are priced.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from genai_prices import Usage, calc_price
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otlp_router.config import load as load_config
from otlp_router.destinations.formats.aperture import record
from otlp_router.destinations.formats.trace_json import SpanRef, encode_document, trace_document
from otlp_router.model import conventions, prices
from otlp_router.model.attributes import set_value
from otlp_router.model.genai import view
from otlp_router.settings import ConfigError

START = 1_773_095_137_430_509_634   # 2026-03-09T22:25:37Z
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 1843, "gen_ai.usage.output_tokens": 420,
        "gen_ai.usage.cache_read.input_tokens": 1024, "gen_ai.usage.reasoning.output_tokens": 128}


def reference(model: str, provider: str | None, **counts: int) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return calc_price(Usage(**counts), model, provider_id=provider,
                          genai_request_timestamp=dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC))


def span_ref(attributes: dict[str, Any]) -> SpanRef:
    span = Span(name="chat gpt-4o-mini", trace_id=b"\x01" * 16, span_id=b"\x02" * 8,
                start_time_unix_nano=START, end_time_unix_nano=START + 2_000_000_000)
    for key, value in attributes.items():
        set_value(span.attributes.add(key=key).value, value)
    return SpanRef(span, {"service.name": "app"}, "test", "1")


def observation(attributes: dict[str, Any]) -> dict[str, Any]:
    ref = span_ref(attributes)
    return orjson.loads(encode_document(trace_document(ref.span.trace_id, [ref])))["observations"][0]


def aperture(attributes: dict[str, Any]) -> dict[str, Any]:
    ref = span_ref(attributes)
    rec = record(ref, view(ref.span, ref.resource), record_id=1, privacy=False, api_key_name=None)
    assert rec is not None
    return rec


@pytest.fixture(autouse=True)
def shipped_table() -> Any:
    before = conventions.active()
    conventions.install(conventions.build())
    yield
    conventions.install(before)


def test_a_model_call_without_cost_gets_the_tables_price_for_its_buckets() -> None:
    expected = reference("gpt-4o-mini-2024-07-18", "openai", input_tokens=1843, output_tokens=420,
                         cache_read_tokens=1024, output_reasoning_tokens=128)
    v = view(span_ref(CHAT).span)
    assert v.cost_estimate is not None
    assert v.cost == pytest.approx(float(expected.total_price))
    assert v.cost_details == pytest.approx({"input": float(expected.input_price),
                                            "output": float(expected.output_price),
                                            "total": float(expected.total_price)})
    # The cached part is priced at the cache rate: cheaper than pricing all 1,843 at the input rate.
    uncached = reference("gpt-4o-mini", "openai", input_tokens=1843, output_tokens=420)
    assert expected.input_price < uncached.input_price


def test_the_per_trace_json_says_the_cost_is_an_estimate_and_whose() -> None:
    o = observation(CHAT)
    assert o["costDetails"]["total"] > 0
    assert o["costDetails"]["total"] == pytest.approx(o["costDetails"]["input"] + o["costDetails"]["output"])
    assert o["metadata"]["costEstimate"] == {"source": prices.source(), "model": "gpt-4o-mini",
                                             "provider": "openai"}
    assert prices.source().startswith("genai-prices ")


def test_the_aperture_record_names_the_priced_model_as_its_cost_basis() -> None:
    rec = aperture(CHAT)
    assert rec["estimated_cost"]["cost_basis"] == "gpt-4o-mini"
    assert rec["estimated_cost"]["dollars"] == pytest.approx(view(span_ref(CHAT).span).cost)
    assert rec["estimated_cost"]["usage"] == rec["usage"]


def test_a_cost_the_span_carries_always_wins() -> None:
    carried = {**CHAT, "gen_ai.usage.cost": 0.5}
    v = view(span_ref(carried).span)
    assert (v.cost, v.cost_estimate) == (0.5, None)
    o = observation(carried)
    assert o["costDetails"] == {"total": 0.5} and "costEstimate" not in o["metadata"]
    assert aperture(carried)["estimated_cost"]["dollars"] == 0.5
    # Parts without a total are carried too (and summed), even when the sum is out of range.
    parts = {**CHAT, "gen_ai.usage.input_cost": 1.7e308, "gen_ai.usage.output_cost": 1.7e308}
    assert view(span_ref(parts).span).cost_estimate is None


@pytest.mark.parametrize("model, provider", [
    ("acme-internal-7b", None),          # no provider lists it
    ("llama-local", "openai"),           # a local model behind an OpenAI-style API: not OpenAI's price
])
def test_an_unknown_model_gets_no_cost_never_a_guess(model: str, provider: str | None) -> None:
    attributes = {**CHAT, "gen_ai.request.model": model, "gen_ai.response.model": model}
    del attributes["gen_ai.provider.name"]
    if provider:
        attributes["gen_ai.provider.name"] = provider
    v = view(span_ref(attributes).span)
    assert (v.cost, v.cost_details, v.cost_estimate) == (None, {}, None)
    assert observation(attributes)["costDetails"] == {}
    assert "estimated_cost" not in aperture(attributes)


def test_otel_provider_names_and_cache_writes_reach_the_table() -> None:
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "gcp.vertex_ai",
                  "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": 5000,
                  "gen_ai.usage.output_tokens": 300, "gen_ai.usage.cache_creation.input_tokens": 4000}
    v = view(span_ref(attributes).span)
    expected = reference("claude-sonnet-4-5", "gcp.vertex_ai", input_tokens=5000, output_tokens=300,
                         cache_write_tokens=4000)
    assert v.cost_estimate is not None and v.cost_estimate.provider == "google"
    assert v.cost == pytest.approx(float(expected.total_price))


def test_a_provider_the_table_lacks_is_priced_by_the_model_alone() -> None:
    estimate = prices.estimate("gpt-4o-mini", "acme-gateway", START, input_tokens=1000, output_tokens=100)
    assert estimate is not None and estimate.provider == "openai"


def test_only_model_calls_with_counts_are_priced() -> None:
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o-mini",
             "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 10}
    assert view(span_ref(agent).span).cost is None   # its model calls carry the cost
    no_counts = {k: v for k, v in CHAT.items() if not k.startswith("gen_ai.usage.")}
    assert view(span_ref(no_counts).span).cost is None
    assert prices.estimate("gpt-4o-mini", "openai", START, input_tokens=None, output_tokens=None) is None


def test_counts_past_any_real_call_give_no_estimate_rather_than_nonsense() -> None:
    huge = {**CHAT, "gen_ai.usage.input_tokens": 2**63 - 1, "gen_ai.usage.output_tokens": 2**63 - 1}
    v = view(span_ref(huge).span)
    assert v.cost is None or (v.cost > 0 and v.cost == v.cost_estimate.total)   # finite or none, never inf


def write_config(tmp_path: Path, genai: str) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(f"spool: {{dir: {tmp_path / 'spool'}}}\ndestinations: {{out: {{type: discard}}}}\n"
                    f"routes: [{{name: all, destinations: [out]}}]\n{genai}\n")
    return path


def test_estimates_can_be_turned_off_in_router_yaml(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "genai: {estimate_cost: false}"))
    assert config.genai is not None and not config.genai.estimate_cost
    conventions.install(config.genai)
    assert view(span_ref(CHAT).span).cost is None
    assert load_config(write_config(tmp_path, "genai: {}")).genai.estimate_cost


def test_a_wrong_estimate_cost_value_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"genai\.estimate_cost"):
        load_config(write_config(tmp_path, "genai: {estimate_cost: sometimes}"))


# Pricing a call reads per-token rates off the table once per model and day (model/prices.py):
# the same answer as the table's own calculation, tier bands included.
@pytest.mark.parametrize("model, provider", [("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic"),
                                             ("gemini-2.5-pro", "google"), ("o3", "openai")])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_rates_read_off_the_table_price_as_the_table_does(model: str, provider: str, data: Any) -> None:
    input_tokens = data.draw(st.one_of(st.integers(0, 300_000), st.sampled_from([199_999, 200_000, 200_001])))
    output_tokens = data.draw(st.integers(0, 50_000))
    cache_read = data.draw(st.integers(0, input_tokens))
    cache_write = data.draw(st.integers(0, input_tokens - cache_read))
    reasoning = data.draw(st.integers(0, output_tokens))
    got = prices.estimate(model, provider, START, input_tokens=input_tokens, output_tokens=output_tokens,
                          cache_read=cache_read, cache_write=cache_write, reasoning=reasoning)
    expected = reference(model, provider, input_tokens=input_tokens, output_tokens=output_tokens,
                         cache_read_tokens=cache_read or None, cache_write_tokens=cache_write or None,
                         output_reasoning_tokens=reasoning or None)
    assert got is not None
    assert (got.input, got.output, got.total) == pytest.approx(
        (float(expected.input_price), float(expected.output_price), float(expected.total_price)), rel=1e-9, abs=1e-15)
