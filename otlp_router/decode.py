"""`otlp-router decode`: print stored exports (Aperture .cbor.zstd, per-trace
.json, OTLP .jsonl[.gz|.zst]) as JSON lines, from local files or s3:// URLs."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import zstandard

from otlp_router.destinations.formats.aperture import decode_records


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def decode_object(name: str, data: bytes) -> Iterator[bytes]:
    """JSON lines for one stored object, chosen by its name."""
    if name.endswith(".cbor.zstd"):
        for record in decode_records(data):
            yield orjson.dumps(record, default=_default)
        return
    if name.endswith(".gz"):
        data, name = gzip.decompress(data), name[:-3]
    elif name.endswith(".zst"):
        data, name = zstandard.ZstdDecompressor().stream_reader(data).read(), name[:-4]
    if name.endswith(".jsonl"):
        yield from (line for line in data.splitlines() if line.strip())
    else:
        yield orjson.dumps(orjson.loads(data))


def read_source(source: str, s3_reader: Callable[[str, str], bytes] | None) -> bytes:
    if source.startswith("s3://"):
        bucket, _, key = source[5:].partition("/")
        if s3_reader is None or not key:
            raise ValueError(f"{source}: expected s3://bucket/key with connection options")
        return s3_reader(bucket, key)
    return Path(source).read_bytes()
