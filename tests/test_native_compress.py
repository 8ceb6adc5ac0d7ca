"""The core's gzip (native/src/compress.rs): what OTLP/HTTP export bodies and stored `.gz`
objects are compressed with. Any gzip reader must read back exactly what went in. And its
crc32, which guards the spool's records: zlib's, bit for bit, so segments written before it
read back."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otlp_router import _native


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200_000), st.integers(0, 9))
def test_gzip_reads_back_with_pythons_gzip(data: bytes, level: int) -> None:
    packed = _native.gzip(data, level)
    assert gzip.decompress(packed) == data
    # One member, as a streaming reader (an HTTP server's inflater) sees it.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert d.decompress(packed) == data and d.eof and d.unused_data == b""


def test_levels_above_nine_are_nine_and_compress_otlp_bodies() -> None:
    body = b"".join(b'{"key":"gen_ai.request.model","value":{"stringValue":"m-%d"}}' % (i % 50)
                    for i in range(5_000))
    assert _native.gzip(body, 12) == _native.gzip(body, 9)
    assert len(_native.gzip(body, 1)) < len(body) / 5
    assert len(_native.gzip(body, 6)) <= len(_native.gzip(body, 1))


@pytest.mark.parametrize("value", ["text", bytearray(b"x"), memoryview(b"x"), None])
def test_only_bytes_are_taken(value: object) -> None:
    # A mutable buffer could change while the core compresses it without the GIL.
    with pytest.raises(TypeError):
        _native.gzip(value, 1)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100_000), st.integers(0, 2**32 - 1))
def test_crc32_is_zlibs_and_chains_like_it(data: bytes, start: int) -> None:
    assert _native.crc32(data) == zlib.crc32(data)
    assert _native.crc32(data, start) == zlib.crc32(data, start)
    cut = len(data) // 3
    assert _native.crc32(data[cut:], _native.crc32(data[:cut])) == zlib.crc32(data)


@pytest.mark.parametrize("size", [(1 << 20) - 1, 1 << 20, (3 << 20) + 5])
def test_crc32_of_a_stored_object_is_zlibs_too(size: int) -> None:
    """From 1 MiB the core lets go of the GIL while it sums (a stored object's digest)."""
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert _native.crc32(data, 7) == zlib.crc32(data, 7)


@pytest.mark.parametrize("value", [bytearray(b"x" * (1 << 20)), memoryview(b"x" * (1 << 20))])
def test_crc32_takes_only_bytes(value: object) -> None:
    with pytest.raises(TypeError):
        _native.crc32(value)  # type: ignore[arg-type]
