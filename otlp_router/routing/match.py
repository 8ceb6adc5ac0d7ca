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

A compiled `Rule` is a tree (`Rule.tree`), which the routing table and attribute actions'
`include` / `exclude` hand the native core (native/src/routing.rs) to evaluate per item on the
request's bytes.  Regular expressions are the core's (the `regex` crate: no look-around, no
backreferences; refused here, with the key path).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_router import _native
from otlp_router.model.attributes import value_of
from otlp_router.settings import Section

OPERATORS = ("equals", "not_equals", "in", "prefix", "regex", "exists", "gt", "ge", "lt", "le")
_SUBJECTS = ("attribute", "resource", "scope_attribute", "scope", "span", "log", "metric", "api_key")
_FIELDS = {"span": ("name", "kind", "status"), "scope": ("name", "version"), "log": ("event_name", "severity"),
           "metric": ("name",)}
_KINDS = {name.removeprefix("SPAN_KIND_").lower(): value for name, value in Span.SpanKind.items()}
_STATUS = {name.removeprefix("STATUS_CODE_").lower(): value for name, value in Status.StatusCode.items()}


# ("all" | "any", [trees]), ("not", tree) or ("cond", subject, what, operator, expected)
Tree = tuple[Any, ...]


@dataclass(frozen=True)
class Rule:
    """A compiled `match:`: the tree the native core evaluates on a request's bytes."""

    tree: Tree


def event_name(value: bytes) -> str:
    """`str()` of a log's `event.name` attribute value, for the values only Python writes (the
    core's rule engine asks: `_native.Routes.route`)."""
    return str(value_of(AnyValue.FromString(value)))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _operator(section: Section, op: str, what: str) -> Any:
    """The expected value of a condition's operator as the core takes it (checked here)."""
    expected = section.raw(op)
    if what == "kind" and op in ("equals", "not_equals", "in"):
        expected = _enum(section, op, expected, _KINDS)
    elif what == "status" and op in ("equals", "not_equals", "in"):
        expected = _enum(section, op, expected, _STATUS)
    if op in ("equals", "not_equals"):
        return expected
    if op == "in":
        if not isinstance(expected, list):
            section.fail(f"expected a list of values, got {expected!r}", op)
        return list(expected)
    if op == "prefix":
        if not isinstance(expected, str):
            section.fail(f"expected a string, got {expected!r}", op)
        return expected
    if op == "regex":
        if not isinstance(expected, str):
            section.fail(f"expected a regular expression string, got {expected!r}", op)
        try:
            re.compile(expected)
        except re.error as e:
            section.fail(f"invalid regular expression {expected!r}: {e}", op)
        problem = _native.regex_problem(expected)
        if problem is not None:
            section.fail(f"invalid regular expression {expected!r}: {problem} (routing uses the regex crate's "
                         "syntax: no look-around, no backreferences)", op)
        return expected
    if op == "exists":
        if not isinstance(expected, bool):
            section.fail(f"expected true or false, got {expected!r}", op)
        return expected
    limit = _number(expected)
    if limit is None:
        section.fail(f"expected a number, got {expected!r}", op)
    try:
        return float(limit)
    except OverflowError:  # an int past the doubles: every number is below it (or above)
        return math.inf if limit > 0 else -math.inf


def _enum(section: Section, op: str, expected: Any, names: dict[str, int]) -> Any:
    def one(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in names:
            return names[value.lower()]
        section.fail(f"expected one of {', '.join(names)}, got {value!r}", op)
    return [one(v) for v in expected] if isinstance(expected, list) else one(expected)


def _condition(section: Section) -> Rule:
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
    expected = _operator(section, ops[0], what)
    section.done()
    return Rule(("cond", subject, what, ops[0], expected))


def compile_rule(section: Section) -> Rule:
    """A `match:` mapping → the rule's tree; every mistake names its key path."""
    composites = [k for k in ("all", "any", "not") if section.has(k)]
    if not composites:
        return _condition(section)
    if len(composites) > 1 or len(section.data) > 1:
        section.fail("expected one of all, any, not (put several conditions inside all / any)")
    key = composites[0]
    if key == "not":
        inner = compile_rule(section.section("not", required=True))
        section.done()
        return Rule(("not", inner.tree))
    items = section.list(key)
    if not items:
        section.fail("expected at least one condition", key)
    parts = [compile_rule(Section(item, section.file, section.key_path(f"{key}[{i}]"))) for i, item in enumerate(items)]
    section.done()
    return Rule((key, [p.tree for p in parts]))
