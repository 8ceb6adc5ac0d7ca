"""Strict reading of router.yaml sections.

Every component reads its own settings through a `Section`, which knows the
file and the key path, so any mistake is reported as
``router.yaml: destinations.local.dir: expected a string, got 3``.
A section refuses keys nobody asked for once `done()` is called.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Any, Callable, Iterator, NoReturn, TypeVar

import yaml

T = TypeVar("T")

# Bounds on what a config file may cost to read (issue 14). A real router.yaml
# is a few KiB, a dozen levels deep, and uses an alias or two, if any.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_ALIAS_VALUES = 100_000   # values aliases may add once expanded (a billion-laughs file adds 9**9)
MAX_DEPTH = 100              # nesting, aliases expanded: the readers of the tree recurse

_MISSING: Any = object()

# Which keys the readers know, for the config reference's test (tests/test_config_reference.py):
# when set, called with the section, the key and the reader's default (`_MISSING`: required, or
# marked read) for every key a section is asked for or marked read, that is every key `done()`
# accepts. None, the default, costs one comparison per key read.
key_observer: Callable[["Section", str, Any], None] | None = None

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0,
                   None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "mi": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
               "t": 1000**4, "tb": 1000**4, "tib": 1024**4, "ti": 1024**4}


class ConfigError(Exception):
    """A config value is wrong; the message names the file, the key path and what was expected."""

    def __init__(self, file: str, path: str, problem: str) -> None:
        self.file, self.path, self.problem = file, path, problem
        super().__init__(f"{file}: {path or '(top level)'}: {problem}")


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses alias bombs, recursive aliases and deep nesting while composing.

    Composing is cheap, as an alias is the anchored node itself; what costs is
    every reader after it (`substitute_env`, `_secrets`, comparisons on reload),
    which walks the tree as if each alias were a copy. So each node records the
    values and the depth it stands for once expanded, and the file is refused
    as soon as those pass the bounds, before anything is expanded."""

    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self.file = file
        self._expanded: dict[int, tuple[int, int]] = {}   # id(node) → (values, depth), aliases expanded
        self._composed = 0   # distinct nodes so far
        self._depth = 0

    def _refuse(self, problem: str, mark: yaml.Mark | None) -> NoReturn:
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(self.file, "", problem + where)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            if id(node) not in self._expanded:  # its anchor is still open: the alias is inside what it names
                self._refuse(f"recursive alias *{event.anchor}", event.start_mark)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:  # before the composer's own recursion gets there
            self._refuse(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._composed += 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        values, depth = 1, 1
        for child in children:
            child_values, child_depth = self._expanded[id(child)]
            values += child_values
            depth = max(depth, child_depth + 1)
        # The values this node adds over the distinct nodes composed so far can
        # only grow with the rest of the file: refusing now is never too early.
        if values - self._composed > MAX_ALIAS_VALUES:
            self._refuse(f"too many aliases: expanded, they would add more than {MAX_ALIAS_VALUES} values",
                         node.start_mark)
        if depth > MAX_DEPTH:
            self._refuse(f"nested more than {MAX_DEPTH} levels deep once aliases are expanded", node.start_mark)
        self._expanded[id(node)] = (values, depth)
        return node


def load_yaml(text: str, file: str) -> Any:
    """The YAML tree of a config file's text, refused (ConfigError) when too large for a config,
    not valid YAML, or made of aliases that would expand past `MAX_ALIAS_VALUES`."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(file, "", f"the config is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
    loader = _BoundedLoader(text, file)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError(file, "", f"not valid YAML: {e}") from None
    finally:
        loader.dispose()


def substitute_env(value: Any, file: str, path: str = "") -> Any:
    """Replace ``${env:NAME}`` (or ``${env:NAME:-default}``) in every string of a parsed YAML tree."""
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(file, path, f"environment variable {name} is not set (referenced as ${{env:{name}}})")
        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, file, _join(path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, file, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


class Section:
    """One mapping of the config file, read key by key."""

    def __init__(self, data: Any, file: str, path: str = "") -> None:
        self.file, self.path = file, path
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail(f"expected a mapping, got {_type_name(data)}")
        self.data: dict[str, Any] = data
        self._read: set[str] = set()

    def fail(self, problem: str, key: str | None = None) -> NoReturn:
        raise ConfigError(self.file, _join(self.path, key) if key else self.path, problem)

    def key_path(self, key: str) -> str:
        return _join(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self._read.add(key)
        if key_observer is not None:
            key_observer(self, key, default)
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                # A typo of a required key (`destination:`) is the likelier mistake than a
                # missing one: name the key that is there first.
                typo = _close_match(key, [k for k in self.data if k not in self._read])
                if typo is not None:
                    self.fail(f"unknown key; did you mean {key}? ({key} is required)", typo)
                self.fail("is required", key)
            return default
        return self.data[key]

    def str(self, key: str, default: Any = _MISSING, choices: tuple[str, ...] | None = None) -> Any:
        value = self.raw(key, default)
        if self._absent(key, default):
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.fail(f"expected a string, got {_type_name(value)}", key)
        if choices is not None and value not in choices:
            self.fail(f"expected one of {', '.join(choices)}, got {value!r}", key)
        return value

    def bool(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if self._absent(key, default):
            return default
        if not isinstance(value, bool):
            self.fail(f"expected true or false, got {_type_name(value)}", key)
        return value

    def int(self, key: str, default: Any = _MISSING, minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self.raw(key, default)
        if self._absent(key, default):
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"expected an integer, got {_type_name(value)}", key)
        self._check_range(key, value, minimum, maximum)
        return value

    def number(self, key: str, default: Any = _MISSING, minimum: float | None = None, maximum: float | None = None) -> Any:
        value = self.raw(key, default)
        if self._absent(key, default):
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"expected a number, got {_type_name(value)}", key)
        self._check_range(key, value, minimum, maximum)
        return float(value)

    def duration(self, key: str, default: Any = _MISSING, minimum: float = 0.0) -> Any:
        """Seconds, from a number (seconds) or a string such as ``500ms``, ``5s``, ``1m``."""
        value = self.raw(key, default)
        if self._absent(key, default):
            return default
        seconds = parse_duration(value)
        if seconds is None:
            self.fail(f"expected a duration (seconds, or a string like 500ms, 5s, 1m, 2h, 7d), got {value!r}", key)
        self._check_range(key, seconds, minimum, None)
        return seconds

    def size(self, key: str, default: Any = _MISSING, minimum: int = 0) -> Any:
        """Bytes, from an integer or a string such as ``16MiB``, ``512KB``."""
        value = self.raw(key, default)
        if self._absent(key, default):
            return default
        size = parse_size(value)
        if size is None:
            self.fail(f"expected a size in bytes (an integer, or a string like 512KiB, 16MiB), got {value!r}", key)
        self._check_range(key, size, minimum, None)
        return size

    def list(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if self._absent(key, default):
            return default
        if not isinstance(value, list):
            self.fail(f"expected a list, got {_type_name(value)}", key)
        return value

    def str_map(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if self._absent(key, default):
            return default
        if not isinstance(value, dict):
            self.fail(f"expected a mapping of names to strings, got {_type_name(value)}", key)
        out = {}
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                self.fail(f"expected a string, got {_type_name(v)}", f"{key}.{k}")
            out[str(k)] = str(v)
        return out

    def section(self, key: str, required: bool = False) -> "Section":
        value = self.raw(key, _MISSING if required else {})
        return Section(value, self.file, self.key_path(key))

    def sections(self, key: str) -> Iterator[tuple[str, "Section"]]:
        """The entries of a mapping of named sections (``destinations: {name: {...}}``)."""
        for name, value in self.section(key).data.items():
            yield str(name), Section(value, self.file, self.key_path(f"{key}.{name}"))

    def _absent(self, key: str, default: Any) -> bool:
        return default is not _MISSING and self.data.get(key) is None

    def mark_read(self, *keys: str) -> None:
        self._read.update(keys)
        if key_observer is not None:
            for key in keys:
                key_observer(self, key, _MISSING)

    def done(self) -> None:
        self.refuse_unknown(self._read)

    def refuse_unknown(self, known: Any) -> None:
        """Fail on the first key not in `known`, suggesting the known key it is closest to."""
        known = set(known)
        unknown = [k for k in self.data if k not in known]
        if unknown:
            key = str(unknown[0])
            listed = ", ".join(sorted(known)) or "none"
            close = _close_match(key, sorted(known))
            hint = f"did you mean {close}? " if close is not None else ""
            self.fail(f"unknown key ({hint}expected one of: {listed})", key)

    def _check_range(self, key: str, value: float, minimum: float | None, maximum: float | None) -> None:
        if minimum is not None and value < minimum:
            self.fail(f"must be at least {minimum}, got {value}", key)
        if maximum is not None and value > maximum:
            self.fail(f"must be at most {maximum}, got {value}", key)


def _close_match(key: str, candidates: list[Any]) -> str | None:
    """The candidate `key` is most likely a typo of (or of which it is one), if any is close."""
    names = [str(c) for c in candidates if str(c) != key]
    found = difflib.get_close_matches(key, names, n=1, cutoff=0.8)
    return found[0] if found else None


def parse_duration(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    return None


def parse_size(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            unit = (m.group(2) or "").lower()
            if unit in _SIZE_UNITS:
                return int(float(m.group(1)) * _SIZE_UNITS[unit])
    return None


def parse_endpoint(section: Section, key: str, default: str) -> tuple[str, int]:
    """``host:port`` → (host, port); port 0 asks the OS for a free one (tests)."""
    value = section.str(key, default)
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        section.fail(f"expected host:port, got {value!r}", key)
    return host.strip("[]") or "0.0.0.0", int(port)
