"""Object keys built from client-supplied names (issue 14, path traversal): every
template variable becomes one safe segment, every key is checked, nothing is
ever written outside the destination's directory or prefix."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from otlp_router.destinations import paths
from otlp_router.destinations.paths import UnsafeKey, check_key, resolve_under, safe_segment
from tests.support import base_config, make_request, wait_for

PB = {"Content-Type": "application/x-protobuf"}
KEY_ATTRIBUTE = "trace.metadata.openrouter.api_key_name"
SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def _key_is_safe(key: str) -> bool:
    segments = key.split("/")
    return (not key.startswith("/") and len(key.encode()) <= 1024
            and all(s not in ("", ".", "..") and set(s) <= SAFE and len(s) <= 255 for s in segments))


# -- one segment per value -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["prod-app", "default", "team_a.v2", "A" * 64, "2024-01-31", "..."])
def test_ordinary_names_are_kept_as_they_are(name) -> None:
    assert safe_segment(name) == name


@pytest.mark.parametrize("name", ["../../../../tmp/escape", "/etc/passwd", "a/b", "a\\..\\b", "..", ".", "",
                                  "nul\x00byte", "line\nforged", "x" * 300, "é" * 200, "tab\there", "\ud800"])
def test_hostile_names_become_one_short_safe_segment(name) -> None:
    segment = safe_segment(name)
    assert segment not in ("", ".", "..") and set(segment) <= SAFE
    assert len(segment.encode()) <= paths.MAX_VALUE_BYTES


def test_names_that_are_cut_or_changed_stay_distinct() -> None:
    names = ["a/b", "a\\b", "a_b", "a b", "a\nb", ".", "..", "_", "x" * 300, "x" * 301, "x" * 64 + "y",
             "é", "è", "../x", "..\\x"]
    assert len({safe_segment(n) for n in names}) == len(names)


# -- whole keys ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["/abs/x.json", "a/../x.json", "a//x.json", "./x.json", "a/./x", "a/", "",
                                 "a\\..\\x", "a/\x00/x", "a/b c/x", "x" * 256, "a/" * 600 + "x", "\ud800/x"])
def test_unsafe_keys_are_refused(key) -> None:
    with pytest.raises(UnsafeKey):
        check_key(key)


def test_safe_keys_pass_and_resolve_under_the_root(tmp_path) -> None:
    assert check_key("openrouter-traces/2024-01-31/ab-1.json") == "openrouter-traces/2024-01-31/ab-1.json"
    assert resolve_under(tmp_path, "a/b.json") == tmp_path.resolve() / "a" / "b.json"


def test_a_symbolic_link_out_of_the_root_is_refused(tmp_path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "root" / "evil").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafeKey, match="outside"):
        resolve_under(tmp_path / "root", "evil/x.json")


def test_links_are_followed_as_path_resolve_follows_them(tmp_path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "to-a").symlink_to(root / "a")                                  # inside: followed
    (root / "a" / "gone.json").symlink_to(tmp_path / "outside" / "x.json")  # to nothing, outside
    (root / "loop").symlink_to(root / "loop")
    assert resolve_under(root, "to-a/new/b.json") == root / "a" / "new" / "b.json"
    assert resolve_under(root, "to-a/b.json") == (root / "to-a" / "b.json").resolve()
    with pytest.raises(UnsafeKey, match="outside"):
        resolve_under(root, "a/gone.json")   # a link to a file not made yet still points out
    with pytest.raises(OSError) as loop:
        resolve_under(root, "loop/b.json")
    assert loop.value.errno == errno.ELOOP and loop.value.strerror == os.strerror(errno.ELOOP)


def test_render_drops_an_empty_prefix_and_sanitises_each_value() -> None:
    values = {"date": "2024-01-31", "apiKeyName": "../../etc"}
    assert paths.render("{prefix}/{date}", values, {"prefix": ""}) == "2024-01-31"
    assert paths.render("{prefix}/{date}", values, {"prefix": "a/b"}) == "a/b/2024-01-31"
    rendered = paths.render("t/{apiKeyName}/{date}", values, {"prefix": ""})
    assert rendered.startswith("t/") and rendered.count("/") == 2 and _key_is_safe(rendered)


# -- configuration ---------------------------------------------------------------------------------------------

def _parse(tmp_path: Path, **destination: Any):
    from otlp_router import config
    text = yaml.safe_dump(base_config(tmp_path, destinations={"s": {
        "type": "file", "dir": str(tmp_path / "out"), "format": "json", **destination}}))
    return config.parse(text)


@pytest.mark.parametrize("template", ["../{date}", "a/./{date}", "{apiKeyName:.2}/{date}", "{apiKeyName!r}",
                                      "{apiKeyName.upper}", "my traces/{date}", "{0}/{date}"])
def test_unsafe_path_templates_are_refused_at_start(tmp_path, template) -> None:
    from otlp_router.settings import ConfigError
    with pytest.raises(ConfigError) as err:
        _parse(tmp_path, path_template=template)
    assert err.value.path == "destinations.s.path_template"


@pytest.mark.parametrize("prefix", ["../up", "/abs", "a//b", "a/./b", "has space", "a\\b"])
def test_unsafe_prefixes_are_refused_at_start(tmp_path, prefix) -> None:
    from otlp_router.settings import ConfigError
    with pytest.raises(ConfigError) as err:
        _parse(tmp_path, prefix=prefix)
    assert err.value.path == "destinations.s.prefix"


def test_ordinary_templates_and_prefixes_are_accepted(tmp_path) -> None:
    _parse(tmp_path, prefix="prod/eu-1", path_template="{prefix}/{year}/{month}/{day}/{apiKeyName}")
    _parse(tmp_path, path_template="/traces/{apiKeyName}/{date}/")   # outer slashes were always ignored


# -- through a running router, auth off: the attribute is client-supplied ----------------------------------

def _escape_name(out: Path, target: Path) -> str:
    """A name that, put into a path under `out` as it is, lands at `target`."""
    return "../" * len(out.resolve().parts) + str(target.resolve()).lstrip("/")


def _request_with_name(seed: int, name: str):
    request = make_request(spans=1, seed=seed)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key=KEY_ATTRIBUTE).value.string_value = name
    return request


def _hostile_names(tmp_path: Path) -> list[str]:
    return [_escape_name(tmp_path / "out", tmp_path / "escaped"), "../../../../tmp/escape", "..", ".",
            "a/../../b", "..\\..\\win", "nul\x00byte", "x" * 300, "line\n2024-01-01 ERROR forged line",
            "ünïcødé/name"]


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_hostile_key_names_from_span_attributes_stay_inside(start_router, tmp_path, moto, kind) -> None:
    template = "{apiKeyName}/{date}"
    if kind == "file":
        destination = {"type": "file", "dir": "./out", "format": "json", "trace_idle": "200ms",
                       "path_template": template}
    else:
        bucket = moto.bucket(f"hostile-{int(time.time() * 1000) % 10**9}")
        destination = moto.destination(bucket, format="json", trace_idle="200ms", path_template=template,
                                       prefix="tenants")
    router = start_router(base_config(tmp_path, destinations={"store": destination}))
    names = _hostile_names(tmp_path)
    for seed, name in enumerate(names, start=1):
        assert router.post("/v1/traces", _request_with_name(seed, name).SerializeToString(), PB)[0] == 200

    if kind == "file":
        root = tmp_path / "out"

        def objects() -> list[str]:
            return [str(p.relative_to(root)) for p in root.rglob("*.json")] if root.exists() else []
    else:
        def objects() -> list[str]:
            return list(moto.objects(bucket))
    keys = wait_for(lambda: len(objects()) >= len(names) and objects(), timeout=15)
    assert keys and len(keys) == len(names), (objects(), router.stderr)
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escape").exists()
    assert all(_key_is_safe(k) for k in keys), keys
    if kind == "s3":
        assert all(k.startswith("tenants/") for k in keys)
    # One directory per name, each distinct: different names never share a document's place.
    name_segment = 1 if kind == "s3" else 0
    assert len({k.split("/")[name_segment] for k in keys}) == len(names)
    assert "dead letter" not in router.stderr
    assert not any(line.startswith("2024-01-01 ERROR forged") for line in router.stderr.splitlines())


def test_with_auth_off_an_ordinary_attribute_name_is_used_as_it_is(start_router, tmp_path) -> None:
    destination = {"type": "file", "dir": "./out", "format": "json", "trace_idle": "200ms",
                   "path_template": "tenants/{apiKeyName}/{date}"}
    router = start_router(base_config(tmp_path, destinations={"store": destination}))
    assert router.post("/v1/traces", _request_with_name(7, "team-a").SerializeToString(), PB)[0] == 200
    found = wait_for(lambda: list((tmp_path / "out").rglob("*.json")), timeout=10)
    assert found and found[0].relative_to(tmp_path / "out").parts[:2] == ("tenants", "team-a")


# -- a key that cannot be written where it belongs is refused for good ---------------------------------------

def test_a_key_resolving_outside_the_directory_is_a_permanent_error(tmp_path) -> None:
    from otlp_router.destinations import build
    from otlp_router.destinations.assembly import TraceAssembler
    from otlp_router.destinations.base import ExportError
    from otlp_router.model.batch import Batch
    from otlp_router.model.signals import TRACES
    from otlp_router.settings import Section
    from otlp_router.spool.base import Entry

    (tmp_path / "out").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "out" / "evil").symlink_to(tmp_path / "outside")
    destination = build("store", Section({"type": "file", "dir": str(tmp_path / "out"), "format": "json",
                                          "path_template": "evil/{date}"}, "t.yaml", "destinations.store"))
    request = make_request(spans=2, seed=4)
    batch = Batch(TRACES, request, 2, request.SerializeToString())
    assembler = destination.assembler(100, 1 << 20, 1.0)
    assert assembler.add(Entry(batch, batch.size, 0), 0.0, lambda e: None) == []
    (group,) = assembler.due(0.0, everything=True)
    with pytest.raises(ExportError) as err:
        asyncio.run(destination.export(group))
    assert err.value.permanent and "outside" in str(err.value)
    assert list((tmp_path / "outside").iterdir()) == []

