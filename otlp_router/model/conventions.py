"""The GenAI conventions as data: one table of which span attributes feed which canonical
field, with what priority, how they are read, and which carry content.

The shipped table is `conventions.yaml` (package data); `router.yaml` may add entries of the same
shape under `genai: {conventions: [...]}`. Both go through `read_entries` (strict: an unknown key is
refused with its key path, like the rest of the config), and `build` compiles shipped + user
entries into one `Table`. Every consumer reads the table that is `active()`: the canonical view
(genai.py), privacy's content list (content.py, routing/privacy.py), the formats built on the view,
and `explain`. `install` makes a table active (the config does, once it has read its entries).

This module holds data and its validation only; how each `read` is carried out is genai.py's.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from otlp_router.settings import ConfigError, Section

SHIPPED = Path(__file__).with_name("conventions.yaml")

OBSERVATION_TYPES = ("SPAN", "GENERATION", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR",
                     "EMBEDDING", "GUARDRAIL")
MODEL_CALL_TYPES = frozenset(("GENERATION", "EMBEDDING"))
LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")

# Langfuse usage buckets a provider's input / output count includes: Langfuse's `input` and
# `output` are what is left once these are taken out, each bucket its own key (5m / 1h cache
# writes are part of the cache-creation count). Buckets not named here stand on their own.
USAGE_WITHIN: dict[str, str] = {
    "input_cached_tokens": "input",
    "input_cache_creation": "input",
    "input_cache_read": "input",
    "input_cache_creation_5m": "input_cache_creation",
    "input_cache_creation_1h": "input_cache_creation",
    "output_reasoning_tokens": "output",
    "output_audio_tokens": "output",
}

# Canonical field → the reader used when a source names none.
FIELDS: dict[str, str] = {
    "name": "text", "model": "text", "provider": "text", "operation": "operation",
    "input": "content", "output": "content", "trace_input": "content", "trace_output": "content",
    "system_instructions": "content", "tools": "tool_list",
    "usage.input": "count", "usage.output": "count", "usage.total": "count", "usage.other": "usage_other",
    "usage_details": "usage_details",
    "cost.total": "usd", "cost.input": "usd", "cost.output": "usd", "cost_details": "cost_details",
    "model_parameters": "params",
    "user_id": "text", "session_id": "text", "trace_name": "text", "tags": "tags", "metadata": "mapping",
    "environment": "environment", "level": "level", "status_message": "text",
    "completion_start_time": "time", "time_to_first_chunk": "offset",
}
_USAGE_BUCKET = re.compile(r"^usage\.[a-z][a-z0-9_]*$")   # usage.<any Langfuse usage key>: a bucket of its own
CONTENT_FIELDS = frozenset(("input", "output", "trace_input", "trace_output", "system_instructions", "tools"))
SUPPRESSIBLE = ("model", "usage", "cost")

READERS = frozenset((
    "text", "string", "operation", "count", "positive_count", "usd", "content", "content_nonempty",
    "mapping", "params", "flat", "flat_params", "paths", "tags", "level", "time", "offset", "environment",
    "usage_details", "cost_details", "usage_other", "tool_list", "openinference_tools",
    "event_messages", "event_choices", "event_attributes", "logfire_events_input", "logfire_events_output",
))
PREFIX_READERS = frozenset(("flat", "flat_params", "paths", "usage_other", "openinference_tools"))
EVENT_READERS = frozenset(("content", "event_messages", "event_choices", "event_attributes"))

# Privacy's prefilter: a request whose protobuf bytes contain none of these holds no content and
# no model call. Table keys none of these cover become needles of their own (`Table.needles`).
BASE_NEEDLES = (b"prompt", b"completion", b"input", b"output", b"message", b"choice", b"tool", b"retrieval",
                b"document", b"embedding", b"instruction", b"llm.", b"gen_ai", b"query", b"model", b"langfuse",
                b"openinference", b"genkit", b"operation", b"flue.", b"lk.", b"mlflow", b"_data", b"events")


@dataclass(frozen=True, slots=True, eq=False)   # compared and hashed by identity: a table's own sources
class Source:
    """One way of reading one canonical field."""

    field: str
    priority: int
    order: int                           # position in the built table: breaks priority ties
    convention: str
    read: str
    content: bool
    key: str | None = None
    prefix: str | None = None
    events: tuple[str, ...] = ()
    attribute: str | None = None         # of the event
    compose: tuple[tuple[str, tuple["Source", ...]], ...] = ()
    constant: Any = None                 # compose member / span_names value
    require: tuple[str, ...] = ()        # compose: only when all of these are present
    merge: tuple[str, ...] = ()
    span_names: frozenset[str] = frozenset()
    path: tuple[str, ...] = ()
    pick: str | None = None
    values: dict[str, Any] | None = None
    unit: float = 1.0                    # seconds per unit
    exclude: frozenset[str] = frozenset()
    known: bool = True                   # prefix: False = only keys no other source names
    when: tuple[str, str] | None = None  # (key, value it must equal)
    prepend: tuple[str, str] | None = None   # (key, separator)
    scopes: tuple[str, ...] | None = None
    system_instructions: bool = False

    def keys(self) -> Iterable[str]:
        """The exact attribute keys this source reads."""
        if self.key is not None:
            yield self.key
        for _, members in self.compose:
            for member in members:
                yield from member.keys()
        yield from self.require
        yield from self.merge


@dataclass(frozen=True, slots=True, eq=False)
class TypeRule:
    """Yields an observation type for a span, or nothing (then the next rule is asked)."""

    priority: int
    order: int
    convention: str
    key: str | None = None
    values: dict[str, str] | None = None
    prefixes: tuple[tuple[str, str], ...] = ()
    name_prefixes: tuple[tuple[str, str], ...] = ()
    span_names: dict[str, str] | None = None
    any_of: tuple[str, ...] = ()
    type: str | None = None
    requires_any: tuple[str, ...] = ()
    case: str = "exact"
    scopes: tuple[str, ...] | None = None
    resource: dict[str, str] | None = None
    scope_version_at_most: tuple[int, ...] | None = None

    def keys(self) -> Iterable[str]:
        if self.key is not None:
            yield self.key
        yield from self.any_of
        yield from self.requires_any


@dataclass(frozen=True, slots=True)
class Suppress:
    """Fields a span does not get when `key` holds one of `values` (aggregate agent spans)."""

    key: str
    values: frozenset[str]
    fields: frozenset[str]


@dataclass(frozen=True, slots=True)
class Convention:
    name: str
    title: str
    sources: tuple[Source, ...]
    types: tuple[TypeRule, ...]
    suppress: tuple[Suppress, ...]
    content_keys: tuple[str, ...]
    content_prefixes: tuple[str, ...]
    content_events: tuple[str, ...]
    not_content: tuple[str, ...]
    keep_keys: tuple[str, ...]
    keep_prefixes: tuple[str, ...]
    user: bool = False                   # from router.yaml


@dataclass(frozen=True)
class Table:
    """Shipped and user conventions, compiled for lookups."""

    conventions: tuple[Convention, ...]
    sources: tuple[Source, ...]          # by (priority, order)
    type_rules: tuple[TypeRule, ...]     # by (priority, order)
    suppress: tuple[Suppress, ...]
    content_keys: frozenset[str]
    content_prefixes: tuple[str, ...]
    not_content: frozenset[str]
    content_events: frozenset[str]
    keep_keys: frozenset[str]
    keep_prefixes: tuple[str, ...]
    type_keys: frozenset[str]            # keys a type rule looks at
    needles: tuple[bytes, ...]
    resource_keys: frozenset[str] = frozenset()   # resource attributes a type rule looks at
    salvage: dict[str, tuple[Source, ...]] = field(default_factory=dict)   # content key → non-content path sources
    estimate_cost: bool = True           # price model calls without a cost from the price table (model/prices.py)
    # Per attribute key: (is content, kept on a model call). Remembered: a deployment sends a few
    # hundred distinct keys, and privacy asks for every attribute of every span.
    decided: dict[str, tuple[bool, bool, bool]] = field(default_factory=dict, compare=False, repr=False)

    def decide(self, key: str) -> tuple[bool, bool, bool]:
        """(the attribute `key` carries content, privacy keeps it on a model-call span, a type rule
        looks at it). Read `decided.get(key)` first where it counts: this fills it."""
        decided = self.decided.get(key)
        if decided is None:
            content = key in self.content_keys or (key.startswith(self.content_prefixes)
                                                   and key not in self.not_content)
            decided = (content, not content and (key in self.keep_keys or key.startswith(self.keep_prefixes)),
                       key in self.type_keys)
            if len(self.decided) < _MAX_DECIDED:
                self.decided[key] = decided
        return decided

    def is_content_key(self, key: str) -> bool:
        """True when the attribute `key` carries prompt / completion / document / tool content."""
        return self.decide(key)[0]

    def keeps(self, key: str) -> bool:
        """True when privacy keeps `key` on a model-call span: a non-content key the table names."""
        return self.decide(key)[1]

    def convention_of(self, name: str) -> Convention | None:
        return next((c for c in self.conventions if c.name == name), None)


_MAX_DECIDED = 20_000   # distinct keys remembered; past it, decided each time


# --- reading entries (shipped and router.yaml alike) -----------------------------------------------

def read(section: Section, key: str = "conventions") -> list[Convention]:
    """The conventions listed under `key` of a config section (`genai:` in router.yaml), validated
    strictly: a wrong value or an unknown key is refused with its key path. Call `section.done()`
    after, as with every section."""
    entries = section.list(key, [])
    return read_entries(entries, section.file, section.key_path(key), user=True)


def read_entries(entries: Any, file: str, path: str, user: bool = False) -> list[Convention]:
    if not isinstance(entries, list):
        raise ConfigError(file, path, "expected a list of conventions")
    out: list[Convention] = []
    seen: set[str] = set()
    for i, raw in enumerate(entries):
        convention = _read_entry(Section(raw, file, f"{path}[{i}]"), user)
        if convention.name in seen:
            raise ConfigError(file, f"{path}[{i}].name", f"a convention named {convention.name!r} is listed twice")
        seen.add(convention.name)
        out.append(convention)
    return out


def _str_list(section: Section, key: str) -> tuple[str, ...]:
    value = section.raw(key, None)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        section.fail("expected a list of non-empty strings", key)
    return tuple(value)


def _str_map(section: Section, key: str, choices: tuple[str, ...] | None = None) -> dict[str, str] | None:
    value = section.raw(key, None)
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        section.fail("expected a mapping", key)
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            section.fail("expected a string", f"{key}.{k}")
        if choices is not None and str(v) not in choices:
            section.fail(f"expected one of {', '.join(choices)}, got {v!r}", f"{key}.{k}")
        out[str(k)] = str(v)
    return out


def _read_entry(section: Section, user: bool) -> Convention:
    name = section.str("name")
    if not name:
        section.fail("expected a non-empty name", "name")
    title = section.str("title", name)
    scopes = _str_list(section, "scopes") or None

    sources: list[Source] = []
    fields = section.section("fields")
    for field_name, value in fields.data.items():
        field_name = str(field_name)
        fields.mark_read(field_name)
        if field_name not in FIELDS and not _USAGE_BUCKET.match(field_name):
            fields.fail(f"unknown field (expected one of: {', '.join(sorted(FIELDS))}, or usage.<bucket>)",
                        field_name)
        if not isinstance(value, list):
            fields.fail("expected a list of sources", field_name)
        for j, raw in enumerate(value):
            sources.append(_read_source(Section(raw, section.file, fields.key_path(f"{field_name}[{j}]")),
                                        field_name, name, scopes))
    fields.done()

    types: list[TypeRule] = []
    for j, raw in enumerate(section.list("types", [])):
        types.append(_read_type_rule(Section(raw, section.file, section.key_path(f"types[{j}]")), name, scopes))

    suppress: list[Suppress] = []
    for j, raw in enumerate(section.list("suppress", [])):
        s = Section(raw, section.file, section.key_path(f"suppress[{j}]"))
        fields_ = _str_list(s, "fields")
        for f in fields_:
            if f not in SUPPRESSIBLE:
                s.fail(f"expected one of {', '.join(SUPPRESSIBLE)}, got {f!r}", "fields")
        suppress.append(Suppress(s.str("key"), frozenset(_str_list(s, "values")), frozenset(fields_)))
        s.done()

    content = section.section("content")
    content_keys = _str_list(content, "keys")
    content_prefixes = _str_list(content, "prefixes")
    content_events = _str_list(content, "events")
    not_content = _str_list(content, "not")
    content.done()
    keep = section.section("keep")
    keep_keys = _str_list(keep, "keys")
    keep_prefixes = _str_list(keep, "prefixes")
    keep.done()
    section.mark_read("scopes")
    section.done()
    return Convention(name, title, tuple(sources), tuple(types), tuple(suppress), content_keys, content_prefixes,
                      content_events, not_content, keep_keys, keep_prefixes, user)


_UNITS = {"s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}


def _read_source(s: Section, field_name: str, convention: str, scopes: tuple[str, ...] | None,
                 member: bool = False, default_read: str | None = None) -> Source:
    kinds = [k for k in ("key", "prefix", "event", "compose", "span_names", "value") if s.has(k)]
    if member:
        if kinds not in (["key"], ["value"]):
            s.fail("expected a key or a value")
    elif kinds not in (["key"], ["prefix"], ["event"], ["compose"], ["span_names", "value"]):
        s.fail("expected exactly one of key, prefix, event, compose, span_names (with value)")
    default = default_read or FIELDS.get(field_name, "count")
    priority = 0 if member else s.int("priority", minimum=0, maximum=10_000)
    read = s.str("read", default)
    if read not in READERS:
        s.fail(f"unknown reader (expected one of: {', '.join(sorted(READERS))})", "read")
    content = s.bool("content", field_name in CONTENT_FIELDS)
    path = _str_list(s, "path")
    pick = s.str("pick", None)
    values = s.raw("values", None)
    if values is not None and not isinstance(values, dict):
        s.fail("expected a mapping of values", "values")
    unit = s.str("unit", "s", choices=tuple(_UNITS))
    exclude = frozenset(_str_list(s, "exclude"))
    known = s.bool("known", True)
    when = None
    if s.has("if"):
        w = s.section("if")
        when = (w.str("key"), w.str("equals"))
        w.done()
    prepend = None
    if s.has("prepend"):
        p = s.section("prepend")
        prepend = (p.str("key"), p.str("separator", ""))
        p.done()
    own_scopes = _str_list(s, "scopes") or scopes
    system_instructions = s.bool("system_instructions", False)
    common: dict[str, Any] = dict(field=field_name, priority=priority, order=0, convention=convention, read=read,
                                  content=content, path=path, pick=pick, values=values, unit=_UNITS[unit],
                                  exclude=exclude, known=known, when=when, prepend=prepend, scopes=own_scopes,
                                  system_instructions=system_instructions)
    if s.has("key"):
        source = Source(key=s.str("key"), **common)
    elif s.has("value") and member:
        source = Source(constant=s.raw("value"), **common)
    elif s.has("prefix"):
        if read not in PREFIX_READERS:
            s.fail(f"a prefix is read by one of {', '.join(sorted(PREFIX_READERS))}",
                   "read" if s.has("read") else "prefix")
        source = Source(prefix=s.str("prefix"), **common)
    elif s.has("event"):
        events = _str_list(s, "event")
        if not events:
            s.fail("expected an event name or a list of them", "event")
        if read not in EVENT_READERS:
            s.fail(f"an event is read by one of {', '.join(sorted(EVENT_READERS))}", "read")
        attribute = s.str("attribute", None)
        if read == "content" and attribute is None:
            s.fail("expected the event attribute to read", "attribute")
        source = Source(events=events, attribute=attribute, **common)
    elif s.has("compose"):
        compose = s.section("compose")
        members: list[tuple[str, tuple[Source, ...]]] = []
        for name, raw in compose.data.items():
            compose.mark_read(name)
            options = raw if isinstance(raw, list) else [raw]
            members.append((str(name), tuple(
                _read_source(Section(o, s.file, compose.key_path(f"{name}[{k}]" if isinstance(raw, list) else name)),
                             field_name, convention, own_scopes, member=True, default_read=read)
                for k, o in enumerate(options))))
        compose.done()
        if not members:
            s.fail("expected at least one member", "compose")
        source = Source(compose=tuple(members), require=_str_list(s, "require"), merge=_str_list(s, "merge"),
                        **common)
    elif s.has("span_names"):
        names = _str_list(s, "span_names")
        constant = s.raw("value", None)
        if constant is None:
            s.fail("is required with span_names", "value")
        source = Source(span_names=frozenset(names), constant=constant, **common)
    else:
        s.fail("expected exactly one of key, prefix, event, compose, span_names")
    s.done()
    return source


def _read_type_rule(s: Section, convention: str, scopes: tuple[str, ...] | None) -> TypeRule:
    priority = s.int("priority", minimum=0, maximum=10_000)
    key = s.str("key", None)
    values = _str_map(s, "values", OBSERVATION_TYPES)
    prefixes = _str_map(s, "prefixes", OBSERVATION_TYPES)
    name_prefixes = _str_map(s, "name_prefixes", OBSERVATION_TYPES)
    span_names = _str_map(s, "span_names", OBSERVATION_TYPES)
    any_of = _str_list(s, "any_of")
    type_ = s.str("type", None, choices=OBSERVATION_TYPES)
    requires_any = _str_list(s, "requires_any")
    case = s.str("case", "exact", choices=("exact", "lower", "upper"))
    resource = _str_map(s, "resource")
    version = s.str("scope_version_at_most", None)
    at_most = None
    if version is not None:
        try:
            at_most = tuple(int(p) for p in version.split("."))
        except ValueError:
            s.fail(f"expected a version such as 3.3, got {version!r}", "scope_version_at_most")
    how = [k for k in ("values", "prefixes", "name_prefixes", "span_names", "any_of") if s.data.get(k) is not None]
    if len(how) != 1:
        s.fail("expected exactly one of values, prefixes (with key), name_prefixes, span_names, any_of (with type)")
    if how[0] in ("values", "prefixes") and key is None:
        s.fail(f"{how[0]} needs the key whose value it maps", "key")
    if how[0] == "any_of" and type_ is None:
        s.fail("any_of needs the type it gives", "type")
    own_scopes = _str_list(s, "scopes") or scopes
    s.done()
    if case != "exact":   # the table's own spellings, compared the way values will be
        fold = str.lower if case == "lower" else str.upper
        values = {fold(k): v for k, v in values.items()} if values else values
    return TypeRule(priority, 0, convention, key, values,
                    tuple(sorted((prefixes or {}).items(), key=lambda kv: -len(kv[0]))),
                    tuple(sorted((name_prefixes or {}).items(), key=lambda kv: -len(kv[0]))),
                    span_names, any_of, type_, requires_any, case, own_scopes, resource, at_most)


# --- building and installing the table --------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[Convention, ...]:
    text = SHIPPED.read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    top = Section(data, str(SHIPPED))
    entries = read_entries(top.list("conventions"), str(SHIPPED), "conventions")
    top.done()
    return tuple(entries)


def shipped() -> list[Convention]:
    """The conventions shipped with the router (conventions.yaml), validated like user entries."""
    return list(_shipped())


def build(user: Sequence[Convention] = (), base: Sequence[Convention] | None = None) -> Table:
    """The effective table: the shipped conventions (or `base`), then the user's. A user entry named
    like a shipped one replaces it; its sources rank among the others by priority."""
    conventions = list(shipped() if base is None else base)
    for entry in user:
        conventions = [c for c in conventions if c.name != entry.name]
        conventions.append(entry)

    sources: list[Source] = []
    rules: list[TypeRule] = []
    for convention in conventions:
        for source in convention.sources:
            sources.append(_renumber(source, len(sources)))
        for rule in convention.types:
            rules.append(_with_order(rule, len(rules)))
    sources.sort(key=lambda s: (s.priority, s.order))
    rules.sort(key=lambda r: (r.priority, r.order))

    content_keys: set[str] = set()
    content_prefixes: list[str] = []
    content_events: set[str] = set()
    not_content: set[str] = set()
    keep_keys: set[str] = set()
    keep_prefixes: list[str] = []
    for convention in conventions:
        content_keys.update(convention.content_keys)
        content_prefixes.extend(convention.content_prefixes)
        content_events.update(convention.content_events)
        not_content.update(convention.not_content)
        keep_keys.update(convention.keep_keys)
        keep_prefixes.extend(convention.keep_prefixes)
    for source in sources:
        if source.content:
            if source.key is not None:
                content_keys.add(source.key)
            if source.prefix is not None:
                content_prefixes.append(source.prefix)
                not_content.update(source.prefix + suffix for suffix in source.exclude)
            content_events.update(source.events)
    for source in sources:
        if source.content:
            continue
        keep_keys.update(k for k in source.keys() if k not in content_keys)
        if source.prefix is not None:
            keep_prefixes.append(source.prefix)
    type_keys: set[str] = set()
    for rule in rules:
        type_keys.update(rule.keys())
    keep_keys.update(type_keys - content_keys)
    salvage: dict[str, list[Source]] = {}
    for source in sources:
        if not source.content and source.path and source.key in content_keys and source.key is not None:
            salvage.setdefault(source.key, []).append(source)

    named = [*content_keys, *content_prefixes, *content_events, *type_keys]
    extra = sorted({k.encode() for k in named if not any(n in k.encode() for n in BASE_NEEDLES)})
    return Table(tuple(conventions), tuple(sources), tuple(rules),
                 tuple(s for c in conventions for s in c.suppress),
                 frozenset(content_keys), tuple(dict.fromkeys(content_prefixes)), frozenset(not_content),
                 frozenset(content_events), frozenset(keep_keys), tuple(dict.fromkeys(keep_prefixes)),
                 frozenset(type_keys), BASE_NEEDLES + tuple(extra),
                 resource_keys=frozenset(k for rule in rules for k in (rule.resource or ())),
                 salvage={k: tuple(v) for k, v in salvage.items()})


def _renumber(source: Source, order: int) -> Source:
    members = tuple((name, tuple(_renumber(m, order) for m in options)) for name, options in source.compose)
    return _replace(source, order=order, compose=members)


def _replace(obj: Any, **changes: Any) -> Any:
    from dataclasses import replace
    return replace(obj, **changes)


def _with_order(rule: TypeRule, order: int) -> TypeRule:
    return _replace(rule, order=order)


_active: Table | None = None


def active() -> Table:
    """The table in force: the shipped conventions until `install` is called."""
    global _active
    if _active is None:
        _active = build()
    return _active


def install(table: Table) -> None:
    """Make `table` the one every consumer reads (call once the config's entries are read)."""
    global _active
    _active = table


def configure(section: Section) -> Table:
    """router.yaml's `genai:` section (`{conventions: [...], estimate_cost: true}`) → the effective
    table, shipped entries plus the user's, validated strictly. Not installed: call `install` once
    the whole config is known good."""
    user = read(section)
    estimate_cost = section.bool("estimate_cost", True)
    section.done()
    table = build(user)
    return table if estimate_cost else dataclasses.replace(table, estimate_cost=False)
