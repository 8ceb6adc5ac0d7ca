"""OTLP JSON codec: protobuf messages to and from OTLP/HTTP JSON.

Implements the "JSON Protobuf Encoding" section of the OTLP specification
(opentelemetry-proto ``docs/specification.md``) for every OTLP message type:

* keys are the lowerCamelCase ``json_name``; decode also accepts the proto field name
  (``start_time_unix_nano``), as proto3 JSON parsers must;
* ``trace_id``, ``span_id`` and ``parent_span_id`` are hex strings, decoded case-insensitively
  and encoded lowercase; every other bytes field is base64 (decode accepts the standard and
  URL-safe alphabets, padded or not; encode writes standard base64 with padding);
* enums are written as integers; decode also accepts value names and keeps unknown numbers;
* 64-bit integers are written as decimal strings; decode accepts a number or a decimal string;
* doubles are numbers, non-finite ones the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
* unknown fields are ignored and ``null`` means "not set", at every level;
* encode omits fields at their default value, except fields with presence, which are written
  whenever set: oneof members (``{"intValue": "0"}``, ``{"stringValue": ""}``), proto3
  ``optional`` fields and sub-messages (``"status": {}``).

An id that is not hex (a non-hex character, whitespace, an odd number of digits) is an error
naming its path, in every id field (spans, parents, links, log records, exemplars), as in
the Collector's pdata: there are no bytes to keep, and reading it as absent would change the
item silently (an empty ``parentSpanId`` means "root span", an empty link or log span id
"none").  ``""`` is an absent id.  Valid hex of the wrong length decodes to its bytes, as the
same bytes in protobuf would, so the receiver rejects only the affected spans or log records
through partial_success once it checks id lengths.

Every other problem raises `JsonDecodeError` naming the path and the problem, e.g.
``resourceSpans[0].scopeSpans[0].spans[3].startTimeUnixNano: expected an integer (number or
decimal string), got 'abc'``: invalid JSON or UTF-8, a value of the wrong JSON type, a string
that is not a decimal integer, a number out of range for its field, two members of one oneof,
one field given under both its names, or nesting deeper than protobuf accepts.  upb refuses
messages nested more than `MAX_NESTING` (100) levels below the root, which inside a span
attribute is 48 levels of AnyValue arrays, or 32 of kvlists; an AnyValue-specific limit
(of 64, say) could never be reached first, so this is the one nesting limit.  Hostile depth
cannot exhaust the stack: JSON nested more than 1024 levels is refused (orjson's limit) by an
iterative parser, and the transcoder recurses once per message level, at most `MAX_NESTING`.

How it is fast
--------------
Both directions run in the native core (``otlp_router._native``, the Rust crate in
``native/``, issue #17), on bytes, with no Python object per field:

* decode: ``json_to_proto`` writes protobuf wire bytes while it scans the JSON, by field
  tables generated from the descriptors (``native/gen_tables.py``; ``native/src/json/fast.rs``);
  anything unusual or wrong (an error, a key given twice) is done again by the exact path,
  which parses the whole document first (so a syntax error anywhere wins, as with
  ``orjson.loads`` before) into a flat tape and alone words the errors. A single upb
  ``FromString`` builds the message where one is wanted.  Duplicate JSON keys keep the last value at the
  first key's place, as a dict did.  The words of an invalid-JSON error are orjson's own (the
  core asks orjson for them, on that error path only); string values in messages are shown
  with Python's ``repr``.
* encode: upb ``SerializeToString``, then ``proto_to_json`` writes the JSON from the wire
  bytes: keys in the order fields come (upb writes field-number order and only fields that are
  set, with presence rules applied, so the default-omission rules come for free), strings and
  floats exactly as ``orjson.dumps`` wrote them.
* ``to_dict`` is ``orjson.loads`` of that JSON.

The behaviour was frozen before the port as golden files (``tests/golden/json_codec``, made by
``tests/golden/make_json_codec.py`` with the former pure-Python codec) that the core
reproduces exactly (``tests/test_native_json.py``).
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.message import DecodeError, Message

from otlp_router import _native

__all__ = ["JsonDecodeError", "MAX_NESTING", "decode", "encode", "to_dict", "to_wire"]

MAX_NESTING = _native.MAX_NESTING
"""Deepest message nesting below the root that decode accepts: upb's own parse limit (100)."""


class JsonDecodeError(ValueError):
    """The body is not OTLP JSON for the requested type; the message names the path and problem."""


def decode(request_type: type[Message], body: bytes | str) -> Message:
    """Decode OTLP JSON (bytes or str) into a new `request_type` message.

    Raises JsonDecodeError naming the path and the problem, ids that are not hex included;
    valid hex ids of the wrong length are kept for the receiver to reject (see the module
    docstring)."""
    wire = to_wire(request_type, body)
    try:
        return request_type.FromString(wire)
    except DecodeError:  # the core enforces upb's nesting limit, so this should not happen
        raise JsonDecodeError(f"protobuf could not build {request_type.DESCRIPTOR.name} from this JSON") from None


def to_wire(request_type: type[Message], body: bytes | str) -> bytes:
    """OTLP JSON (bytes or str) as the protobuf bytes of a `request_type` message (what the
    receiver keeps, so it never serialises the message again); raises as `decode` does."""
    descriptor = request_type.DESCRIPTOR
    text = body if isinstance(body, str) else None
    try:
        raw = body.encode() if text is not None else body if isinstance(body, bytes) else bytes(body)
        wire = _native.json_to_proto(descriptor.full_name, raw)
    except UnicodeEncodeError:  # a str with lone surrogates: orjson's words for it
        raise JsonDecodeError(_orjson_problem(body)) from None
    except _native.JsonSyntaxError as e:
        raise JsonDecodeError(_orjson_problem(text) if text is not None else str(e)) from None
    except _native.JsonDecodeError as e:
        raise JsonDecodeError(str(e)) from None
    return wire


def _orjson_problem(body: Any) -> str:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return f"invalid JSON: {e}"
    return "invalid JSON"


def encode(message: Message) -> bytes:
    """`message` as compact OTLP JSON (UTF-8 bytes)."""
    return _native.proto_to_json(message.DESCRIPTOR.full_name, message.SerializeToString())


def to_dict(message: Message) -> dict:
    """The OTLP JSON form of `message` as a dict of JSON-ready values (what encode() writes)."""
    return orjson.loads(encode(message))
