"""Cost estimates for model calls whose spans carry no cost, from a maintained price table.

The table is `genai-prices` (PyPI, kept current by Pydantic's authors: per-provider model
matching, prices that change over time, tiers, cache read / write and audio rates). Its data
ships in the wheel, so an estimate needs no network: the router never calls its updater.

What it is given, and why:
* the counts as reported, cache reads and writes *within* the input count and reasoning within
  the output, which is how genai-prices counts them too (it prices the cached part at the cache
  rate and the rest at the input rate), so nothing is priced twice;
* the provider (`gen_ai.provider.name` / `gen_ai.system`: genai-prices reads the OTel names,
  `gcp.vertex_ai`, `aws.bedrock`, …); a provider it does not know prices by the model alone, a
  model its provider does not list is not priced (a local model behind an OpenAI-style API);
* the span's start time, so a call is priced at the price of its day.

An unknown model gives no estimate, never a guess; nor does a model call without counts. A
span's own cost always wins: the view asks for an estimate only when it has none.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = ["Estimate", "estimate", "rates", "source", "warm"]


@dataclass(slots=True)   # not frozen: made once per model call, and frozen init costs a setattr per field
class Estimate:
    """USD for one call, split as Langfuse's costDetails are, and what priced it."""

    input: float
    output: float
    total: float
    model: str       # the price table's model id (the span's model may be a dated alias of it)
    provider: str    # the price table's provider id


_calc: Any = None


def warm() -> None:
    """Load the price table now (about 0.1 s), not on the first model call."""
    global _calc
    if _calc is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # its pydantic models warn on import under some versions
            from genai_prices import Usage, calc_price, data_snapshot
        from genai_prices.types import TieredPrices
        snapshot = data_snapshot.get_snapshot()

        def tier_starts(model_price: Any) -> tuple[int, ...]:
            return tuple(sorted({int(t.start) for v in vars(model_price).values() if isinstance(v, TieredPrices)
                                 for t in v.tiers}))

        _calc = (Usage, calc_price, lambda p: data_snapshot.find_provider_by_id(snapshot.providers, p) is not None,
                 tier_starts)


@functools.cache
def source() -> str:
    """The price table and its version, e.g. ``genai-prices 0.2.3`` (named beside each estimate)."""
    return f"genai-prices {metadata.version('genai-prices')}"


def estimate(model: str | None, provider: str | None, at_unix_nano: int, input_tokens: int | None,
             output_tokens: int | None, cache_read: int | None = None, cache_write: int | None = None,
             reasoning: int | None = None) -> Estimate | None:
    """The price of one call, or None when the model is unknown or nothing is counted."""
    if not model or (input_tokens is None and output_tokens is None):
        return None
    rates = _rates(model, provider or None, at_unix_nano // _NS_PER_DAY if at_unix_nano > 0 else None)
    if rates is None:
        return None
    # Buckets past their count (a provider that reports them outside it) are not the table's
    # model: clamp them so the uncached remainder is never negative.
    i, o = input_tokens or 0, output_tokens or 0
    cr = min(cache_read or 0, i)
    amounts = rates.price((i, o, cr, min(cache_write or 0, i - cr), min(reasoning or 0, o)))
    if amounts is None:
        return None
    inp, out, total = amounts
    if not (math.isfinite(inp) and math.isfinite(out) and math.isfinite(total)):
        return None   # counts past any real call's: no estimate rather than an infinite one
    return Estimate(inp, out, total, rates.model, rates.provider)


def rates(model: str, provider: str | None, day: int | None
          ) -> tuple[str, str, tuple[int, ...], list[tuple[tuple[float, ...], ...]] | None] | None:
    """For the native core, which prices each call itself: `model`'s rates on `day` (days since
    the epoch; None: today) as (table model id, table provider id, band starts, bands), bands
    None when each call must be priced by `estimate`; None when the model has no prices."""
    found = _rates(model, provider or None, day)
    if found is None:
        return None
    return found.model, found.provider, found.starts, found.bands


_NS_PER_DAY = 86_400 * 10**9
_Counts = tuple[int, int, int, int, int]   # input, output, cache reads, cache writes, reasoning


class _Rates:
    """One model's prices on one day as per-token rates, so pricing a call is a few multiplications
    and not the table's general calculation (tens of µs). Within a tier band (tiers switch on the
    input count) genai-prices' price is affine in the counts, so the rates are read off the table
    itself by probing; a model whose prices the probes do not reproduce is priced by the table, call
    by call."""

    def __init__(self, model: str, provider: str, price: Any) -> None:
        self.model, self.provider, self._price = model, provider, price
        self.starts: tuple[int, ...] = ()
        self.bands: list[tuple[tuple[float, ...], ...]] | None = None

    def learn(self, starts: tuple[int, ...]) -> None:
        bands = []
        for band, anchor in enumerate((1, *(s + 1 for s in starts))):
            base = self._exact((anchor, 0, 0, 0, 0))
            step = [self._exact(c) for c in ((anchor + 1, 0, 0, 0, 0), (anchor, 1, 0, 0, 0),
                                             (anchor, 0, 1, 0, 0), (anchor, 0, 0, 1, 0))]
            out = self._exact((anchor, 1, 0, 0, 0))
            reasoning = self._exact((anchor, 1, 0, 0, 1))
            rows = []
            for side in range(3):   # input, output, total
                per_input = step[0][side] - base[side]
                rates = (per_input, step[1][side] - base[side], step[2][side] - base[side],
                         step[3][side] - base[side], reasoning[side] - out[side])
                rows.append((float(base[side] - per_input * anchor), *map(float, rates)))
            bands.append(tuple(rows))
            # One check per band, away from the probes: affine, or the table prices each call.
            upper = starts[band] if band < len(starts) else anchor + 10**6
            probe = (min(anchor + 4321, upper), 987, 321, 123, 45)
            if not _close(self._affine(tuple(rows), probe), tuple(map(float, self._exact(probe)))):
                return
        self.starts, self.bands = starts, bands

    def price(self, counts: _Counts) -> tuple[float, float, float] | None:
        if self.bands is None:
            return _exactly(self, counts)
        band = 0
        for start in self.starts:
            if counts[0] > start:
                band += 1
        return self._affine(self.bands[band], counts)

    @staticmethod
    def _affine(rows: tuple[tuple[float, ...], ...], counts: _Counts) -> tuple[float, float, float]:
        i, o, cr, cw, r = counts
        a, b, c = rows
        return (a[0] + a[1] * i + a[2] * o + a[3] * cr + a[4] * cw + a[5] * r,
                b[0] + b[1] * i + b[2] * o + b[3] * cr + b[4] * cw + b[5] * r,
                c[0] + c[1] * i + c[2] * o + c[3] * cr + c[4] * cw + c[5] * r)

    def _exact(self, counts: _Counts) -> tuple[Any, Any, Any]:
        i, o, cr, cw, r = counts
        usage = _calc[0](input_tokens=i, output_tokens=o, cache_read_tokens=cr or None,
                         cache_write_tokens=cw or None, output_reasoning_tokens=r or None)
        calculated = self._price(usage)
        return calculated.input_price, calculated.output_price, calculated.total_price


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in zip(a, b))


@functools.lru_cache(maxsize=4096)
def _exactly(rates: _Rates, counts: _Counts) -> tuple[float, float, float] | None:
    try:
        return tuple(map(float, rates._exact(counts)))   # type: ignore[return-value]
    except (ValueError, ArithmeticError):
        return None   # counts the table refuses: no guess


@functools.lru_cache(maxsize=1024)
def _rates(model: str, provider: str | None, day: int | None) -> _Rates | None:
    """`model`'s prices on `day` (days since the epoch; None: today), or None if it has none."""
    warm()
    _, calc_price, known_provider, tier_starts = _calc
    when = (_dt.datetime.fromtimestamp(day * 86_400 + 43_200, _dt.UTC) if day is not None else None)
    if provider is not None and not known_provider(provider):
        provider = None   # a provider the table lacks: the model alone says whose prices
    try:
        found = calc_price(_calc[0](input_tokens=1), model, provider_id=provider, genai_request_timestamp=when)
    except LookupError:
        return None   # a model the table does not know (under a provider it knows): no guess

    def price(usage: Any) -> Any:
        return calc_price(usage, model, provider_id=provider, genai_request_timestamp=when)

    rates = _Rates(found.model.id, found.provider.id, price)
    rates.learn(tier_starts(found.model_price))
    return rates
