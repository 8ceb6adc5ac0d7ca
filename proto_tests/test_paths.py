"""Stored-object keys from hostile template values (issue 14), by hypothesis.

Whatever a client (auth off: the `trace.metadata.openrouter.api_key_name`
attribute) or an operator's key name puts into `{apiKeyName}` -- any unicode,
`/` and `\\`, NUL and control characters, `.` and `..` runs, thousands of
characters -- the key a storage destination builds

* resolves (Path.resolve) under the destination's directory, and a real write
  lands there and nowhere else;
* is a valid S3 key under the destination's prefix: UTF-8, at most 1024 bytes,
  no leading `/`, no empty, `.` or `..` segment;
* keeps the value in one segment, and different values in different segments.

The checks here are written out independently of otlp_router.destinations.paths."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from otlp_router.destinations import build
from otlp_router.destinations.paths import safe_segment
from otlp_router.model.batch import Batch
from otlp_router.model.signals import TRACES
from otlp_router.settings import Section
from otlp_router.spool.base import Entry
from tests.support import make_request

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ATTRIBUTE = "trace.metadata.openrouter.api_key_name"
ASCII_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

# Pieces that have broken paths somewhere: separators, traversal, NUL, controls, odd unicode.
_PIECES = st.sampled_from(["/", "\\", "..", ".", "../", "..\\", "\x00", "\n", "\r", "\t", "\x1b", "\x7f", "~",
                           "%2e%2e%2f", "\u202e", "\u2215", "\uff0f", "\u0085", "\u2028", "é", "日本", "🙂",
                           "con", "NUL", ":", "*", "?", "\"", "<", ">", "|", " ", "{", "}", "{apiKeyName}"])
VALUES = st.one_of(
    st.text(),                                                      # any unicode but lone surrogates
    st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=40).map("".join),
    st.builds(lambda piece, n: piece * n, _PIECES, st.integers(1, 600)),   # very long
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1f), max_size=300),
    st.sampled_from(["", ".", "..", "...", "/", "//", "\\", "\x00"]),
)
ORDINARY = st.text(alphabet=sorted(ASCII_SAFE), min_size=1, max_size=64).filter(lambda s: s not in (".", ".."))

# Destination layouts: the variable alone, repeated, beside literals, with and without a prefix.
LAYOUTS = [("{apiKeyName}/{date}", ""), ("{apiKeyName}", "tenants"), ("{prefix}/{apiKeyName}/{date}", "a/b-c"),
           ("t/{apiKeyName}{apiKeyName}{apiKeyName}/{year}/{month}/{day}", ""), ("x.{apiKeyName}.y/{date}", "p"),
           ("openrouter-traces/{date}", "")]


def _destination(root: Path, template: str, prefix: str):
    settings_ = {"type": "file", "dir": str(root), "format": "json", "path_template": template,
                 "trace_idle": "1ms", **({"prefix": prefix} if prefix else {})}
    return build("store", Section(settings_, "t.yaml", "destinations.store"))


def _group(destination, value: str, authenticated: bool):
    """The trace of one span whose key name is `value`: the authenticated key's
    (auth on), or the span attribute (auth off)."""
    request = make_request(spans=1, seed=7)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key=ATTRIBUTE).value.string_value = value
    batch = Batch(TRACES, request, 1, request.SerializeToString(), api_key_name=value if authenticated else None)
    assembler = destination.assembler(100, 1 << 20, 1.0)
    assert assembler.add(Entry(batch, batch.size, 0), 0.0, lambda e: None) == []
    (group,) = assembler.due(0.0, everything=True)
    return group


def _valid_s3_key(key: str, prefix: str) -> None:
    raw = key.encode("utf-8")               # raises on anything that is not UTF-8
    assert len(raw) <= 1024, len(raw)
    assert not key.startswith("/")
    segments = key.split("/")
    assert all(s not in ("", ".", "..") for s in segments), key
    assert all(len(s.encode()) <= 255 for s in segments), key
    assert set(key) <= ASCII_SAFE | {"/"}, key
    if prefix:
        assert key.startswith(prefix + "/"), key


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("paths") / "deep" / "store"


@FUZZ
@given(value=VALUES, layout=st.sampled_from(LAYOUTS), authenticated=st.booleans(),
       ts=st.integers(0, 2**33))
def test_every_key_stays_under_the_root_and_is_a_valid_s3_key(root, value, layout, authenticated, ts) -> None:
    template, prefix = layout
    destination = _destination(root, template, prefix)
    key_for, *_ = destination._encode(_group(destination, value, authenticated))   # the document's key, per second
    key = key_for(ts)
    _valid_s3_key(key, prefix)
    resolved = (root / key).resolve()
    assert resolved.is_relative_to(root.resolve()), (key, resolved)
    assert "\x00" not in key and "\\" not in key


@FUZZ
@given(value=VALUES)
def test_a_value_is_one_short_safe_segment(value) -> None:
    segment = safe_segment(value)
    assert segment not in ("", ".", "..") and "/" not in segment
    assert set(segment) <= ASCII_SAFE and len(segment.encode()) <= 64


@FUZZ
@given(a=VALUES, b=VALUES)
def test_different_values_get_different_segments(a, b) -> None:
    assume(a != b and {a, b} != {"", "_"})   # empty is never a name: the router writes `default` for it
    assert safe_segment(a) != safe_segment(b)


@FUZZ
@given(value=ORDINARY)
def test_ordinary_names_are_kept_byte_for_byte(value) -> None:
    assert safe_segment(value) == value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES, layout=st.sampled_from(LAYOUTS), authenticated=st.booleans())
def test_a_real_write_lands_under_the_root_and_nowhere_else(value, layout, authenticated) -> None:
    template, prefix = layout
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "a" / "b" / "store"
        destination = _destination(root, template, prefix)
        group = _group(destination, value, authenticated)
        asyncio.run(destination.export(group))
        written = [p for p in base.rglob("*") if p.is_file()]
        assert len(written) == 1
        assert written[0].resolve().is_relative_to(root.resolve())
