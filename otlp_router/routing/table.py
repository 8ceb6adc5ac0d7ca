"""The routing table: ordered routes, each sending what it matches to its destinations.

Decisions are per item (span); resource and scope travel with every item. When
all items of a request go to the same destinations (the common case, and
always when no route has a `match`), the request object itself is passed on
untouched; only a request that splits is regrouped per destination.

The native core evaluates the routes' rules on the request's protobuf bytes
(`_native.Routes`, compiled once per table) and writes the split requests
(`batch.split`): routing never builds the upb message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otlp_router import _native, telemetry
from otlp_router.model.batch import Batch, on_wire, split
from otlp_router.model.signals import SIGNALS
from otlp_router.routing.match import Rule, compile_rule, event_name
from otlp_router.routing.shaping import ROUTE_KEYS, Shaping
from otlp_router.settings import Section

# Where a batch goes: a destination, and the routes whose shaping applies on the way.
Plan = list[tuple[str, tuple["Route", ...]]]


@dataclass(frozen=True)
class Route:
    name: str
    destinations: tuple[str, ...]
    signals: frozenset[str]
    match: Rule | None = None
    stop: bool = False
    default: bool = False
    shaping: Shaping | None = None
    sends: dict[str, frozenset[str]] | None = None   # per destination, when not every signal it takes

    @classmethod
    def read(cls, section: Section, accepts: dict[str, frozenset[str]],
             implied: dict[str, frozenset[str]] | None = None) -> "Route":
        """`accepts`: destination name → the signals it takes; `implied`: those a route that names
        no `signals` sends it (a per-trace store takes logs only when a route says so)."""
        name = section.str("name")
        names = section.list("destinations")
        if not names:
            section.fail("expected at least one destination", "destinations")
        for i, dest in enumerate(names):
            if not isinstance(dest, str):
                section.fail(f"expected a destination name, got {dest!r}", f"destinations[{i}]")
            if dest not in accepts:
                known = ", ".join(sorted(accepts)) or "none are defined"
                section.fail(f"unknown destination {dest!r} (defined: {known})", f"destinations[{i}]")
        if section.has("signals"):
            signals = section.list("signals")
            for i, signal in enumerate(signals):
                if signal not in SIGNALS:
                    section.fail(f"expected one of {', '.join(SIGNALS)}, got {signal!r}", f"signals[{i}]")
                for dest in names:
                    if signal not in accepts[dest]:
                        section.fail(f"route {name} sends {signal} to {dest}, which only takes "
                                     f"{', '.join(sorted(accepts[dest]))}", f"signals[{i}]")
            carried = frozenset(signals)
            sends = None
        else:
            # Every signal some destination of the route takes; each gets what it takes by default.
            by_default = {dest: (implied or {}).get(dest, accepts[dest]) for dest in names}
            carried = frozenset(s for dest in names for s in by_default[dest])
            sends = by_default if any(by_default[d] != accepts[d] for d in names) else None
        match = compile_rule(section.section("match")) if section.has("match") else None
        default = section.bool("default", False)
        if default and match is not None:
            section.fail("a default route takes what no other route matched; it cannot have `match`", "default")
        shaping = Shaping.read(section, ROUTE_KEYS)
        route = cls(name, tuple(dict.fromkeys(names)), carried, match, section.bool("stop", False), default,
                    shaping if shaping else None, sends)
        section.done()
        return route


class RoutingTable:
    """An item goes to every route it matches, up to and including the first
    matching route with `stop: true`; items no route matches go to the
    `default: true` route if there is one, else are counted as unrouted. A
    route only carries its signals, and only to destinations that take them."""

    def __init__(self, routes: list[Route], accepts: dict[str, frozenset[str]] | None = None) -> None:
        self.routes = [r for r in routes if not r.default]
        self.default = next((r for r in routes if r.default), None)
        self.accepts = accepts or {}
        # (signal, route set) → plan, and → its routed / unrouted counter children, memoised:
        # few distinct sets occur, and labels() costs a few µs a call.
        self._plans: dict[tuple[str, tuple[int, ...]], Plan] = {}
        self._counters: dict[tuple[str, tuple[int, ...]], list[Any]] = {}
        self._static: dict[str, tuple[int, ...] | None] = {}
        self._native = _native.Routes([(sorted(r.signals), r.match.tree if r.match else None, r.stop)
                                       for r in self.routes])

    def _static_choice(self, signal: str) -> tuple[int, ...] | None:
        """The routes every item of a signal takes when no rule needs to look at items."""
        if signal not in self._static:
            chosen: list[int] | None = []
            for i, route in enumerate(self.routes):
                if signal not in route.signals:
                    continue
                if route.match is not None:
                    chosen = None
                    break
                chosen.append(i)
                if route.stop:
                    break
            self._static[signal] = None if chosen is None else tuple(chosen)
        return self._static[signal]

    @classmethod
    def read(cls, file: str, routes: list[object], accepts: dict[str, frozenset[str]],
             implied: dict[str, frozenset[str]] | None = None) -> "RoutingTable":
        table: list[Route] = []
        seen: set[str] = set()
        for i, raw in enumerate(routes):
            section = Section(raw, file, f"routes[{i}]")
            route = Route.read(section, accepts, implied)
            if route.name in seen:
                section.fail(f"duplicate route name {route.name!r}", "name")
            if route.default and any(r.default for r in table):
                section.fail("only one route can be the default", "default")
            seen.add(route.name)
            table.append(route)
        return cls(table, accepts)

    def routes_of(self, signal: str, chosen: tuple[int, ...]) -> list[Route]:
        if chosen == (-1,):
            return []
        if chosen:
            return [self.routes[i] for i in chosen]
        return [self.default] if self.default and signal in self.default.signals else []

    def plan(self, signal: str, chosen: tuple[int, ...]) -> Plan:
        """Destinations of a route set, each with the shaping routes that send to it (memoised)."""
        plan = self._plans.get((signal, chosen))
        if plan is None:
            routes = self.routes_of(signal, chosen)
            dests = dict.fromkeys(d for r in routes for d in r.destinations
                                  if signal in (r.sends or self.accepts).get(d, frozenset({signal})))
            plan = self._plans[(signal, chosen)] = [
                (d, tuple(r for r in routes if r.shaping and d in r.destinations)) for d in dests]
        return plan

    def choose(self, batch: Batch) -> tuple[list[tuple[int, ...]], list[int], list[int]]:
        """(the distinct route sets the batch's items take, as route indexes; per item, the
        index of its set; per set, the items it carries: data points for metrics). An item of
        a key that may take no route it matches, not even the default, gets (-1,)."""
        allowed = batch.allowed_routes
        mask = None if allowed is None else [r.name in allowed for r in self.routes]
        choices, groups, weights = on_wire(batch.signal, batch.wire, lambda wire: self._native.route(
            batch.signal.name, wire, batch.api_key_name, mask, event_name))
        closed = allowed is not None and self.default is not None and self.default.name not in allowed
        return [tuple(c) if c or not closed else (-1,) for c in choices], groups, weights

    def route(self, batch: Batch) -> list[tuple[str, Batch, tuple[Route, ...]]]:
        """(destination, batch, shaping routes) for one accepted batch. A batch
        whose items all take the same routes is passed on as is."""
        signal = batch.signal.name
        static = self._static_choice(signal)
        if static is not None and batch.allowed_routes is None:
            self._count(batch, {static: batch.items})
            return [(dest, batch, via) for dest, via in self.plan(signal, static)]
        choices, groups, weights = self.choose(batch)
        counts: dict[tuple[int, ...], int] = {}
        for chosen, n in zip(choices, weights):
            counts[chosen] = counts.get(chosen, 0) + n
        self._count(batch, counts)
        if len(counts) == 1:
            return [(dest, batch, via) for dest, via in self.plan(signal, next(iter(counts)))]
        outputs: dict[tuple[str, tuple[Route, ...]], list[int]] = {}
        for g, chosen in enumerate(choices):
            for dest, via in self.plan(signal, chosen):
                outputs.setdefault((dest, via), []).append(g)
        parts = split(batch, groups, list(outputs.values()))
        return [(dest, part, via) for (dest, via), part in zip(outputs, parts)]

    def _count(self, batch: Batch, counts: dict[tuple[int, ...], int]) -> None:
        name = batch.signal.name
        for chosen, n in counts.items():
            children = self._counters.get((name, chosen))
            if children is None:
                routes = self.routes_of(name, chosen)
                children = self._counters[(name, chosen)] = (
                    [telemetry.routed.labels(r.name, name) for r in routes] or [telemetry.unrouted.labels(name)])
            for child in children:
                child.inc(n)


