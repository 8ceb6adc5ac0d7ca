"""From request bytes to a `Batch`: content types, decompression under a cap,
decoding and validation, shared by the HTTP and gRPC receivers."""

from __future__ import annotations

import zlib

import zstandard
from google.protobuf.message import DecodeError

from otlp_router.model import otlp_json
from otlp_router.model.batch import Batch
from otlp_router.model.signals import Rejection, Signal

PROTOBUF = "protobuf"
JSON = "json"

_CONTENT_TYPES = {
    "application/x-protobuf": PROTOBUF,
    "application/protobuf": PROTOBUF,
    "application/json": JSON,
}
ENCODINGS = ("gzip", "deflate", "zstd", "identity")


class PayloadError(Exception):
    """A request the receiver refuses; `status` is the HTTP status to answer."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedMediaType(PayloadError):
    status = 415


class TooLarge(PayloadError):
    status = 413


def content_kind(content_type: str) -> str:
    """``application/json; charset=utf-8`` → ``json``; unknown types raise 415."""
    media = content_type.split(";", 1)[0].strip().lower()
    kind = _CONTENT_TYPES.get(media)
    if kind is None:
        shown = media or "(none)"
        raise UnsupportedMediaType(
            f"unsupported content type {shown}: use application/x-protobuf or application/json")
    if kind == JSON and ";" in content_type:
        for param in content_type.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
                raise UnsupportedMediaType(f"unsupported charset {value.strip()}: OTLP JSON is UTF-8")
    return kind


def decompress(body: bytes, encoding: str, cap: int) -> bytes:
    """Undo a Content-Encoding, refusing to inflate past `cap` bytes (gzip bombs
    are stopped after `cap` bytes of output, not after inflating them whole)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity", "none"):
        data = body
    elif encoding in ("gzip", "x-gzip"):
        data = _inflate(body, 16 + zlib.MAX_WBITS, cap, "gzip")
    elif encoding == "deflate":
        # RFC 9110 deflate is zlib-wrapped, but raw deflate is common in the wild.
        try:
            data = _inflate(body, zlib.MAX_WBITS, cap, "deflate")
        except PayloadError as e:
            if isinstance(e, TooLarge):
                raise
            data = _inflate(body, -zlib.MAX_WBITS, cap, "deflate")
    elif encoding == "zstd":
        data = _unzstd(body, cap)
    else:
        raise UnsupportedMediaType(f"unsupported content encoding {encoding!r}: use gzip, deflate, zstd or none")
    if len(data) > cap:
        raise TooLarge(f"request body is larger than the {cap} byte limit")
    return data


def _inflate(body: bytes, wbits: int, cap: int, name: str) -> bytes:
    out = []
    size = 0
    rest = body
    try:
        while rest:
            d = zlib.decompressobj(wbits)
            chunk = d.decompress(rest, cap + 1 - size)
            size += len(chunk)
            out.append(chunk)
            if size > cap or d.unconsumed_tail:
                raise TooLarge(f"request body inflates past the {cap} byte limit")
            if not d.eof:
                raise PayloadError(f"truncated {name} body")
            # Concatenated gzip members are one stream (RFC 1952).
            rest = d.unused_data if wbits > 16 else b""
    except zlib.error as e:
        raise PayloadError(f"invalid {name} body: {e}") from None
    return b"".join(out)


def _unzstd(body: bytes, cap: int) -> bytes:
    dctx = zstandard.ZstdDecompressor()
    try:
        # The bounded read stops a bomb after `cap` bytes but cannot tell a
        # truncated frame from a short one; the second pass (now known to be
        # small) can.
        if len(dctx.stream_reader(body, read_across_frames=True).read(cap + 1)) > cap:
            raise TooLarge(f"request body inflates past the {cap} byte limit")
        out = []
        rest = body
        while rest:
            d = dctx.decompressobj()
            out.append(d.decompress(rest))
            if not d.eof:
                raise PayloadError("truncated zstd body")
            rest = d.unused_data
    except zstandard.ZstdError as e:
        raise PayloadError(f"invalid zstd body: {e}") from None
    return b"".join(out)


def decode(signal: Signal, kind: str, data: bytes) -> tuple[Batch, Rejection]:
    """Decode an export request, drop the items a backend would reject, count the rest."""
    if kind == PROTOBUF:
        try:
            message = signal.request_type.FromString(data)
        except DecodeError as e:
            raise PayloadError(f"invalid protobuf {signal.request_type.DESCRIPTOR.name}: {e}") from None
        wire: bytes | None = data
    else:
        try:
            message = otlp_json.decode(signal.request_type, data)
        except otlp_json.JsonDecodeError as e:
            raise PayloadError(f"invalid OTLP JSON: {e}") from None
        wire = None
    items, rejection = signal.inspect(message)
    if rejection.count:
        wire = None
    return Batch(signal, message, items, wire, json_body=data if kind == JSON else None), rejection
