"""Match rules, compiled once from router.yaml into plain functions.

A condition names one thing to look at and one operator:

    {attribute: trace.metadata.document_type, equals: contract}   # span attribute
    {resource: service.name, in: [checkout, search]}              # resource attribute
    {scope_attribute: K, exists: true}  {scope: name, prefix: openinference}
    {span: name, regex: "^chat "}  {span: kind, equals: client}  {span: status, equals: error}
    {api_key: prod-app}                                            # name of the receiver key used
    {log: event_name, equals: gen_ai.user.message}  {log: severity, ge: 17}   # log records
    {metric: name, prefix: gen_ai.client.}                         # metrics

and conditions compose with `all: [...]`, `any: [...]`, `not: {...}`.
Operators: equals, not_equals, in, prefix, regex, exists, gt, ge, lt, le.

A compiled `Rule` is both a tree (`Rule.tree`), which the routing table hands the native core to
evaluate on the request's bytes, and a predicate on an `ItemContext`, which attribute actions'
`include` / `exclude` call on the upb message they change.  Regular expressions are the native
core's (the `regex` crate: no look-around, no backreferences; refused here, with the key path).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from google.protobuf.message import Message
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_router import _native
from otlp_router.model.attributes import value_of
from otlp_router.model.signals import Signal
from otlp_router.settings import Section

OPERATORS = ("equals", "not_equals", "in", "prefix", "regex", "exists", "gt", "ge", "lt", "le")
_SUBJECTS = ("attribute", "resource", "scope_attribute", "scope", "span", "log", "metric", "api_key")
_FIELDS = {"span": ("name", "kind", "status"), "scope": ("name", "version"), "log": ("event_name", "severity"),
           "metric": ("name",)}
_KINDS = {name.removeprefix("SPAN_KIND_").lower(): value for name, value in Span.SpanKind.items()}
_STATUS = {name.removeprefix("STATUS_CODE_").lower(): value for name, value in Status.StatusCode.items()}


@dataclass
class ItemContext:
    """What a rule may look at for one item: attribute dicts hold only the keys some rule uses."""

    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    scope_attributes: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    kind: int = 0
    status: int = 0
    severity: int = 0
    api_key: str | None = None


Predicate = Callable[[ItemContext], bool]
# ("all" | "any", [trees]), ("not", tree) or ("cond", subject, what, operator, expected)
Tree = tuple[Any, ...]


@dataclass(frozen=True)
class Rule:
    """A compiled `match:`: the tree the core evaluates, and the same rule as a predicate."""

    tree: Tree
    test: Predicate

    def __call__(self, ctx: ItemContext) -> bool:
        return self.test(ctx)


@dataclass
class Needs:
    """Which keys the rules read, so contexts are built from those alone."""

    resource: set[str] = field(default_factory=set)
    scope_attributes: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)


def _pick(attributes: Iterable[Any], keys: set[str]) -> dict[str, Any]:
    """Only the attributes some rule reads, as Python values."""
    out = {}
    for kv in attributes:
        key = kv.key
        if key in keys:
            out[key] = value_of(kv.value)
    return out


def walk(message: Message, signal: Signal, needs: Needs, api_key: str | None) -> Iterator[tuple[Any, ItemContext]]:
    """Every item of a request with the context rules see. The context object is
    reused from item to item: read it before the next step."""
    ctx = ItemContext(api_key=api_key)
    describe = _DESCRIBE[signal.name]
    for rs in getattr(message, signal.resource_field):
        ctx.resource = _pick(rs.resource.attributes, needs.resource) if needs.resource else {}
        for ss in getattr(rs, signal.scope_field):
            scope = ss.scope
            ctx.scope_name, ctx.scope_version = scope.name, scope.version
            ctx.scope_attributes = _pick(scope.attributes, needs.scope_attributes) if needs.scope_attributes else {}
            for item in getattr(ss, signal.items_field):
                describe(item, ctx, needs)
                yield item, ctx


def _describe_span(span: Any, ctx: ItemContext, needs: Needs) -> None:
    if needs.attributes:
        ctx.attributes = _pick(span.attributes, needs.attributes)
    ctx.name, ctx.kind, ctx.status = span.name, span.kind, span.status.code


def _describe_log(record: Any, ctx: ItemContext, needs: Needs) -> None:
    ctx.attributes = _pick(record.attributes, needs.attributes | {"event.name"})
    # The event name has its own field since OTLP 1.5; older SDKs put it in an attribute.
    ctx.name = record.event_name or str(ctx.attributes.get("event.name") or "")
    ctx.severity = record.severity_number


def _describe_metric(metric: Any, ctx: ItemContext, needs: Needs) -> None:
    ctx.name = metric.name


_DESCRIBE = {"traces": _describe_span, "logs": _describe_log, "metrics": _describe_metric}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _operator(section: Section, op: str, subject: str, what: str) -> tuple[Any, Callable[[Any], bool]]:
    """(the expected value as the core takes it, the test on a Python value)."""
    expected = section.raw(op)
    if what == "kind" and op in ("equals", "not_equals", "in"):
        expected = _enum(section, op, expected, _KINDS)
    elif what == "status" and op in ("equals", "not_equals", "in"):
        expected = _enum(section, op, expected, _STATUS)
    if op == "equals":
        return expected, lambda v: v is not None and v == expected
    if op == "not_equals":
        return expected, lambda v: v != expected
    if op == "in":
        if not isinstance(expected, list):
            section.fail(f"expected a list of values, got {expected!r}", op)
        choices = list(expected)
        return choices, lambda v: v is not None and v in choices
    if op == "prefix":
        if not isinstance(expected, str):
            section.fail(f"expected a string, got {expected!r}", op)
        return expected, lambda v: isinstance(v, str) and v.startswith(expected)
    if op == "regex":
        if not isinstance(expected, str):
            section.fail(f"expected a regular expression string, got {expected!r}", op)
        try:
            pattern = re.compile(expected)
        except re.error as e:
            section.fail(f"invalid regular expression {expected!r}: {e}", op)
        problem = _native.regex_problem(expected)
        if problem is not None:
            section.fail(f"invalid regular expression {expected!r}: {problem} (routing uses the regex crate's "
                         "syntax: no look-around, no backreferences)", op)
        return expected, lambda v: isinstance(v, str) and pattern.search(v) is not None
    if op == "exists":
        if not isinstance(expected, bool):
            section.fail(f"expected true or false, got {expected!r}", op)
        return expected, (lambda v: v is not None) if expected else (lambda v: v is None)
    limit = _number(expected)
    if limit is None:
        section.fail(f"expected a number, got {expected!r}", op)
    compare = {"gt": float.__gt__, "ge": float.__ge__, "lt": float.__lt__, "le": float.__le__}[op]

    try:
        bound = float(limit)
    except OverflowError:  # an int past the doubles: every number is below it (or above)
        bound = math.inf if limit > 0 else -math.inf

    def numeric(v: Any) -> bool:
        n = _number(v)
        return n is not None and compare(float(n), bound)
    return bound, numeric


def _enum(section: Section, op: str, expected: Any, names: dict[str, int]) -> Any:
    def one(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in names:
            return names[value.lower()]
        section.fail(f"expected one of {', '.join(names)}, got {value!r}", op)
    return [one(v) for v in expected] if isinstance(expected, list) else one(expected)


def _condition(section: Section, needs: Needs) -> Rule:
    subjects = [s for s in _SUBJECTS if section.has(s)]
    if len(subjects) != 1:
        section.fail(f"expected exactly one of {', '.join(_SUBJECTS)} (or all / any / not)")
    subject = subjects[0]
    what = section.str(subject)
    ops = [op for op in OPERATORS if section.has(op)]
    if subject == "api_key" and not ops:
        ops = ["equals"]
        section.data = {**section.data, "equals": what}
    if len(ops) != 1:
        unknown = [k for k in section.data if k not in _SUBJECTS and k not in OPERATORS]
        if unknown:
            section.fail(f"unknown operator (expected one of {', '.join(OPERATORS)})", str(unknown[0]))
        section.fail(f"expected exactly one operator of {', '.join(OPERATORS)}")
    fields = _FIELDS.get(subject)
    if fields is not None and what not in fields:
        section.fail(f"expected one of {', '.join(fields)}, got {what!r}", subject)
    expected, test = _operator(section, ops[0], subject, what)
    section.done()
    tree = ("cond", subject, what, ops[0], expected)

    if subject == "attribute":
        needs.attributes.add(what)
        return Rule(tree, lambda ctx: test(ctx.attributes.get(what)))
    if subject == "resource":
        needs.resource.add(what)
        return Rule(tree, lambda ctx: test(ctx.resource.get(what)))
    if subject == "scope_attribute":
        needs.scope_attributes.add(what)
        return Rule(tree, lambda ctx: test(ctx.scope_attributes.get(what)))
    if subject == "api_key":
        return Rule(tree, lambda ctx: test(ctx.api_key))
    attr = {"scope": {"name": "scope_name", "version": "scope_version"}, "log": {"event_name": "name"}}.get(
        subject, {}).get(what, what)
    return Rule(tree, lambda ctx: test(getattr(ctx, attr)))


def compile_rule(section: Section, needs: Needs) -> Rule:
    """A `match:` mapping → predicate; every mistake names its key path."""
    composites = [k for k in ("all", "any", "not") if section.has(k)]
    if not composites:
        return _condition(section, needs)
    if len(composites) > 1 or len(section.data) > 1:
        section.fail("expected one of all, any, not (put several conditions inside all / any)")
    key = composites[0]
    if key == "not":
        inner = compile_rule(section.section("not", required=True), needs)
        section.done()
        return Rule(("not", inner.tree), lambda ctx: not inner(ctx))
    items = section.list(key)
    if not items:
        section.fail("expected at least one condition", key)
    parts = [compile_rule(Section(item, section.file, section.key_path(f"{key}[{i}]")), needs)
             for i, item in enumerate(items)]
    section.done()
    trees = (key, [p.tree for p in parts])
    if key == "all":
        return Rule(trees, lambda ctx: all(p(ctx) for p in parts))
    return Rule(trees, lambda ctx: any(p(ctx) for p in parts))
