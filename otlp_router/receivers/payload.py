"""From request bytes to a `Batch`: content types, decompression under a cap,
decoding and validation, shared by the HTTP and gRPC receivers."""

from __future__ import annotations

import zlib

import zstandard
from google.protobuf.message import DecodeError

from otlp_router import _native
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


# Input handed to a gzip member / zstd frame after the first, doubled while the member goes
# on. At a member's end the decompressor copies what is left of its input (`unused_data`):
# handing each member the whole rest made N members cost O(N x input); pieces near the
# member's own size make it O(input). The first member gets everything (one copy at most).
_FIRST_PIECE = 512
_MAX_PIECE = 1 << 20


def _inflate(body: bytes, wbits: int, cap: int, name: str) -> bytes:
    view = memoryview(body)
    end = len(view)
    out: list[bytes] = []
    size = pos = 0
    multi = wbits > 16   # concatenated gzip members are one stream (RFC 1952); deflate is one
    try:
        piece = end
        while pos < end:
            d = zlib.decompressobj(wbits)
            while True:
                stop = min(end, pos + piece)
                # max_length stops a bomb after cap + 1 bytes; past it input stays unread.
                chunk = d.decompress(view[pos:stop], cap + 1 - size)
                if chunk:
                    size += len(chunk)
                    if size > cap:
                        raise TooLarge(f"request body inflates past the {cap} byte limit")
                    out.append(chunk)
                if d.eof:
                    pos = stop - len(d.unused_data)
                    break
                if stop == end:
                    raise PayloadError(f"truncated {name} body")
                pos = stop
                piece = min(piece * 2, _MAX_PIECE)
            if not multi:
                break
            piece = _FIRST_PIECE
    except zlib.error as e:
        raise PayloadError(f"invalid {name} body: {e}") from None
    return out[0] if len(out) == 1 else b"".join(out)


def _unzstd(body: bytes, cap: int) -> bytes:
    dctx = zstandard.ZstdDecompressor()
    try:
        # The bounded read (in C, linear across frames) stops a bomb after `cap` bytes but
        # cannot tell a truncated frame from a short one; the second pass, frame by frame
        # and now known to be small, can.
        if len(dctx.stream_reader(body, read_across_frames=True).read(cap + 1)) > cap:
            raise TooLarge(f"request body inflates past the {cap} byte limit")
        view = memoryview(body)
        end = len(view)
        out: list[bytes] = []
        pos = 0
        piece = end
        while pos < end:
            d = dctx.decompressobj()
            while True:
                stop = min(end, pos + piece)
                chunk = d.decompress(view[pos:stop])
                if chunk:
                    out.append(chunk)
                if d.eof:
                    pos = stop - len(d.unused_data)
                    break
                if stop == end:
                    raise PayloadError("truncated zstd body")
                pos = stop
                piece = min(piece * 2, _MAX_PIECE)
            piece = _FIRST_PIECE
    except zstandard.ZstdError as e:
        raise PayloadError(f"invalid zstd body: {e}") from None
    return out[0] if len(out) == 1 else b"".join(out)


def decode(signal: Signal, kind: str, data: bytes) -> tuple[Batch, Rejection]:
    """Decode an export request, drop the items a backend would reject, count the rest.

    The native core first reads the protobuf bytes as they are (`_native.inspect`): a request
    that upb certainly parses and whose items are all acceptable is counted there, and its
    message is only built if something downstream looks inside (`Batch.message`). Anything
    else (bytes upb may refuse, items to reject, whatever is unusual) takes upb and
    `signal.inspect`, for the same errors and partial_success."""
    wire: bytes | None = data
    if kind != PROTOBUF:
        try:
            wire = otlp_json.to_wire(signal.request_type, data)   # kept: the spool needs no serialising
        except otlp_json.JsonDecodeError as e:
            raise PayloadError(f"invalid OTLP JSON: {e}") from None
    json_body = data if kind == JSON else None
    # The transcoder's bytes need no UTF-8 or structure check, only the way to the items.
    items = _native.inspect(signal.name, wire, kind != PROTOBUF)
    if items >= 0:
        return Batch(signal, None, items, wire, json_body=json_body), Rejection()
    try:
        message = signal.request_type.FromString(wire)
    except DecodeError as e:
        if kind != PROTOBUF:   # the core enforces upb's limits, so this should not happen
            raise PayloadError(f"invalid OTLP JSON: protobuf could not build {signal.request_type.DESCRIPTOR.name}"
                               " from this JSON") from None
        raise PayloadError(f"invalid protobuf {signal.request_type.DESCRIPTOR.name}: {e}") from None
    items, rejection = signal.inspect(message)
    if rejection.count:
        wire = None
    return Batch(signal, message, items, wire, json_body=json_body), rejection
