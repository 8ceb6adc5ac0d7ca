"""Cost estimates made in the core (native/src/genai/prices.rs) from the rates
`prices.rates` gives once per model and day: the same floats `prices.estimate` gives for every
call, and `prices.estimate` itself asked wherever the rates cannot say."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from otlp_router import _native
from otlp_router.model import conventions, genai, prices

DAY = 86_400 * 10**9
START = 1_773_095_137_430_509_634   # 2026-03-09T22:25:37Z
# Flat, tiered (one band switch at 128k or 200k input tokens), aliased and dated ids, unknown.
MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "o3", "claude-sonnet-4-5",
          "claude-3-5-sonnet-20241022", "gemini-2.5-pro", "gemini-1.5-pro", "llama-local", ""]
PROVIDERS = [None, "", "openai", "anthropic", "google", "gcp.vertex_ai", "acme-gateway"]


def core(estimate: Any = prices.estimate, rates: Any = prices.rates) -> Any:
    return _native.GenAI(genai._native_spec(conventions.active()), estimate, prices.source(), rates)


def python(*args: Any) -> tuple[Any, ...] | None:
    e = prices.estimate(*args)
    return None if e is None else (e.input, e.output, e.total, e.model, e.provider)


counts = st.one_of(st.none(), st.integers(0, 300_000), st.integers(-5, 5), st.integers(0, 2**62),
                   st.sampled_from([127_999, 128_000, 128_001, 199_999, 200_000, 200_001]))
CORE = core()


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(MODELS), st.sampled_from(PROVIDERS),
       st.one_of(st.just(0), st.integers(START - 900 * DAY, START + 30 * DAY)),
       counts, counts, counts, counts, counts)
def test_the_core_prices_every_call_as_prices_estimate_does(model, provider, at, i, o, cr, cw, r) -> None:
    assert CORE._estimate(model, provider, at, i, o, cr, cw, r) == python(model, provider, at, i, o, cr, cw, r)


def test_rates_are_asked_once_per_model_provider_and_day() -> None:
    asked: list[tuple[Any, ...]] = []

    def rates(*key: Any) -> Any:
        asked.append(key)
        return prices.rates(*key)

    c = core(rates=rates)
    for n in range(50):
        c._estimate("gpt-4o", "openai", START + n, 1000 + n, 10)
    c._estimate("gpt-4o", "openai", START + DAY, 1000, 10)
    c._estimate("gpt-4o", None, START, 1000, 10)
    c._estimate("nope", None, START, 1000, 10)
    c._estimate("nope", None, START, 1000, 10)
    c._estimate("gpt-4o", "openai", START, None, None)   # nothing counted: nothing looked up
    day = START // DAY
    assert asked == [("gpt-4o", "openai", day), ("gpt-4o", "openai", day + 1), ("gpt-4o", None, day),
                     ("nope", None, day)]


def test_a_model_without_affine_rates_is_priced_by_estimate_call_by_call() -> None:
    calls: list[tuple[Any, ...]] = []

    def estimate(*args: Any) -> prices.Estimate | None:
        calls.append(args)
        return prices.Estimate(1.0, 2.0, 3.0, "exact-model", "exact-provider")

    c = core(estimate=estimate, rates=lambda model, provider, day: ("exact-model", "exact-provider", (), None))
    assert c._estimate("m", "p", START, 10, 20, 1, 2, 3) == (1.0, 2.0, 3.0, "exact-model", "exact-provider")
    assert c._estimate("m", "p", START, 11, 20) is not None
    assert calls == [("m", "p", START, 10, 20, 1, 2, 3), ("m", "p", START, 11, 20, None, None, None)]


def test_without_rates_every_call_is_estimates() -> None:
    c = core(estimate=lambda *args: prices.Estimate(0.5, 0.25, 0.75, "fixed", "list"), rates=None)
    assert c._estimate("anything", None, START, 1, 1) == (0.5, 0.25, 0.75, "fixed", "list")


def test_a_failing_price_table_is_pythons_to_raise() -> None:
    def broken(*key: Any) -> Any:
        raise RuntimeError("the table is broken")

    assert core(rates=broken)._estimate("gpt-4o", "openai", START, 10, 10) == "python"
    assert core(rates=lambda *key: ("m", "p", "not a tuple", None))._estimate("gpt-4o", None, START, 1, 1) == "python"


def test_infinite_prices_give_no_estimate() -> None:
    band = ((0.0, 1e300, 0.0, 0.0, 0.0, 0.0),) * 3
    c = core(rates=lambda *key: ("m", "p", (), [band]))
    assert c._estimate("m", None, START, 10**10, 0) is None
    assert c._estimate("m", None, START, 10, 0) == (1e301, 1e301, 1e301, "m", "p")
