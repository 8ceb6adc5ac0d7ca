"""router.yaml: read, substitute `${env:NAME}`, validate every section, or say
exactly what is wrong (file, key path, what was expected)."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from otlp_router import destinations
from otlp_router.admin import AdminSettings
from otlp_router.model import conventions
from otlp_router.destinations.base import Destination
from otlp_router.destinations.delivery import BatchSettings, RetrySettings
from otlp_router.receivers.grpc import GrpcSettings
from otlp_router.receivers.http import HttpSettings
from otlp_router.receivers.intake import Auth, Limits
from otlp_router.routing.shaping import Shaping
from otlp_router.routing.table import RoutingTable
from otlp_router.settings import MAX_CONFIG_BYTES, ConfigError, Section, load_yaml, substitute_env
from otlp_router.spool.disk import FSYNC_POLICIES

__all__ = ["ConfigError", "ConfigFileError", "DestinationConfig", "RouterConfig", "load", "parse"]

log = logging.getLogger("otlp_router.config")

TOP_LEVEL_KEYS = frozenset({"receivers", "admin", "workers", "spool", "mapping", "genai", "shutdown_timeout",
                            "routes", "destinations"})

# Every key of the file that names a file or directory, by where it sits ("*": any
# entry of a mapping or list). A relative one is taken relative to the config
# file's directory (see `resolve_paths`).
_SERVER_TLS = ("cert_file", "key_file", "client_ca_file")
PATH_KEYS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("receivers", "otlp", "http", "tls"), _SERVER_TLS),
    (("receivers", "otlp", "grpc", "tls"), _SERVER_TLS),
    (("receivers", "otlp", "auth", "api_keys", "*"), ("key_file",)),
    (("admin", "tls"), _SERVER_TLS),
    (("admin", "auth"), ("token_file",)),
    (("spool",), ("dir",)),
    (("destinations", "*"), ("dir",)),
    (("destinations", "*", "tls"), ("ca_file", "cert_file", "key_file")),
)


class ConfigFileError(ConfigError):
    """The config file itself cannot be read: says so plainly, without a key path."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(file, "", f"cannot read {file}: {reason}")
        self.args = (self.problem,)


@dataclass(frozen=True)
class SpoolSettings:
    dir: Path = Path("./data/spool")
    max_bytes: int = 256 * 1024 * 1024      # per destination
    durable: bool = True
    fsync: str = "batch"
    segment_bytes: int = 32 * 1024 * 1024
    dead_letter_ttl: float = 7 * 86400.0

    @classmethod
    def read(cls, section: Section) -> "SpoolSettings":
        s = cls(Path(section.str("dir", str(cls.dir))),
                section.size("max_bytes", cls.max_bytes, minimum=1024),
                section.str("type", "disk", choices=("disk", "memory")) == "disk",
                section.str("fsync", cls.fsync, choices=FSYNC_POLICIES),
                section.size("segment_bytes", cls.segment_bytes, minimum=4096),
                section.duration("dead_letter_ttl", cls.dead_letter_ttl))
        section.done()
        return s


@dataclass
class DestinationConfig:
    destination: Destination
    retry: RetrySettings
    batch: BatchSettings
    shaping: Shaping


@dataclass
class RouterConfig:
    file: str
    http: HttpSettings | None
    grpc: GrpcSettings | None
    spool: SpoolSettings
    routing: RoutingTable
    destinations: dict[str, DestinationConfig] = field(default_factory=dict)
    shutdown_timeout: float = 10.0
    openrouter_mapping: bool = False
    admin: AdminSettings | None = None
    auth: Auth | None = None
    limits: Limits = field(default_factory=Limits)
    secrets: frozenset[str] = frozenset()   # values never to be logged
    raw_destinations: dict[str, Any] = field(default_factory=dict)  # as written, to see what a reload changed
    workers: int = 1          # `workers:` in the file defaults to auto: one per core this process may use
    genai: conventions.Table | None = None   # None: the shipped conventions


_SECRET_KEYS = ("key", "secret_access_key", "session_token", "access_key_id", "hash_key", "password", "token")


def _secrets(raw: object, header: bool = False) -> Iterator[str]:
    """Values of the config that are secrets: keys, tokens, and every header value."""
    if isinstance(raw, dict):
        for k, v in raw.items():
            if isinstance(v, str) and (header or k in _SECRET_KEYS):
                yield v
                if header and " " in v:  # "Bearer xyz": the token alone too
                    yield v.split(" ", 1)[1]
            else:
                yield from _secrets(v, header=k == "headers")
    elif isinstance(raw, list):
        for v in raw:
            yield from _secrets(v)


def load(path: str | Path) -> RouterConfig:
    file = str(path)
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            # One byte past the cap says "too large" without reading a 50 MB file (or /dev/zero).
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigFileError(file, str(e.strerror or e)) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(file, "", f"the config file is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(file, "", f"not UTF-8 text: {e}") from None
    config = parse(text, file)
    literal = [s for s in config.secrets if s in text]  # secrets written in the file, not from ${env:...}
    if literal and mode & stat.S_IROTH:
        log.warning("%s holds secrets and is readable by every user on this machine: chmod o-r %s", file, file)
    return config


def config_dir(file: str | Path) -> Path:
    """The directory relative paths in `file` are taken from: the file's own, made absolute."""
    return Path(os.path.abspath(os.path.dirname(os.fspath(file)) or "."))


def resolve_paths(raw: Any, base: Path) -> Any:
    """`raw` with every relative path of `PATH_KEYS` joined to `base`.

    Relative to the config file, not the working directory (the Collector takes
    the working directory): a service started from elsewhere (systemd, a
    container's WORKDIR) reads and writes the same files as `otlp-router run`
    started next to its config. Values of the wrong type are left for the
    section readers to report."""

    def walk(node: Any, steps: tuple[str, ...], keys: tuple[str, ...]) -> Any:
        if not steps:
            if not isinstance(node, dict):
                return node
            return {k: str(base / v) if k in keys and isinstance(v, str) and v and not os.path.isabs(v)
                    else v for k, v in node.items()}
        step, rest = steps[0], steps[1:]
        if step == "*":
            if isinstance(node, dict):
                return {k: walk(v, rest, keys) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v, rest, keys) for v in node]
            return node
        if isinstance(node, dict) and step in node:
            return {**node, step: walk(node[step], rest, keys)}
        return node

    for steps, keys in PATH_KEYS:
        raw = walk(raw, steps, keys)
    return raw


def parse(text: str, file: str = "router.yaml", base_dir: str | Path | None = None) -> RouterConfig:
    """The config in `text`; relative paths are taken relative to `base_dir` (default:
    the directory of `file`)."""
    base = Path(os.path.abspath(base_dir)) if base_dir is not None else config_dir(file)
    raw = load_yaml(text, file)  # bounded: size, aliases, depth
    raw = substitute_env(raw, file)
    raw = resolve_paths(raw, base)
    top = Section(raw, file)
    # Unknown top-level keys first: a typo'd `destination:` must not read as a missing `destinations`.
    top.refuse_unknown(TOP_LEVEL_KEYS)

    http = grpc = auth = None
    limits = Limits()
    receivers = top.section("receivers")
    if receivers.has("otlp"):
        otlp = receivers.section("otlp")
        if not (otlp.has("http") or otlp.has("grpc")):
            otlp.fail("expected at least one of http, grpc")
        http = HttpSettings.read(otlp.section("http")) if otlp.has("http") else None
        grpc = GrpcSettings.read(otlp.section("grpc")) if otlp.has("grpc") else None
        auth = Auth.read(otlp.section("auth")) if otlp.has("auth") else None
        limits = Limits.read(otlp.section("limits"))
        otlp.done()
    else:
        http, grpc = HttpSettings(), GrpcSettings()
    receivers.done()

    spool = top.section("spool")
    spool_settings = SpoolSettings.read(spool)
    if not spool_settings.dir.is_absolute():  # the default, ./data/spool: next to the config file too
        spool_settings = replace(spool_settings, dir=base / spool_settings.dir)

    built: dict[str, DestinationConfig] = {}
    for name, section in top.sections("destinations"):
        retry = RetrySettings.read(section.section("retry"))
        max_in_flight = section.int("max_in_flight", None, minimum=1)
        batch = BatchSettings.read(section.section("batch"), max_in_flight)
        shaping = Shaping.read(section)
        built[name] = DestinationConfig(destinations.build(name, section), retry, batch, shaping)
    if not built:
        top.fail("expected at least one destination", "destinations")

    routes = top.list("routes", [])
    if not routes:
        top.fail("expected at least one route", "routes")
    routing = RoutingTable.read(file, routes, {name: d.destination.accepts for name, d in built.items()},
                                {name: d.destination.implied for name, d in built.items()
                                 if d.destination.implied is not None})

    mapping = top.section("mapping")
    # Off by default: OpenRouter applies these fields itself before it broadcasts,
    # and looking for them costs a scan of every request.
    openrouter = mapping.bool("openrouter", False)
    mapping.done()
    # The GenAI conventions table: shipped entries plus the file's own, checked like the rest.
    genai = conventions.configure(top.section("genai"))

    admin = AdminSettings.read(top.section("admin")) if top.has("admin") else None
    workers = top.raw("workers", "auto")
    if workers == "auto":
        workers = len(os.sched_getaffinity(0))
    elif isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        top.fail(f"expected a number of worker processes (1 or more) or auto, got {workers!r}", "workers")
    shutdown_timeout = top.duration("shutdown_timeout", 10.0)
    top.done()
    if auth is not None:
        route_names = {r.name for r in [*routing.routes, *([routing.default] if routing.default else [])]}
        for i, key in enumerate(auth.keys):
            unknown = sorted((key.routes or set()) - route_names)
            if unknown:
                raise ConfigError(file, f"receivers.otlp.auth.api_keys[{i}].routes",
                                  f"unknown route(s) {', '.join(unknown)} (defined: {', '.join(sorted(route_names))})")
    return RouterConfig(file, http, grpc, spool_settings, routing, built, shutdown_timeout, openrouter, admin,
                        auth, limits, frozenset(_secrets(raw)), dict(top.data.get("destinations") or {}), workers,
                        genai)
