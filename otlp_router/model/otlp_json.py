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
cannot exhaust the stack: orjson refuses JSON nested more than 1024 levels, the generated code
recurses once per AnyValue level, and the careful decoder stops at `MAX_NESTING`.

How it is fast
--------------
Building messages field by field from Python is slow, while upb parses and writes the
protobuf wire format in C, so both directions go through wire bytes:

* decode: ``orjson.loads``, then one generated function per message type turns the JSON
  dicts into wire bytes, and a single ``FromString`` builds the message.  Wire bytes are
  assembled as a latin-1 ``str`` (one char per byte) because f-strings concatenate several
  pieces in one step and ASCII text needs no re-encoding.  The generated code handles the
  common shapes only and gives up (`_Fallback`) on anything else: enum names, ``null``,
  snake_case keys, unknown fields, NaN strings, errors.  The request is then decoded again
  by `_Careful`, an interpreter over the same field tables that handles every rule, tracks
  the path and reports the first problem.
* encode: ``SerializeToString``, then one generated reader per message type turns the wire
  bytes into the JSON-ready dict, which ``orjson.dumps`` writes.  upb only serializes fields
  that are set (with presence rules applied), so the default-omission rules come for free.
"""

from __future__ import annotations

import binascii
import math
import re
import struct
import threading
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

__all__ = ["JsonDecodeError", "MAX_NESTING", "decode", "encode", "to_dict"]

MAX_NESTING = 100
"""Deepest message nesting below the root that decode accepts: upb's own parse limit."""


class JsonDecodeError(ValueError):
    """The body is not OTLP JSON for the requested type; the message names the path and problem."""


class _Fallback(Exception):
    """Raised by generated decode code for any input it does not handle; `_Careful` takes over."""


# --------------------------------------------------------------------------------------
# Wire primitives.  Wire bytes are built as latin-1 str: chr(b) stands for byte b.
# --------------------------------------------------------------------------------------

_MAX_U64 = (1 << 64) - 1
_MAX_I64 = (1 << 63) - 1
_MIN_I64 = -(1 << 63)
_MAX_EXACT_FLOAT_INT = 1 << 53

_pack_q = struct.Struct("<Q").pack
_pack_sq = struct.Struct("<q").pack
_pack_i = struct.Struct("<I").pack
_pack_si = struct.Struct("<i").pack
_pack_d = struct.Struct("<d").pack
_pack_f = struct.Struct("<f").pack
_unpack_q = struct.Struct("<Q").unpack_from
_unpack_sq = struct.Struct("<q").unpack_from
_unpack_i = struct.Struct("<I").unpack_from
_unpack_si = struct.Struct("<i").unpack_from
_unpack_d = struct.Struct("<d").unpack_from
_unpack_f = struct.Struct("<f").unpack_from
_a2b_hex = binascii.a2b_hex


def _varint_slow(n: int) -> str:
    out = []
    while n > 0x7F:
        out.append(chr((n & 0x7F) | 0x80))
        n >>= 7
    out.append(chr(n))
    return "".join(out)


# Varints of 0..16383 (one or two bytes) and, for longer varints, 14-bit groups with both
# continuation bits set: a 64-bit varint is then at most four lookups, not a ten-step loop.
_VARINT_SMALL = [_varint_slow(n) for n in range(1 << 14)]
_VARINT_GROUP = [chr((k & 0x7F) | 0x80) + chr(((k >> 7) & 0x7F) | 0x80) for k in range(1 << 14)]


def _varint(n: int) -> str:
    """Varint of n; negative n (int32, int64, enum) is written as its 64-bit two's complement."""
    if n < 0:
        n += 1 << 64
    if n < 16384:
        return _VARINT_SMALL[n]
    g = _VARINT_GROUP
    if n < 268435456:
        return g[n & 16383] + _VARINT_SMALL[n >> 14]
    if n < 4398046511104:
        return g[n & 16383] + g[(n >> 14) & 16383] + _VARINT_SMALL[n >> 28]
    if n < 72057594037927936:
        return g[n & 16383] + g[(n >> 14) & 16383] + g[(n >> 28) & 16383] + _VARINT_SMALL[n >> 42]
    return (g[n & 16383] + g[(n >> 14) & 16383] + g[(n >> 28) & 16383] + g[(n >> 42) & 16383]
            + _VARINT_SMALL[n >> 56])


def _latin1(s: str) -> str:
    """UTF-8 bytes of s, as latin-1 str (only needed when s is not ASCII)."""
    return s.encode().decode("latin-1")


def _hex_id(v: str) -> str | None:
    """The bytes of a hex id (latin-1 str), or None when it is not hex (see the module docstring)."""
    try:
        return _a2b_hex(v).decode("latin-1")
    except ValueError:  # odd length, non-hex or non-ASCII characters
        return None


_ID_DIGITS = {"trace_id": "a trace id in hex (32 hex digits)", "span_id": "a span id in hex (16 hex digits)",
              "parent_span_id": "a span id in hex (16 hex digits)"}


_B64_STD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B64_URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def _base64(v: Any) -> str | None:
    """Standard or URL-safe base64, padding optional, to latin-1 str; None if invalid."""
    if v.__class__ is not str:
        return None
    if _B64_STD.fullmatch(v) is None:
        if _B64_URL.fullmatch(v) is None:
            return None
        v = v.replace("-", "+").replace("_", "/")
    data = v.rstrip("=")
    padding = -len(data) % 4
    if padding == 3 or len(v) - len(data) not in (0, padding):  # 4n+1 chars, or partial padding
        return None
    try:
        return binascii.a2b_base64(data + "=" * padding, strict_mode=True).decode("latin-1")
    except binascii.Error:
        return None


def _zigzag(n: int) -> int:
    return n << 1 if n >= 0 else ((-n) << 1) - 1


# --------------------------------------------------------------------------------------
# Field tables, built once per message type from its descriptor.
# --------------------------------------------------------------------------------------

# kind -> (wire type, smallest value, largest value) for the integer kinds
_INT_KINDS = {
    "int32": (0, -(1 << 31), (1 << 31) - 1), "sint32": (0, -(1 << 31), (1 << 31) - 1),
    "uint32": (0, 0, (1 << 32) - 1), "enum": (0, -(1 << 31), (1 << 31) - 1),
    "int64": (0, _MIN_I64, _MAX_I64), "sint64": (0, _MIN_I64, _MAX_I64), "uint64": (0, 0, _MAX_U64),
    "fixed32": (5, 0, (1 << 32) - 1), "sfixed32": (5, -(1 << 31), (1 << 31) - 1),
    "fixed64": (1, 0, _MAX_U64), "sfixed64": (1, _MIN_I64, _MAX_I64),
}
_64BIT = {"int64", "sint64", "uint64", "fixed64", "sfixed64"}
_KIND_BY_TYPE = {
    FieldDescriptor.TYPE_DOUBLE: "double", FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64", FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32", FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32", FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string", FieldDescriptor.TYPE_MESSAGE: "message",
    FieldDescriptor.TYPE_BYTES: "bytes", FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_ENUM: "enum", FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64", FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}
_WIRE_TYPE = {"double": 1, "float": 5, "bool": 0, "string": 2, "bytes": 2, "hexid": 2, "message": 2}
_HEX_ID_FIELDS = {"trace_id", "span_id", "parent_span_id"}
_KEY_VALUE = "opentelemetry.proto.common.v1.KeyValue"


class _Field:
    """What the codec needs to know about one field."""

    __slots__ = ("name", "json_name", "number", "kind", "repeated", "packed", "tag", "message",
                 "enum_numbers", "enum_type", "oneof")

    def __init__(self, fd: FieldDescriptor) -> None:
        self.name = fd.name
        self.json_name = fd.json_name
        self.number = fd.number
        kind = _KIND_BY_TYPE.get(fd.type)
        if kind is None or (fd.message_type is not None and fd.message_type.GetOptions().map_entry):
            raise TypeError(f"{fd.full_name}: groups and maps are not used by OTLP and not supported")
        if kind == "bytes" and fd.name in _HEX_ID_FIELDS:
            kind = "hexid"
        self.kind = kind
        self.repeated = fd.is_repeated
        # proto3 packs repeated numeric fields; the decoder writes them packed, the reader
        # below accepts both forms.
        self.packed = self.repeated and kind not in ("string", "bytes", "hexid", "message")
        wire = 2 if self.packed else _INT_KINDS[kind][0] if kind in _INT_KINDS else _WIRE_TYPE[kind]
        self.tag = _varint((fd.number << 3) | wire)
        self.message = fd.message_type
        self.enum_type = fd.enum_type
        self.enum_numbers = {v.name: v.number for v in fd.enum_type.values} if fd.enum_type else None
        oneof = fd.containing_oneof
        # proto3 `optional` fields sit alone in a synthetic oneof: no exclusivity to enforce
        self.oneof = oneof.name if oneof is not None and len(oneof.fields) > 1 else None


class _Plan:
    """Field tables of one message type."""

    __slots__ = ("descriptor", "fields", "by_key")

    def __init__(self, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self.fields = sorted((_Field(fd) for fd in descriptor.fields), key=lambda f: f.number)
        self.by_key = {}
        for f in self.fields:
            self.by_key[f.name] = f
            self.by_key[f.json_name] = f


_PLANS: dict[str, _Plan] = {}


def _plan(descriptor: Descriptor) -> _Plan:
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = _PLANS[descriptor.full_name] = _Plan(descriptor)
    return plan


# --------------------------------------------------------------------------------------
# Careful decoding: every rule, with paths.  Used when the generated code gives up.
# --------------------------------------------------------------------------------------

_DECIMAL = re.compile(r"-?[0-9]+")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INF = float("inf")
_NON_FINITE_IN = {"NaN": float("nan"), "Infinity": _INF, "-Infinity": -_INF}

# A path is built only when an error is reported: (parent path, key or index) pairs.
_Path = tuple[Any, Any] | None


def _format_path(path: _Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, step = path
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(reversed(parts)).lstrip(".")


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "a list"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


class _Careful:
    """Decodes parsed JSON to wire bytes (latin-1 str), checking everything."""

    @staticmethod
    def fail(path: _Path, problem: str) -> JsonDecodeError:
        where = _format_path(path)
        return JsonDecodeError(f"{where}: {problem}" if where else problem)

    def message(self, plan: _Plan, d: Any, path: _Path, nesting: int) -> str:
        if not isinstance(d, dict):
            raise self.fail(path, f"expected an object, got {_show(d)}")
        out = []
        seen: dict[int, str] = {}
        oneofs: dict[str, str] = {}
        for key, v in d.items():
            f = plan.by_key.get(key)
            if f is None or v is None:
                continue
            here = (path, key)
            if f.number in seen:
                raise self.fail(here, f"field given twice, also as {seen[f.number]!r}")
            seen[f.number] = key
            if f.oneof is not None:
                if f.oneof in oneofs:
                    raise self.fail(here, f"only one of oneof {f.oneof!r} may be set, "
                                          f"{oneofs[f.oneof]!r} is set too")
                oneofs[f.oneof] = key
            if not f.repeated:
                out.append(self.value(f, v, here, nesting))
                continue
            if not isinstance(v, list):
                raise self.fail(here, f"expected a list, got {_show(v)}")
            if f.packed:
                body = "".join([self.scalar(f, e, (here, i)) for i, e in enumerate(v)])
                out.append(f.tag + _varint(len(body)) + body)
            else:
                out.extend([self.value(f, e, (here, i), nesting) for i, e in enumerate(v)])
        return "".join(out)

    def value(self, f: _Field, v: Any, path: _Path, nesting: int) -> str:
        """Tag and value of one (element of a) non-packed field."""
        if f.kind == "message":
            if nesting >= MAX_NESTING:
                raise self.fail(path, f"nested too deep: protobuf accepts at most {MAX_NESTING} "
                                      "levels of messages below the root")
            body = self.message(_plan(f.message), v, path, nesting + 1)
        elif f.kind == "string":
            if not isinstance(v, str):
                raise self.fail(path, f"expected a string, got {_show(v)}")
            body = v if v.isascii() else _latin1(v)
        elif f.kind == "hexid":
            if not isinstance(v, str):
                raise self.fail(path, f"expected a hex string, got {_show(v)}")
            body = _hex_id(v)
            if body is None:
                raise self.fail(path, f"expected {_ID_DIGITS[f.name]}, got {_show(v)}")
        elif f.kind == "bytes":
            body = _base64(v)
            if body is None:
                raise self.fail(path, f"expected a base64 string, got {_show(v)}")
        else:
            return f.tag + self.scalar(f, v, path)
        return f.tag + _varint(len(body)) + body

    def scalar(self, f: _Field, v: Any, path: _Path) -> str:
        """Wire value (no tag) of a number, bool or enum."""
        kind = f.kind
        if kind == "bool":
            if v is True or v is False:
                return "\x01" if v else "\x00"
            raise self.fail(path, f"expected true or false, got {_show(v)}")
        if kind in ("double", "float"):
            return self.floating(kind, v, path)
        if kind == "enum" and isinstance(v, str):
            number = f.enum_numbers.get(v)
            if number is None:
                raise self.fail(path, f"unknown {f.enum_type.name} value {_show(v)}")
            return _varint(number)
        n = self.integer(kind, v, path)
        if kind in ("int32", "int64", "uint32", "uint64", "enum"):
            return _varint(n)
        if kind in ("sint32", "sint64"):
            return _varint(_zigzag(n))
        pack = {"fixed32": _pack_i, "sfixed32": _pack_si, "fixed64": _pack_q, "sfixed64": _pack_sq}[kind]
        return pack(n).decode("latin-1")

    def integer(self, kind: str, v: Any, path: _Path) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise self.fail(path, f"expected an integer (number or decimal string), got {_show(v)}")
        if isinstance(v, str):
            if _DECIMAL.fullmatch(v) is None:
                raise self.fail(path, f"expected an integer (number or decimal string), got {_show(v)}")
            if len(v.lstrip("-").lstrip("0")) > 20:  # beyond any 64-bit value; int() would be slow
                raise self.fail(path, f"{_show(v)} is out of range for {kind}")
            n = int(v)
        elif isinstance(v, float):
            # orjson returns floats for fractions, exponents and integers beyond 64 bits
            if not v.is_integer():
                raise self.fail(path, f"expected an integer, got {_show(v)}")
            if abs(v) > _MAX_EXACT_FLOAT_INT:
                raise self.fail(path, f"{_show(v)} is too large to be exact as a JSON number; "
                                      "write it as a decimal string")
            n = int(v)
        else:
            n = v
        _, low, high = _INT_KINDS[kind]
        if not low <= n <= high:
            name = "int32" if kind == "enum" else kind
            raise self.fail(path, f"{n} is out of range for {name}")
        return n

    def floating(self, kind: str, v: Any, path: _Path) -> str:
        if isinstance(v, str):
            x = _NON_FINITE_IN.get(v)
            if x is None:
                if _JSON_NUMBER.fullmatch(v) is None:
                    raise self.fail(path, 'expected a number, "NaN", "Infinity" or "-Infinity", '
                                          f"got {_show(v)}")
                x = float(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            x = float(v)  # orjson gives finite floats and ints of at most 64 bits
        else:
            raise self.fail(path, f'expected a number, "NaN", "Infinity" or "-Infinity", got {_show(v)}')
        if x in (_INF, -_INF) and v not in ("Infinity", "-Infinity"):
            raise self.fail(path, f"{_show(v)} is out of range for {kind}")
        try:
            return (_pack_d(x) if kind == "double" else _pack_f(x)).decode("latin-1")
        except OverflowError:  # finite double beyond float32
            raise self.fail(path, f"{_show(v)} is out of range for {kind}") from None


_CAREFUL = _Careful()


def _careful_wire(descriptor: Descriptor, data: dict) -> bytes:
    try:
        return _CAREFUL.message(_plan(descriptor), data, None, 0).encode("latin-1")
    except RecursionError:  # only if the caller already used most of the Python stack
        raise JsonDecodeError("nested too deep for the Python stack") from None


# --------------------------------------------------------------------------------------
# Generated decoders: JSON dict -> wire bytes for the shapes real senders use.
# --------------------------------------------------------------------------------------

def _fast_int(v: Any) -> int:
    """Negative decimal string as int (the generated code handles the common cases inline)."""
    if v.__class__ is str and v[:1] == "-" and v[1:].encode().isdigit():
        return int(v)
    raise _Fallback


def _fast_base64(v: Any) -> str:
    x = _base64(v)
    if x is None:
        raise _Fallback
    return x


_FAST_HELPERS: dict[str, Any] = {
    "Fallback": _Fallback, "VS": _VARINT_SMALL, "A2B": _a2b_hex, "VARINT": _varint, "ZZ": _zigzag,
    "L1": _latin1, "B64": _fast_base64, "INT": _fast_int,
    "PQ": _pack_q, "PSQ": _pack_sq, "PI": _pack_i, "PSI": _pack_si, "PD": _pack_d, "PF": _pack_f,
}
_FIXED_PACK = {"fixed64": "PQ", "sfixed64": "PSQ", "fixed32": "PI", "sfixed32": "PSI",
               "double": "PD", "float": "PF"}


def _size(x: str) -> str:
    """Generated f-string part for the varint length prefix of string x: a list index below
    16384, which CPython specialises (faster than a dict with __missing__)."""
    return f"{{VS[m] if (m := len({x})) < 16384 else VARINT(m)}}"


def _lit(s: str) -> str:
    """s as the literal part of a generated f-string."""
    return "".join("{{" if c == "{" else "}}" if c == "}" else f"\\x{ord(c):02x}" for c in s)


def _fn_name(prefix: str, descriptor: Descriptor) -> str:
    return prefix + descriptor.full_name.replace(".", "_")


class _Source:
    """Lines of generated Python source."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def _gen_fast_decoder(plan: _Plan, src: _Source, consts: dict[str, Any]) -> None:
    """Source of ``d_<type>(d) -> str``: wire bytes of the message given as JSON dict d.

    The JSON keys are looked up by json_name and counted; any other key (snake_case, unknown,
    null value) makes the count differ from len(d), and the careful decoder takes over.
    """
    fields = plan.fields
    pure_oneof = len(fields) > 1 and all(f.oneof is not None and f.oneof == fields[0].oneof
                                         for f in fields)
    src.add(0, f"def {_fn_name('d_', plan.descriptor)}(d):")
    if pure_oneof:
        # AnyValue: exactly one member is expected; return as soon as it is found
        for f in fields:
            src.add(1, f"v = d.get({f.json_name!r})")
            src.add(1, "if v is not None:")
            src.add(2, "if len(d) != 1: raise Fallback")
            _gen_fast_field(f, src, 2, consts, "r")
            src.add(2, "return r")
        src.add(1, "if d.__class__ is not dict or d: raise Fallback")
        src.add(1, "return ''")
        src.add(0, "")
        return
    oneofs = sorted({f.oneof for f in fields if f.oneof is not None})
    src.add(1, "s = ''")
    src.add(1, "n = 0")
    for o in oneofs:
        src.add(1, f"o_{o} = 0")
    for f in fields:
        src.add(1, f"v = d.get({f.json_name!r})")
        src.add(1, "if v is not None:")
        src.add(2, "n += 1")
        if f.oneof is not None:
            src.add(2, f"o_{f.oneof} += 1")
        _gen_fast_field(f, src, 2, consts, "s")
    checks = ["n != len(d)"] + [f"o_{o} > 1" for o in oneofs]
    src.add(1, f"if {' or '.join(checks)}: raise Fallback")
    src.add(1, "return s")
    src.add(0, "")


def _gen_fast_field(f: _Field, src: _Source, ind: int, consts: dict[str, Any], out: str) -> None:
    """Code adding field f's tag and value (JSON value in `v`) to `out` ('r' is assigned instead)."""
    op = "=" if out == "r" else "+="
    tag = _lit(f.tag)
    if not f.repeated:
        _gen_fast_single(f, "v", src, ind, consts, out, op)
        return
    src.add(ind, "if v.__class__ is not list: raise Fallback")
    if f.packed:
        src.add(ind, "p = ''")
        src.add(ind, "for e in v:")
        src.add(ind + 1, f"p += {_gen_fast_scalar(f, 'e', src, ind + 1, consts)}")
        src.add(ind, f'{out} {op} f"{tag}{_size("p")}{{p}}"')
        return
    src.add(ind, "for e in v:")
    if f.message is not None and f.message.full_name == _KEY_VALUE:
        _gen_fast_key_values(f, src, ind + 1)
    else:
        _gen_fast_single(f, "e", src, ind + 1, consts, out, "+=")


def _gen_fast_key_values(f: _Field, src: _Source, ind: int) -> None:
    """Loop body for one element `e` of an attributes list: KeyValue and the string and
    non-negative int AnyValues inlined, since this is most of the work in every OTLP request."""
    kv = _plan(f.message)
    anyvalue = _plan(kv.by_key["value"].message)
    names = ((kv, "key"), (kv, "value"), (anyvalue, "string_value"), (anyvalue, "int_value"))
    key_tag, value_tag, string_tag, int_tag = (_lit(p.by_key[n].tag) for p, n in names)
    src.add(ind, "k = e['key']")
    src.add(ind, "x = e['value']")
    src.add(ind, "if len(e) != 2: raise Fallback")
    src.add(ind, "if not k.isascii(): k = L1(k)")
    src.add(ind, f"y = x.get({anyvalue.by_key['string_value'].json_name!r})")
    src.add(ind, "if y is not None and len(x) == 1:")
    src.add(ind + 1, "if not y.isascii(): y = L1(y)")
    src.add(ind + 1, f'x = f"{string_tag}{_size("y")}{{y}}"')
    src.add(ind, "else:")
    src.add(ind + 1, f"y = x.get({anyvalue.by_key['int_value'].json_name!r})")
    src.add(ind + 1, "if y is not None and len(x) == 1 and y.__class__ is str and y.encode().isdigit() "
                     f"and (y := int(y)) <= {_MAX_I64}:")
    src.add(ind + 2, f'x = f"{int_tag}{{VS[y] if y < 16384 else VARINT(y)}}"')
    src.add(ind + 1, "else:")
    src.add(ind + 2, f"x = {_fn_name('d_', anyvalue.descriptor)}(x)")
    # k is the key, x the AnyValue body; when both are short every length is one byte
    src.add(ind, "if (m := len(k) + len(x)) < 120:")
    src.add(ind + 1, f's += f"{_lit(f.tag)}{{VS[m + 4]}}{key_tag}{{VS[len(k)]}}{{k}}{value_tag}{{VS[len(x)]}}{{x}}"')
    src.add(ind, "else:")
    src.add(ind + 1, f'x = f"{key_tag}{_size("k")}{{k}}{value_tag}{_size("x")}{{x}}"')
    src.add(ind + 1, f's += f"{_lit(f.tag)}{_size("x")}{{x}}"')


def _gen_fast_single(f: _Field, v: str, src: _Source, ind: int, consts: dict[str, Any],
                     out: str, op: str) -> None:
    tag = _lit(f.tag)
    if f.kind == "message":
        src.add(ind, f"x = {_fn_name('d_', f.message)}({v})")
    elif f.kind == "string":
        src.add(ind, f"x = {v} if {v}.isascii() else L1({v})")
    elif f.kind == "hexid":
        # malformed ids raise here; the careful decoder then reports them with their path
        src.add(ind, f"x = A2B({v}).decode('latin-1')")
    elif f.kind == "bytes":
        src.add(ind, f"x = B64({v})")
    else:
        src.add(ind, f'{out} {op} f"{tag}{{{_gen_fast_scalar(f, v, src, ind, consts)}}}"')
        return
    src.add(ind, f'{out} {op} f"{tag}{_size("x")}{{x}}"')


def _gen_fast_scalar(f: _Field, v: str, src: _Source, ind: int, consts: dict[str, Any]) -> str:
    """Checks and conversions of the number, bool or enum in `v`; returns the expression of its
    wire value (without tag)."""
    kind = f.kind
    if kind == "bool":
        src.add(ind, f"if {v} is not True and {v} is not False: raise Fallback")
        return f"chr({v})"  # True -> "\x01", False -> "\x00"
    if kind == "enum":
        # known numbers and names map straight to their varint; bool hashes like 0/1, so exclude it
        table = f"E_{f.enum_type.full_name.replace('.', '_')}"
        consts[table] = {**{n: _varint(n) for n in f.enum_numbers.values()},
                         **{name: _varint(n) for name, n in f.enum_numbers.items()}}
        src.add(ind, f"x = {table}.get({v}) if {v}.__class__ is not bool else None")
        src.add(ind, "if x is None: raise Fallback")
        return "x"
    if kind in ("double", "float"):
        src.add(ind, f"if {v}.__class__ is not float and {v}.__class__ is not int: raise Fallback")
        return f"{_FIXED_PACK[kind]}({v}).decode('latin-1')"  # OverflowError when out of range
    # bytes.isdigit accepts ASCII digits only, and is faster than str.isdigit and str.isascii
    src.add(ind, f"if {v}.__class__ is not int: {v} = int({v}) if {v}.__class__ is str and "
                 f"{v}.encode().isdigit() else INT({v})")
    if kind in _FIXED_PACK:
        return f"{_FIXED_PACK[kind]}({v}).decode('latin-1')"  # struct.error when out of range
    _, low, high = _INT_KINDS[kind]
    src.add(ind, f"if {v} < {low} or {v} > {high}: raise Fallback")
    if kind in ("sint32", "sint64"):
        return f"VARINT(ZZ({v}))"
    return f"VS[{v}] if 0 <= {v} < 16384 else VARINT({v})"


# --------------------------------------------------------------------------------------
# Generated readers: wire bytes -> JSON-ready dict.
# --------------------------------------------------------------------------------------

def _read_varint(b: bytes, i: int) -> tuple[int, int]:
    """(value, index after it) of the varint at b[i]; unrolled for the common lengths."""
    x = b[i]
    if x < 0x80:
        return x, i + 1
    r = x & 0x7F
    x = b[i + 1]
    if x < 0x80:
        return r | x << 7, i + 2
    r |= (x & 0x7F) << 7
    x = b[i + 2]
    if x < 0x80:
        return r | x << 14, i + 3
    r |= (x & 0x7F) << 14
    x = b[i + 3]
    if x < 0x80:
        return r | x << 21, i + 4
    r |= (x & 0x7F) << 21
    shift = 28
    i += 4
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << shift
        if x < 0x80:
            return r, i
        shift += 7


def _skip(b: bytes, i: int, tag: int) -> int:
    """Index after the value of an unknown field whose tag ended at b[i]."""
    wire = tag & 7
    if wire == 0:
        return _read_varint(b, i)[1]
    if wire == 1:
        return i + 8
    if wire == 5:
        return i + 4
    if wire == 2:
        n, i = _read_varint(b, i)
        return i + n
    if wire == 3:  # group: skip fields up to the matching end-group tag
        while True:
            inner, i = _read_varint(b, i)
            if inner & 7 == 4:
                return i
            i = _skip(b, i, inner)
    raise ValueError(f"unexpected wire type {wire}")


def _non_finite(x: float) -> str:
    return "NaN" if math.isnan(x) else "Infinity" if x > 0 else "-Infinity"


def _b64encode(b: bytes) -> str:
    return binascii.b2a_base64(b, newline=False).decode("ascii")


def _unpack_all(fmt: str, b: bytes, i: int, n: int) -> tuple[Any, ...]:
    return struct.unpack_from(f"<{n // struct.calcsize(fmt)}{fmt}", b, i)


_READ_HELPERS: dict[str, Any] = {
    "RV": _read_varint, "SKIP": _skip, "NF": _non_finite, "B64E": _b64encode, "UNPACK": _unpack_all,
    "UQ": _unpack_q, "USQ": _unpack_sq, "UI": _unpack_i, "USI": _unpack_si,
    "UD": _unpack_d, "UF": _unpack_f,
}
_FIXED_FORMAT = {"fixed64": "Q", "sfixed64": "q", "double": "d", "fixed32": "I", "sfixed32": "i", "float": "f"}
_FIXED_READ = {"fixed64": "UQ", "sfixed64": "USQ", "double": "UD", "fixed32": "UI", "sfixed32": "USI",
               "float": "UF"}


def _varint_to_json(kind: str, x: str) -> str:
    """Expression turning the raw varint `x` of a field of this kind into its JSON value."""
    if kind in ("sint32", "sint64"):
        x = f"(({x} >> 1) ^ -({x} & 1))"
    elif kind in ("int32", "int64", "enum"):
        x = f"({x} - 18446744073709551616 if {x} > 9223372036854775807 else {x})"
    if kind == "bool":
        return f"{x} != 0"
    return f"str({x})" if kind in _64BIT else x


def _gen_reader(plan: _Plan, src: _Source) -> None:
    """Source of ``r_<type>(b, i, end) -> dict`` reading the wire message at b[i:end].

    upb writes known fields in field-number order and each repeated field as one run, so the
    tag tests follow field numbers and repeated message fields are read a run at a time.
    """
    src.add(0, f"def {_fn_name('r_', plan.descriptor)}(b, i, end):")
    src.add(1, "d = {}")
    src.add(1, "while i < end:")
    src.add(2, "t = b[i]")
    src.add(2, "i += 1")
    src.add(2, "if t > 127: t, i = RV(b, i - 1)")
    first = True
    for f in plan.fields:
        for tag, packed in _reader_tags(f):
            src.add(2, f"{'if' if first else 'elif'} t == {tag}:")
            first = False
            _gen_read_field(f, tag, packed, src, 3)
    if first:
        src.add(2, "i = SKIP(b, i, t)")
    else:
        src.add(2, "else:")
        src.add(3, "i = SKIP(b, i, t)")
    src.add(1, "return d")
    src.add(0, "")


def _reader_tags(f: _Field) -> list[tuple[int, bool]]:
    """Tags (as ints) that carry field f, and whether each is the packed form."""
    one = f.number << 3 | (_INT_KINDS[f.kind][0] if f.kind in _INT_KINDS else _WIRE_TYPE[f.kind])
    return [(f.number << 3 | 2, True), (one, False)] if f.packed else [(one, False)]


def _gen_read_len(src: _Source, ind: int) -> None:
    src.add(ind, "n = b[i]")
    src.add(ind, "i += 1")
    src.add(ind, "if n > 127: n, i = RV(b, i - 1)")


def _gen_read_field(f: _Field, tag: int, packed: bool, src: _Source, ind: int) -> None:
    key = repr(f.json_name)
    kind = f.kind
    if packed:
        _gen_read_len(src, ind)
        if kind in _FIXED_FORMAT:
            expr = f"UNPACK({_FIXED_FORMAT[kind]!r}, b, i, n)"
            if kind in _64BIT:
                expr = f"map(str, {expr})"
            elif kind in ("double", "float"):
                expr = f"[NF(x) if x - x else x for x in {expr}]"
            src.add(ind, f"d.setdefault({key}, []).extend({expr})")
            src.add(ind, "i += n")
        else:
            src.add(ind, f"a = d.setdefault({key}, [])")
            src.add(ind, "e = i + n")
            src.add(ind, "while i < e:")
            src.add(ind + 1, "x = b[i]")
            src.add(ind + 1, "i += 1")
            src.add(ind + 1, "if x > 127: x, i = RV(b, i - 1)")
            src.add(ind + 1, f"a.append({_varint_to_json(kind, 'x')})")
        return
    if kind == "message" and f.repeated and tag < 128:
        _gen_read_message_run(f, tag, src, ind)
        return
    if f.repeated:
        src.add(ind, f"a = d.setdefault({key}, [])")
        store = "a.append({})"
    else:
        store = f"d[{key}] = {{}}"
    if kind in _FIXED_FORMAT:
        src.add(ind, f"x = {_FIXED_READ[kind]}(b, i)[0]")
        src.add(ind, f"i += {struct.calcsize(_FIXED_FORMAT[kind])}")
        if kind in ("double", "float"):
            src.add(ind, "if x - x: x = NF(x)")
        src.add(ind, store.format("str(x)" if kind in _64BIT else "x"))
    elif kind in _INT_KINDS or kind == "bool":
        src.add(ind, "x = b[i]")
        src.add(ind, "i += 1")
        src.add(ind, "if x > 127: x, i = RV(b, i - 1)")
        src.add(ind, store.format(_varint_to_json(kind, "x")))
    else:
        _gen_read_len(src, ind)
        if kind == "message":
            src.add(ind, store.format(f"{_fn_name('r_', f.message)}(b, i, i + n)"))
        elif kind == "string":
            src.add(ind, store.format("b[i:i + n].decode()"))
        elif kind == "hexid":
            src.add(ind, store.format("b[i:i + n].hex()"))
        else:
            src.add(ind, store.format("B64E(b[i:i + n])"))
        src.add(ind, "i += n")


def _gen_read_message_run(f: _Field, tag: int, src: _Source, ind: int) -> None:
    """Reads consecutive elements of a repeated message field (one-byte tag) in one loop."""
    key = repr(f.json_name)
    src.add(ind, f"a = d.get({key})")
    src.add(ind, f"if a is None: a = d[{key}] = []")
    src.add(ind, "while True:")
    _gen_read_len(src, ind + 1)
    src.add(ind + 1, "e = i + n")
    if f.message.full_name == _KEY_VALUE:
        _gen_read_key_value(f, src, ind + 1)
    else:
        src.add(ind + 1, f"a.append({_fn_name('r_', f.message)}(b, i, e))")
    src.add(ind + 1, "i = e")
    src.add(ind + 1, f"if i >= end or b[i] != {tag}: break")
    src.add(ind + 1, "i += 1")


def _gen_read_key_value(f: _Field, src: _Source, ind: int) -> None:
    """Reads the KeyValue at b[i:e] into list `a`: the usual shapes -- key, then value holding a
    short string or an int -- are matched inline, anything else goes to the generated readers."""
    kv = _plan(f.message)
    anyvalue = _plan(kv.by_key["value"].message)
    names = ((kv, "key"), (kv, "value"), (anyvalue, "string_value"), (anyvalue, "int_value"))
    key_tag, value_tag, string_tag, int_tag = (ord(p.by_key[n].tag) for p, n in names)
    key, value, string, int_ = (p.by_key[n].json_name for p, n in names)
    # b[i + 1] is the key length, b[j + 1] the value length, b[j + 3] the string length; a
    # length of 128 or more takes several bytes and can never pass the `== e` tests
    src.add(ind, f"if n > 3 and b[i] == {key_tag} and (j := i + 2 + b[i + 1]) + 2 <= e "
                 f"and b[i + 1] < 128 and b[j] == {value_tag} and j + 2 + b[j + 1] == e:")
    src.add(ind + 1, f"if b[j + 1] > 1 and b[j + 2] == {string_tag} and j + 4 + b[j + 3] == e:")
    src.add(ind + 2, f"a.append({{{key!r}: b[i + 2:j].decode(), {value!r}: {{{string!r}: b[j + 4:e].decode()}}}})")
    src.add(ind + 1, f"elif b[j + 1] > 1 and b[j + 2] == {int_tag} and (x := RV(b, j + 3))[1] == e:")
    src.add(ind + 2, f"a.append({{{key!r}: b[i + 2:j].decode(), "
                     f"{value!r}: {{{int_!r}: {_varint_to_json('int64', 'x[0]')}}}}})")
    src.add(ind + 1, "else:")
    src.add(ind + 2, f"a.append({{{key!r}: b[i + 2:j].decode(), "
                     f"{value!r}: {_fn_name('r_', anyvalue.descriptor)}(b, j + 2, e)}})")
    src.add(ind, "else:")
    src.add(ind + 1, f"a.append({_fn_name('r_', kv.descriptor)}(b, i, e))")


# --------------------------------------------------------------------------------------
# Code generation driver
# --------------------------------------------------------------------------------------

_GENERATED: dict[str, Any] = {**_FAST_HELPERS, **_READ_HELPERS}
_GENERATE_LOCK = threading.Lock()


def _reachable(descriptor: Descriptor) -> list[Descriptor]:
    seen: dict[str, Descriptor] = {}
    todo = [descriptor]
    while todo:
        d = todo.pop()
        if d.full_name not in seen:
            seen[d.full_name] = d
            todo.extend(fd.message_type for fd in d.fields if fd.message_type is not None)
    return list(seen.values())


def _functions(descriptor: Descriptor) -> tuple[Callable[[Any], str], Callable[[bytes, int, int], dict]]:
    """The generated decoder and reader of a message type, generating them on first use."""
    name = _fn_name("d_", descriptor)
    if name not in _GENERATED:
        with _GENERATE_LOCK:
            missing = [d for d in _reachable(descriptor) if _fn_name("d_", d) not in _GENERATED]
            src = _Source()
            consts: dict[str, Any] = {}
            for d in missing:
                _gen_fast_decoder(_plan(d), src, consts)
                _gen_reader(_plan(d), src)
            code = compile("\n".join(src.lines), f"<otlp_json: {descriptor.full_name}>", "exec")
            _GENERATED.update(consts)
            # all generated functions share one namespace, so they can call each other
            exec(code, _GENERATED)
    return _GENERATED[name], _GENERATED[_fn_name("r_", descriptor)]


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------

def decode(request_type: type[Message], body: bytes | str) -> Message:
    """Decode OTLP JSON (bytes or str) into a new `request_type` message.

    Raises JsonDecodeError naming the path and the problem, ids that are not hex included;
    valid hex ids of the wrong length are kept for the receiver to reject (see the module
    docstring)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise JsonDecodeError(f"invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise JsonDecodeError(f"expected a JSON object at the top level, got {_show(data)}")
    descriptor = request_type.DESCRIPTOR
    decoder, _ = _functions(descriptor)
    try:
        wire = decoder(data).encode("latin-1")
    except Exception:  # anything unusual or wrong: let the careful decoder handle or report it
        wire = _careful_wire(descriptor, data)
    try:
        return request_type.FromString(wire)
    except DecodeError:
        # only nesting beyond upb's limit makes our wire bytes unparsable; name the place
        _careful_wire(descriptor, data)
        raise JsonDecodeError(f"protobuf could not build {descriptor.name} from this JSON") from None


def to_dict(message: Message) -> dict:
    """The OTLP JSON form of `message` as a dict of JSON-ready values (what encode() writes)."""
    data = message.SerializeToString()
    _, reader = _functions(message.DESCRIPTOR)
    return reader(data, 0, len(data))


def encode(message: Message) -> bytes:
    """`message` as compact OTLP JSON (UTF-8 bytes)."""
    return orjson.dumps(to_dict(message))
