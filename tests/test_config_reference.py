"""docs/config.md, the config reference, cannot drift from the readers (issue 16).

How the keys the readers accept are found: `otlp_router.settings.key_observer`
is set while `config.parse` reads the configs below, which together exercise
every section, destination type, stored format, attribute action, match subject
and operator. It hears every key a `Section` is asked for or marked read, which
are exactly the keys `Section.done()` accepts, with the reader's default, whether
the key was left out, and (from the calling frame) which reader method took it.

Then, for every section of router.yaml:

- every key a reader accepts is documented in docs/config.md under its section
  (for a destination: in a table whose `type:` / `format:` apply to it);
- every documented key is accepted by some config of that section and type;
- every documented default written as a literal (a code span first in the
  cell) is the reader's default, as seen when the key is left out;
- every key documented as `required` fails the config, at its key path, when
  removed;
- the documented type matches the reader (`duration`, `size`, `integer`, ...,
  and the exact choices of an enumeration).

docs/config.md's shape: a table belongs to the nearest heading above it; the
heading's code spans are the key paths of the sections it lists (`router.yaml`
for the top level, `NAME` for a name you choose, `[]` for an item of a list),
and code spans `type: a | b` / `format: x` narrow a destination table to those
types and formats. Rows are `| key(s) | type | default | meaning |`.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from otlp_router import config, destinations, settings
from otlp_router.destinations import file as file_destination
from otlp_router.destinations import storage
from otlp_router.routing import actions, match
from otlp_router.settings import ConfigError, parse_duration, parse_size
from tests.support import ROOT

DOC = ROOT / "docs" / "config.md"
SECRET = "s3cr3t-0123456789abcdef"   # long enough for an API key and the admin token

# --- the configs that exercise every reader --------------------------------------------------------


def _conditions() -> list[dict[str, Any]]:
    """One condition per match subject and per operator (checked below to cover `match`'s lists)."""
    return [
        {"attribute": "trace.metadata.document_type", "equals": "contract"},
        {"attribute": "http.status_code", "not_equals": 200},
        {"resource": "service.name", "in": ["checkout", "search"]},
        {"scope_attribute": "team", "exists": True},
        {"scope": "name", "prefix": "openinference"},
        {"scope": "version", "regex": "^1\\."},
        {"span": "name", "regex": "^chat "},
        {"span": "kind", "equals": "client"},
        {"span": "status", "in": ["error", "unset"]},
        {"log": "event_name", "prefix": "gen_ai."},
        {"log": "severity", "ge": 17},
        {"metric": "name", "prefix": "gen_ai.client."},
        {"attribute": "gen_ai.usage.input_tokens", "gt": 1000},
        {"attribute": "gen_ai.usage.output_tokens", "lt": 10},
        {"attribute": "llm.temperature", "le": 0.5},
        {"api_key": "prod-app"},
        {"api_key": "batch-jobs", "not_equals": "x"},
    ]


def _actions() -> list[dict[str, Any]]:
    return [
        {"action": "insert", "key": "deployment.environment", "value": "prod"},
        {"action": "update", "key": "user.id", "from_attribute": "enduser.id"},
        {"action": "upsert", "key": "team", "value": "core",
         "include": {"span": "kind", "equals": "client"}, "exclude": {"not": {"api_key": "prod-app"}}},
        {"action": "rename", "key": "llm.user", "to": "user.id"},
        {"action": "delete", "key": "http.request.header.cookie"},
        {"action": "delete", "pattern": "^internal\\."},
        {"action": "hash", "key": "user.id", "hash_key": SECRET},
    ]


def _shaping() -> dict[str, Any]:
    return {"privacy": True,
            "redaction": {"blocked_keys": ["*.password"], "allowed_keys": ["gen_ai.*"], "mask": ["email", "card"],
                          "patterns": ["ACME-[0-9]{6}"], "replacement": "[X:{kind}]"},
            "attributes": _actions(),
            "sampling": {"rate": 0.5, "by": "session.id"}}


def _delivery() -> dict[str, Any]:
    return {"retry": {"initial_interval": "2s", "max_interval": "1m", "max_elapsed": "1h"},
            "batch": {"max_spans": 100, "max_bytes": "1MiB", "flush_interval": "1s"},
            "max_in_flight": 2}


def _s3(fmt: str) -> dict[str, Any]:
    return {"type": "s3", "bucket": "b", "region": "us-east-1", "endpoint": "http://127.0.0.1:9",
            "access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET, "session_token": SECRET,
            "addressing_style": "path", "request_checksum": "when_supported", "max_concurrency": 4,
            "conditional_writes": False, "format": fmt, "prefix": "prod", "write_concurrency": 8,
            **_stored(fmt)}


def _stored(fmt: str, s3: bool = True) -> dict[str, Any]:
    """The keys of one stored format (a file destination's otlp_json has no compression)."""
    if fmt == "json":
        return {"path_template": "{prefix}/{date}", "trace_idle": "10s", "trace_max_age": "10m",
                "max_open_traces": 10, "max_open_bytes": "1MiB"}
    if fmt == "cbor_zstd":
        return {"every": "30m", "limit": 2000}
    return {"rotate": {"max_bytes": "1MiB", "max_age": "1m"}, **({"compression": "zstd"} if s3 else {})}


def _client_tls(tmp: Path) -> dict[str, Any]:
    return {"ca_file": str(tmp / "ca.pem"), "cert_file": str(tmp / "client.pem"),
            "key_file": str(tmp / "client.key"), "insecure_skip_verify": True}


def _server_tls(tmp: Path) -> dict[str, Any]:
    return {"cert_file": str(tmp / "server.pem"), "key_file": str(tmp / "server.key"),
            "client_ca_file": str(tmp / "ca.pem")}


def full_config(tmp: Path) -> dict[str, Any]:
    """Every key of every section, each destination type and stored format."""
    return {
        "receivers": {"otlp": {
            "http": {"endpoint": "127.0.0.1:0", "max_request_body_size": "4MiB", "max_header_size": "32KiB",
                     "max_header_count": 50, "read_header_timeout": "5s", "read_timeout": "30s",
                     "idle_timeout": "30s", "max_connections": 100, "tls": _server_tls(tmp)},
            "grpc": {"endpoint": "127.0.0.1:0", "max_recv_msg_size": "4MiB", "max_concurrent_streams": 10,
                     "tls": _server_tls(tmp),
                     "keepalive": {"server_parameters": {"max_connection_idle": "1m", "max_connection_age": "1h",
                                                         "max_connection_age_grace": "1m", "time": "1h",
                                                         "timeout": "10s"},
                                   "enforcement_policy": {"min_time": "1m", "permit_without_stream": True,
                                                          "max_ping_strikes": 3}}},
            "auth": {"api_keys": [
                {"name": "prod-app", "key": SECRET},
                {"name": "batch-jobs", "key_file": str(tmp / "batch.key"), "routes": ["contracts"],
                 "max_requests_per_second": 0.5}]},
            "limits": {"max_spans_per_request": 1000, "max_attributes_per_span": 64,
                       "max_attribute_value_length": 4096}}},
        "admin": {"endpoint": "127.0.0.1:0", "tls": _server_tls(tmp), "auth": {"token": SECRET}},
        "workers": 1,
        "spool": {"dir": str(tmp / "spool"), "type": "disk", "fsync": "always", "max_bytes": "64MiB",
                  "segment_bytes": "4MiB", "dead_letter_ttl": "1d"},
        "mapping": {"openrouter": True},
        "shutdown_timeout": "5s",
        "routes": [
            {"name": "contracts", "signals": ["traces"], "stop": True, "privacy": True,
             "attributes": [{"action": "insert", "key": "routed", "value": True}],
             "match": {"any": [*_conditions(),
                               {"all": [{"span": "kind", "equals": "server"}]},
                               {"not": {"resource": "service.name", "equals": "x"}}]},
             "destinations": ["s3_json", "http_all"]},
            {"name": "everything", "default": True,
             "destinations": ["http_all", "http_signals", "grpc_all", "lb_http", "lb_grpc", "s3_json",
                              "s3_cbor", "s3_lines", "file_lines", "file_json", "file_cbor", "mute"]},
        ],
        "destinations": {
            "http_all": {"type": "otlp_http", "endpoint": "https://127.0.0.1:9", "encoding": "json",
                         "compression": "none", "headers": {"Authorization": f"Bearer {SECRET}"}, "timeout": "5s",
                         "tls": _client_tls(tmp), "check_with_span": True, "max_connections": 2,
                         **_delivery(), **_shaping()},
            "http_signals": {"type": "otlp_http", "traces_endpoint": "http://127.0.0.1:9/v1/traces",
                             "logs_endpoint": "http://127.0.0.1:9/v1/logs",
                             "metrics_endpoint": "http://127.0.0.1:9/v1/metrics"},
            "grpc_all": {"type": "otlp_grpc", "endpoint": "127.0.0.1:9", "insecure": True, "tls": _client_tls(tmp),
                         "headers": {"x-api-key": SECRET}, "compression": "none", "timeout": "5s",
                         "check_with_span": True, **_delivery(), **_shaping()},
            "lb_http": {"type": "otlp_http", "encoding": "json",
                        "loadbalance": {"by": "service", "endpoints": ["http://127.0.0.1:9", "http://127.0.0.2:9"]}},
            "lb_grpc": {"type": "otlp_grpc", "insecure": True,
                        "loadbalance": {"by": "trace_id", "endpoints": ["127.0.0.1:9", "127.0.0.2:9"]}},
            "s3_json": {**_s3("json"), **_delivery(), **_shaping()},
            "s3_cbor": _s3("cbor_zstd"),
            "s3_lines": _s3("otlp_json"),
            "file_lines": {"type": "file", "dir": str(tmp / "lines"), "format": "otlp_json",
                           **_stored("otlp_json", s3=False)},
            "file_json": {"type": "file", "dir": str(tmp / "json"), "format": "json", "prefix": "p",
                          "write_concurrency": 4, **_stored("json")},
            "file_cbor": {"type": "file", "dir": str(tmp / "cbor"), "format": "cbor_zstd", "prefix": "p",
                          "write_concurrency": 4, **_stored("cbor_zstd")},
            "mute": {"type": "discard", **_delivery()},
        },
    }


def minimal_config(tmp: Path) -> dict[str, Any]:
    """Required keys only, so every reader's default is taken."""
    return {
        "receivers": {"otlp": {"http": {}, "grpc": {}, "auth": {"api_keys": [{"name": "a", "key": SECRET}]}}},
        "admin": {},
        "routes": [{"name": "all", "destinations": ["http", "grpc", "lb", "s3", "s3_cbor", "s3_lines", "lines",
                                                    "json", "cbor", "mute"]}],
        "destinations": {
            "http": {"type": "otlp_http", "endpoint": "http://127.0.0.1:9",
                     "redaction": {}, "sampling": {"rate": 0.1}, "attributes": [{"action": "hash", "key": "k"}]},
            "grpc": {"type": "otlp_grpc", "endpoint": "127.0.0.1:9"},
            "lb": {"type": "otlp_grpc", "loadbalance": {"endpoints": ["127.0.0.1:9"]}},
            "s3": {"type": "s3", "bucket": "b", "region": "r"},
            "s3_cbor": {"type": "s3", "bucket": "b", "region": "r", "format": "cbor_zstd"},
            "s3_lines": {"type": "s3", "bucket": "b", "region": "r", "format": "otlp_json"},
            "lines": {"type": "file", "dir": str(tmp / "lines")},
            "json": {"type": "file", "dir": str(tmp / "json"), "format": "json"},
            "cbor": {"type": "file", "dir": str(tmp / "cbor"), "format": "cbor_zstd"},
            "mute": {"type": "discard"},
        },
    }


def other_config(tmp: Path) -> dict[str, Any]:
    """The alternatives one config cannot hold at once: the admin token from a file, a memory spool."""
    return {"admin": {"auth": {"token_file": str(tmp / "admin.token")}}, "spool": {"type": "memory"},
            "workers": "auto", "routes": [{"name": "all", "destinations": ["mute"]}],
            "destinations": {"mute": {"type": "discard"}}}


CONFIGS = {"full": full_config, "minimal": minimal_config, "other": other_config}

# --- recording what the readers ask for ---------------------------------------------------------------

_SETTINGS_FILE = settings.__file__


@dataclass(frozen=True)
class Read:
    config: str          # which of CONFIGS
    path: str            # the section's key path, as in error messages
    key: str
    default: Any         # settings._MISSING: required (or only marked read)
    absent: bool         # the key was left out (or null): the default applied
    method: str          # the Section method that read it: str, int, duration, ..., raw, mark_read
    choices: tuple[str, ...] | None

    @property
    def full_path(self) -> str:
        return f"{self.path}.{self.key}" if self.path else self.key


def _observer(config_name: str, reads: list[Read]) -> Any:
    def observe(section: settings.Section, key: str, default: Any) -> None:
        accessor, caller = sys._getframe(1), sys._getframe(2)
        if accessor.f_code.co_name == "mark_read":
            method = "mark_read"
        elif caller.f_code.co_filename == _SETTINGS_FILE:
            method = caller.f_code.co_name   # str, int, section, ... (parse_endpoint reads through str)
        else:
            method = "raw"
        choices = caller.f_locals.get("choices") if method == "str" else None
        reads.append(Read(config_name, section.path, key, default, section.data.get(key) is None, method,
                          tuple(choices) if choices else None))
    return observe


def parse_recorded(name: str, raw: dict[str, Any], tmp: Path) -> list[Read]:
    reads: list[Read] = []
    saved = settings.key_observer
    settings.key_observer = _observer(name, reads)
    try:
        config.parse(yaml.safe_dump(raw, sort_keys=False), str(tmp / "router.yaml"))
    finally:
        settings.key_observer = saved
    return reads


@dataclass
class World:
    tmp: Path
    raws: dict[str, dict[str, Any]]
    reads: list[Read]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("reference")
    for name in ("server.pem", "server.key", "ca.pem", "client.pem", "client.key", "batch.key", "admin.token"):
        (tmp / name).write_text(SECRET + "\n")   # the readers check these exist (keys: and are long enough)
    raws = {name: make(tmp) for name, make in CONFIGS.items()}
    reads = [r for name, raw in raws.items() for r in parse_recorded(name, raw, tmp)]
    return World(tmp, raws, reads)


# --- where a read belongs in the reference ------------------------------------------------------------


def section_of(read: Read, raws: dict[str, dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """(the reference's section id, the destination's type and format) of a read."""
    segs = re.sub(r"\[\d+\]", "[]", read.path).split(".") if read.path else []
    for i, seg in enumerate(segs):
        if seg == "attributes[]":   # routes[].attributes[] and destinations.NAME.attributes[]: one reader
            rest = segs[i + 1:]
            return ("match", {}) if rest[:1] in (["include"], ["exclude"]) else (".".join(["attributes[]", *rest]), {})
        if seg == "match" and i > 0 and segs[i - 1] == "routes[]":
            return "match", {}    # and everything inside all / any / not
    qualifiers: dict[str, str] = {}
    if segs[:1] == ["destinations"] and len(segs) > 1:
        d = raws[read.config]["destinations"][segs[1]]
        segs[1] = "NAME"
        qualifiers["type"] = d["type"]
        if d["type"] in ("s3", "file"):
            qualifiers["format"] = d.get("format") or ("json" if d["type"] == "s3" else "otlp_json")
    return ".".join(segs), qualifiers


# --- the reference itself --------------------------------------------------------------------------------


@dataclass
class Row:
    keys: list[str]
    type: str
    default: str
    meaning: str
    line: int


@dataclass
class Table:
    sections: tuple[str, ...]
    qualifiers: dict[str, set[str]]
    heading: str
    rows: list[Row] = field(default_factory=list)

    def applies(self, qualifiers: dict[str, str]) -> bool:
        return all(qualifiers.get(k) in allowed for k, allowed in self.qualifiers.items())

    def label(self) -> str:
        quals = ", ".join(f"{k}: {' | '.join(sorted(v))}" for k, v in self.qualifiers.items())
        return ", ".join(s or "router.yaml" for s in self.sections) + (f" ({quals})" if quals else "")


_CODE = re.compile(r"`([^`]+)`")
_QUALIFIER = re.compile(r"^(type|format):\s*(.+)$")


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def reference(text: str) -> list[Table]:
    tables: list[Table] = []
    current: Table | None = None
    for number, line in enumerate(text.splitlines(), 1):
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            spans = _CODE.findall(heading.group(1))
            current = None
            if spans:
                qualifiers, sections = {}, []
                for span in spans:
                    m = _QUALIFIER.match(span)
                    if m:
                        qualifiers[m.group(1)] = {v.strip() for v in m.group(2).split("|")}
                    else:
                        sections.append("" if span == "router.yaml" else span)
                current = Table(tuple(sections), qualifiers, heading.group(1))
                tables.append(current)
            continue
        if not line.startswith("|") or re.match(r"^\|[\s|:-]+\|$", line):
            continue
        cells = _cells(line)
        if cells[0].lower() == "key":
            continue
        assert current is not None, f"docs/config.md:{number}: a table outside a section heading (`key.path`)"
        assert len(cells) == 4, f"docs/config.md:{number}: expected | key | type | default | meaning |"
        keys = _CODE.findall(cells[0])
        assert keys, f"docs/config.md:{number}: the key cell names no `key`"
        current.rows.append(Row(keys, cells[1], cells[2], cells[3], number))
    return tables


@pytest.fixture(scope="module")
def tables() -> list[Table]:
    return reference(DOC.read_text(encoding="utf-8"))


def _rows_for(tables: list[Table], section: str, qualifiers: dict[str, str]) -> Iterator[tuple[Table, Row]]:
    for table in tables:
        if section in table.sections and table.applies(qualifiers):
            for row in table.rows:
                yield table, row


# --- the checks -------------------------------------------------------------------------------------------


def test_the_configs_exercise_every_type_format_action_subject_and_operator(world: World) -> None:
    dests = [d for raw in world.raws.values() for d in raw["destinations"].values()]
    assert {d["type"] for d in dests} == set(destinations.TYPES)
    for type_name, formats in (("s3", storage.FORMATS), ("file", file_destination.FORMATS)):
        assert {d.get("format") for d in dests if d["type"] == type_name} >= set(formats)
    assert {d["type"] for d in dests if "loadbalance" in d} == {"otlp_http", "otlp_grpc"}
    assert {a["action"] for a in _actions()} == set(actions.ACTIONS)
    match_keys = {r.key for r in world.reads if section_of(r, world.raws)[0] == "match"}
    assert match_keys >= {*match.OPERATORS, *match._SUBJECTS, "all", "any", "not"}
    assert {r.key for r in world.reads if r.path == ""} == set(config.TOP_LEVEL_KEYS)


def test_every_accepted_key_is_documented(world: World, tables: list[Table]) -> None:
    missing = set()
    for read in world.reads:
        section, qualifiers = section_of(read, world.raws)
        documented = {k for _, row in _rows_for(tables, section, qualifiers) for k in row.keys}
        if read.key not in documented:
            where = section or "router.yaml"
            quals = ", ".join(f"{k}: {v}" for k, v in qualifiers.items())
            missing.add(f"{where}{f' ({quals})' if quals else ''}: {read.key}   (read at {read.full_path})")
    assert not missing, "accepted by the readers but not in docs/config.md:\n" + "\n".join(sorted(missing))


def test_every_documented_key_is_accepted(world: World, tables: list[Table]) -> None:
    located = [(section_of(r, world.raws), r.key) for r in world.reads]
    unknown = []
    for table in tables:
        for section in table.sections:
            for row in table.rows:
                for key in row.keys:
                    if not any(s == section and table.applies(q) and k == key for (s, q), k in located):
                        unknown.append(f"docs/config.md:{row.line}: {section or 'router.yaml'}: {key}")
    assert not unknown, ("documented, but no reader accepts it (or no config of this test exercises it: "
                         "add it to one):\n" + "\n".join(unknown))


def test_the_top_level_keys_are_documented(tables: list[Table]) -> None:
    documented = {k for _, row in _rows_for(tables, "", {}) for k in row.keys}
    assert documented == set(config.TOP_LEVEL_KEYS)


def _literal(text: str, read: Read) -> Any:
    """A documented default as the reader's method would have it."""
    if read.method == "duration":
        return parse_duration(text)
    if read.method == "size":
        return parse_size(text)
    if read.method == "str":
        return text
    return yaml.safe_load(text)


def _same(documented: Any, default: Any) -> bool:
    if isinstance(documented, str) and isinstance(default, str):
        return documented == default or os.path.normpath(documented) == os.path.normpath(default)
    if isinstance(default, float) and isinstance(documented, (int, float)) and not isinstance(documented, bool):
        return abs(default - documented) < 1e-9
    return type(documented) is type(default) and documented == default


def _reads_of(world: World, table: Table, key: str) -> list[Read]:
    out = []
    for read in world.reads:
        section, qualifiers = section_of(read, world.raws)
        if read.key == key and section in table.sections and table.applies(qualifiers):
            out.append(read)
    return out


def test_documented_defaults_are_the_readers(world: World, tables: list[Table]) -> None:
    wrong, unchecked, checked = [], [], 0
    for table in tables:
        for row in table.rows:
            m = re.match(r"^`([^`]+)`", row.default)
            if not m:
                continue   # prose ("the destination's", "—", "required"): not a literal to compare
            for key in row.keys:
                taken = [r for r in _reads_of(world, table, key) if r.absent and r.method != "mark_read"]
                if not taken:
                    unchecked.append(f"docs/config.md:{row.line}: {table.label()}: {key}")
                for read in taken:
                    checked += 1
                    if not _same(_literal(m.group(1), read), read.default):
                        reader = "required" if read.default is settings._MISSING else repr(read.default)
                        wrong.append(f"docs/config.md:{row.line}: {table.label()}: {key}: documented "
                                     f"{m.group(1)}, the reader's default is {reader} (at {read.full_path})")
    assert not wrong, "documented defaults that are not the readers':\n" + "\n".join(sorted(set(wrong)))
    assert not unchecked, ("documented defaults no config of this test leaves to the reader (add the section "
                           "to minimal_config):\n" + "\n".join(unchecked))
    assert checked > 100


def _without(raw: dict[str, Any], path: str) -> dict[str, Any] | None:
    """`raw` with the key at `path` removed; None when the file itself does not hold it there."""
    out = copy.deepcopy(raw)
    node: Any = out
    steps = [s for part in path.split(".") for s in re.findall(r"[^\[\]]+|\[\d+\]", part)]
    for step in steps[:-1]:
        index = int(step[1:-1]) if step.startswith("[") else step
        try:
            node = node[index]
        except (KeyError, IndexError, TypeError):
            return None
    if not isinstance(node, dict) or steps[-1] not in node:
        return None
    del node[steps[-1]]
    return out


def test_required_keys_are_required(world: World, tables: list[Table]) -> None:
    problems, done = [], set()
    for table in tables:
        for row in table.rows:
            if row.default != "required":
                continue
            for key in row.keys:
                tried = 0
                for read in _reads_of(world, table, key):
                    if read.absent or read.method == "mark_read" or (row.line, read.config, read.full_path) in done:
                        continue
                    done.add((row.line, read.config, read.full_path))
                    raw = _without(world.raws[read.config], read.full_path)
                    if raw is None:
                        continue   # put there by the reader (a load-balanced endpoint, `api_key: NAME`)
                    tried += 1
                    try:
                        config.parse(yaml.safe_dump(raw, sort_keys=False), str(world.tmp / "router.yaml"))
                    except ConfigError as e:
                        if e.path != read.full_path:
                            problems.append(f"{table.label()}: {key}: without it the error is at {e.path}: "
                                            f"{e.problem}")
                    else:
                        problems.append(f"docs/config.md:{row.line}: {table.label()}: {key} is documented as "
                                        f"required, but {read.full_path} may be left out")
                if not tried:
                    problems.append(f"docs/config.md:{row.line}: {table.label()}: {key}: no config sets it")
    assert not problems, "\n".join(dict.fromkeys(problems))


_TYPE_WORDS = {"int": "integer", "number": "number", "duration": "duration", "size": "size", "bool": "boolean",
               "list": "list", "str_map": "mapping", "section": "mapping"}


def test_documented_types_are_the_readers(world: World, tables: list[Table]) -> None:
    wrong = set()
    for table in tables:
        for row in table.rows:
            for key in row.keys:
                for read in _reads_of(world, table, key):
                    where = f"docs/config.md:{row.line}: {table.label()}: {key}"
                    if read.choices is not None:
                        if set(_CODE.findall(row.type)) != set(read.choices):
                            wrong.add(f"{where}: the reader takes one of {', '.join(read.choices)}, "
                                      f"documented: {row.type}")
                    elif read.method == "str":
                        if not ({"string", "path"} & set(re.findall(r"\w+", row.type)) or _CODE.search(row.type)):
                            wrong.add(f"{where}: the reader takes a string, documented: {row.type}")
                    elif read.method in _TYPE_WORDS and _TYPE_WORDS[read.method] not in row.type:
                        wrong.add(f"{where}: the reader takes a {_TYPE_WORDS[read.method]}, documented: {row.type}")
    assert not wrong, "\n".join(sorted(wrong))


# --- keys in branches no config reaches ---------------------------------------------------------------------

_READ_METHODS = {"str", "bool", "int", "number", "duration", "size", "list", "str_map", "section", "sections",
                 "raw", "has", "mark_read"}
_KEY_HELPERS = {"parse_endpoint", "_strings"}   # (section, "key", ...) helpers of the readers
# Readers of other files than router.yaml's sections (the shipped GenAI conventions, documented in README).
_OTHER_SCHEMAS = {"otlp_router/model/conventions.py"}


def literal_keys() -> dict[str, set[str]]:
    """Every key named literally in a call to a Section reader, by module."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "otlp_router").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name in _OTHER_SCHEMAS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func, args = node.func, node.args
            if isinstance(func, ast.Attribute) and func.attr in _READ_METHODS \
                    and not isinstance(func.value, ast.Constant):
                candidates = args if func.attr == "mark_read" else args[:1]
            elif isinstance(func, (ast.Name, ast.Attribute)) and \
                    (func.id if isinstance(func, ast.Name) else func.attr) in _KEY_HELPERS:
                candidates = args[1:2]
            else:
                continue
            for arg in candidates:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(name, set()).add(arg.value)
    return found


def test_every_key_a_reader_names_is_documented(tables: list[Table]) -> None:
    """Backs up the configs: a key read only in a branch they do not reach still has to be documented."""
    documented = {k for table in tables for row in table.rows for k in row.keys}
    missing = sorted(f"{module}: {key}" for module, keys in literal_keys().items() for key in keys - documented)
    assert not missing, "keys the readers name that docs/config.md does not document:\n" + "\n".join(missing)


def test_the_readme_links_the_reference() -> None:
    assert "docs/config.md" in (ROOT / "README.md").read_text(encoding="utf-8")
