"""The routing table: ordered routes, each sending what it matches to its destinations.

Decisions are per item (span); resource and scope travel with every item. When
all items of a request go to the same destinations (the common case, and
always when no route has a `match`), the request object itself is passed on
untouched; only a request that splits is regrouped per destination.
"""

from __future__ import annotations

from dataclasses import dataclass

from otlp_router import telemetry
from otlp_router.model.batch import Batch
from otlp_router.routing.match import ItemContext, Needs, Predicate, compile_rule, walk
from otlp_router.routing.shaping import ROUTE_KEYS, Shaping
from otlp_router.settings import Section

# Where a batch goes: a destination, and the routes whose shaping applies on the way.
Plan = list[tuple[str, tuple["Route", ...]]]


@dataclass(frozen=True)
class Route:
    name: str
    destinations: tuple[str, ...]
    match: Predicate | None = None
    stop: bool = False
    default: bool = False
    shaping: Shaping | None = None

    @classmethod
    def read(cls, section: Section, destinations: set[str], needs: Needs) -> "Route":
        name = section.str("name")
        names = section.list("destinations")
        if not names:
            section.fail("expected at least one destination", "destinations")
        for i, dest in enumerate(names):
            if not isinstance(dest, str):
                section.fail(f"expected a destination name, got {dest!r}", f"destinations[{i}]")
            if dest not in destinations:
                known = ", ".join(sorted(destinations)) or "none are defined"
                section.fail(f"unknown destination {dest!r} (defined: {known})", f"destinations[{i}]")
        match = compile_rule(section.section("match"), needs) if section.has("match") else None
        default = section.bool("default", False)
        if default and match is not None:
            section.fail("a default route takes what no other route matched; it cannot have `match`", "default")
        shaping = Shaping.read(section, ROUTE_KEYS)
        route = cls(name, tuple(dict.fromkeys(names)), match, section.bool("stop", False), default,
                    shaping if shaping else None)
        section.done()
        return route


class RoutingTable:
    """An item goes to every route it matches, up to and including the first
    matching route with `stop: true`; items no route matches go to the
    `default: true` route if there is one, else are counted as unrouted."""

    def __init__(self, routes: list[Route], needs: Needs | None = None) -> None:
        self.routes = [r for r in routes if not r.default]
        self.default = next((r for r in routes if r.default), None)
        self.needs = needs or Needs()
        # Route sets → plans, memoised: few distinct sets occur.
        self._plans: dict[tuple[int, ...], Plan] = {}
        self._static = self._static_choice()

    def _static_choice(self) -> tuple[int, ...] | None:
        """The routes every item takes when no rule needs to look at items."""
        chosen = []
        for i, route in enumerate(self.routes):
            if route.match is not None:
                return None
            chosen.append(i)
            if route.stop:
                break
        return tuple(chosen)

    @classmethod
    def read(cls, file: str, routes: list[object], destinations: set[str]) -> "RoutingTable":
        table: list[Route] = []
        needs = Needs()
        seen: set[str] = set()
        for i, raw in enumerate(routes):
            section = Section(raw, file, f"routes[{i}]")
            route = Route.read(section, destinations, needs)
            if route.name in seen:
                section.fail(f"duplicate route name {route.name!r}", "name")
            if route.default and any(r.default for r in table):
                section.fail("only one route can be the default", "default")
            seen.add(route.name)
            table.append(route)
        return cls(table, needs)

    def _routes_of(self, chosen: tuple[int, ...]) -> list[Route]:
        if chosen == (-1,):
            return []
        return [self.routes[i] for i in chosen] if chosen else ([self.default] if self.default else [])

    def plan(self, chosen: tuple[int, ...]) -> Plan:
        """Destinations of a route set, each with the shaping routes that send to it (memoised)."""
        plan = self._plans.get(chosen)
        if plan is None:
            routes = self._routes_of(chosen)
            dests = dict.fromkeys(d for r in routes for d in r.destinations)
            plan = self._plans[chosen] = [
                (d, tuple(r for r in routes if r.shaping and d in r.destinations)) for d in dests]
        return plan

    def choose(self, ctx: ItemContext, allowed: frozenset[str] | None = None) -> tuple[int, ...]:
        """Indexes of the routes an item takes (of the `allowed` ones, if given)."""
        chosen = []
        for i, route in enumerate(self.routes):
            if allowed is not None and route.name not in allowed:
                continue
            if route.match is None or route.match(ctx):
                chosen.append(i)
                if route.stop:
                    break
        return tuple(chosen)

    def route(self, batch: Batch) -> list[tuple[str, Batch, tuple[Route, ...]]]:
        """(destination, batch, shaping routes) for one accepted batch. A batch
        whose items all take the same routes is passed on as is."""
        allowed = batch.allowed_routes
        if self._static is not None and allowed is None:
            self._count(batch, {self._static: batch.items})
            return [(dest, batch, via) for dest, via in self.plan(self._static)]
        choices: list[tuple[int, ...]] = []
        counts: dict[tuple[int, ...], int] = {}
        for _, ctx in walk(batch.message, batch.signal, self.needs, batch.api_key_name):
            chosen = self.choose(ctx, allowed)
            if not chosen and allowed is not None and self.default is not None \
                    and self.default.name not in allowed:
                chosen = (-1,)  # not even the default route is open to this key
            counts[chosen] = counts.get(chosen, 0) + 1
            choices.append(chosen)
        self._count(batch, counts)
        if len(counts) == 1:
            return [(dest, batch, via) for dest, via in self.plan(next(iter(counts)))]
        groups: dict[tuple[str, tuple[Route, ...]], set[tuple[int, ...]]] = {}
        for chosen in counts:
            for dest, via in self.plan(chosen):
                groups.setdefault((dest, via), set()).add(chosen)
        return [(dest, select(batch, [c in takes for c in choices]), via)
                for (dest, via), takes in groups.items()]

    def _count(self, batch: Batch, counts: dict[tuple[int, ...], int]) -> None:
        name = batch.signal.name
        for chosen, n in counts.items():
            routes = self._routes_of(chosen)
            if not routes:
                telemetry.unrouted.labels(name).inc(n)
            for route in routes:
                telemetry.routed.labels(route.name, name).inc(n)


def select(batch: Batch, keep: list[bool]) -> Batch:
    """A new batch of the items whose flag is set (flags in walk order), each
    with its resource and scope."""
    signal = batch.signal
    out = type(batch.message)()
    items = 0
    flags = iter(keep)
    for rs in getattr(batch.message, signal.resource_field):
        new_rs = None
        for ss in getattr(rs, signal.scope_field):
            kept = [item for item in getattr(ss, signal.items_field) if next(flags)]
            if not kept:
                continue
            if new_rs is None:
                new_rs = getattr(out, signal.resource_field).add()
                new_rs.resource.CopyFrom(rs.resource)
                new_rs.schema_url = rs.schema_url
            new_ss = getattr(new_rs, signal.scope_field).add()
            new_ss.scope.CopyFrom(ss.scope)
            new_ss.schema_url = ss.schema_url
            getattr(new_ss, signal.items_field).extend(kept)
            items += len(kept)
    return batch.derive(out, items)
