"""The core's GenAI value model (native/src/genai/value.rs) against the Python it ports.

The view's values and their JSON must be what the Python reference makes of them, exactly:

* `_genai_parse_dump(text)` is `orjson.dumps(orjson.loads(text))`, or None where either raises:
  for JSON texts written by json.dumps and orjson.dumps (big ints, every float including
  subnormals, all of Unicode with surrogate pairs and lone surrogates escaped, control
  characters), those texts damaged (truncated, whitespace inserted, characters replaced or
  dropped, bytes flipped), number literals, nesting around orjson's limits (1024 to read, 254
  to write) and a list of edge cases;
* `_genai_plain_json(text)` is `orjson.dumps(_plain(orjson.loads(text)))` (ints past i64,
  nesting past _MAX_DEPTH);
* `_genai_any_value_json(wire)` is `orjson.dumps(_plain(value_of(AnyValue.FromString(wire))))`
  (ValueError where upb fails the bytes): nested arrays and kvlists with repeated keys, bytes,
  int64 extremes, doubles with NaN and ±Infinity, unset values, occurrences that upb merges,
  nesting around upb's depth limit, damaged bytes;
* `_genai_content_json(wire)` is `orjson.dumps(_content(value_of(...)))`, None where `_content`
  gives None: JSON texts valid and not, nested deeper than _MAX_DEPTH, behind Unicode
  whitespace that `str.lstrip` strips (U+3000, U+001C) or does not (U+200B); non-strings;
* `_genai_stringified(wire)` is trace_json's `_stringified(value_of(...))`.
"""

from __future__ import annotations

import json
import random
import struct

import orjson
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from otlp_router import _native
from otlp_router.destinations.formats.trace_json import _stringified
from otlp_router.model import genai
from otlp_router.model.attributes import value_of

MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# orjson.loads / orjson.dumps
# ---------------------------------------------------------------------------------------------

def tally(what: str) -> None:
    """Counted by --hypothesis-show-statistics: how the examples split."""
    if currently_in_test_context():
        event(what)


def reference_dump(text: str) -> bytes | None:
    try:
        return orjson.dumps(orjson.loads(text))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None


def check_text(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        # a str holding lone surrogates reaches no core function; orjson refuses it too
        assert reference_dump(text) is None
        tally("lone surrogate in the str")
        return
    want = reference_dump(text)
    tally("orjson refuses" if want is None else "orjson reads")
    assert _native._genai_parse_dump(text) == want, text


BIG_INTS = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30), 0])
FLOATS = st.floats() | st.floats(max_value=2.3e-308, min_value=-2.3e-308) | st.sampled_from(
    [1e16, 1e15, 1e-5, 1e-6, 1e-7, 0.0001, 5e-324, -0.0, 2.0**64, 1.7976931348623157e308, 562949953421312.25,
     2.0**-24, 9007199254740993.0, 0.1, 1e22, 1e21])
TEXTS = st.text() | st.text(st.characters(max_codepoint=0x7f)) | st.sampled_from(
    ["\ud83d\ude00", "\ud800", "\udc00", "\x7f", "\u2028\u2029", "\x00\x1f\b\f", "\ufeff", "é😀"])
KEYS = st.sampled_from(["a", "b", "", "é", "\x00"]) | st.text(max_size=4)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | BIG_INTS | FLOATS | TEXTS,
    lambda inner: st.lists(inner, max_size=5) | st.lists(st.tuples(KEYS, inner), max_size=5),
    max_leaves=25,
)


def as_json(v: object) -> object:
    """Lists of pairs are objects (written with their repeated keys)."""
    if isinstance(v, list) and v and all(isinstance(x, tuple) for x in v):
        return _Pairs([(k, as_json(x)) for k, x in v])
    if isinstance(v, list):
        return [as_json(x) for x in v]
    return v


class _Pairs(dict):
    """A dict json.dumps writes with its repeated keys (it iterates items())."""

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__(pairs)
        self._pairs = pairs

    def items(self):  # type: ignore[override]
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __bool__(self) -> bool:
        return bool(self._pairs)


def texts_of(v: object, style: int) -> str:
    doc = as_json(v)
    if style == 0:
        try:
            return orjson.dumps(doc).decode()
        except orjson.JSONEncodeError:
            style = 1
    if style == 1:
        return json.dumps(doc)
    if style == 2:
        return json.dumps(doc, ensure_ascii=False)
    return json.dumps(doc, indent=1, separators=(" ,", " : "))


@MANY
@given(json_values, st.integers(0, 3))
@example([2**64 - 1, 2**64, -(2**63) - 1], 1)
@example({"a": 1, "b": 2}, 3)
def test_loads_then_dumps_is_orjsons_for_written_json(v: object, style: int) -> None:
    check_text(texts_of(v, style))


WHITESPACE = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u3000", "\u2028", "\ufeff"]
SIGNIFICANT = list('{}[]",:\\/0123456789.eE+-tfnulsaru ') + ["\\u", "\\ud800", "\\udc00", "1e400", "\x00", "\x1f"]


@MANY
@given(json_values, st.integers(0, 3), st.data())
def test_loads_then_dumps_is_orjsons_for_damaged_json(v: object, style: int, data: st.DataObject) -> None:
    text = texts_of(v, style)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        how = data.draw(st.integers(0, 4))
        if how == 0:
            text = text[:at]
        elif how == 1:
            text = text[:at] + data.draw(st.sampled_from(WHITESPACE)) + text[at:]
        elif how == 2:
            text = text[:at] + data.draw(st.sampled_from(SIGNIFICANT)) + text[at + 1:]
        elif how == 3:
            text = text[:at] + text[at + 1:]
        else:
            raw = bytearray(text.encode("utf-8", "surrogatepass"))
            if raw:
                i = data.draw(st.integers(0, len(raw) - 1))
                raw[i] ^= 1 << data.draw(st.integers(0, 7))
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                with pytest.raises(orjson.JSONDecodeError):
                    orjson.loads(bytes(raw))
                return
    check_text(text)


NUMBER = r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?"


@MANY
@given(st.from_regex(NUMBER, fullmatch=True) | st.from_regex(r"-?[0-9]{0,3}\.?[0-9]{0,3}[eE]?[+-]?[0-9]{0,4}",
                                                             fullmatch=True)
       | FLOATS.map(repr) | st.integers().map(str))
@example("2.2250738585072011e-308")
@example("1" * 400)
@example("0." + "0" * 400 + "1e400")
def test_numbers_read_and_write_as_orjson_does(text: str) -> None:
    check_text(text)
    check_text(f"[{text}]")


EDGE_CASES = [
    "", " ", "\t\n\r ", "\x0b1", "1\x0c", "\ufeff[]", "\u3000[]", "[]\u3000", "[]\x00", "\x00",
    "-0", "-0.0", "0e0", "-0e-0", "1E+2", "1e", "1.", ".5", "+1", "-", "01", "-01", "00", "1.e1", "1e+", "0x10",
    "1e400", "-1e400", "1e-400", "4.9e-324", "2e-324", "2.4703282292062328e-324", "1.7976931348623157e308",
    "1.7976931348623158e308", "1.7976931348623159e308", "18446744073709551615", "18446744073709551616",
    "-9223372036854775808", "-9223372036854775809", "9223372036854775808", "123456789012345678901234567890",
    "NaN", "-NaN", "Infinity", "-Infinity", "nan", "inf", "true", "false", "null", "tru", "nul", "True", "nulll",
    '"\\ud83d\\ude00"', '"\\ud800"', '"\\udc00"', '"\\udc00\\ud800"', '"\\ud800\\u0041"', '"\\ud800\\ud800"',
    '"\\ud800x"', '"\\u00"', '"\\u00zz"', '"\\U0041"', '"\\x41"', '"\\\'"', '"\\a"', '"\\/"', '"\\u0000"',
    '"\x7f"', '"\x1f"', '"\x00"', '"\t"', '"\u2028\u2029"', '"\ud7ff\ue000\uffff"', '"abc', '"\\"', '"\\',
    "[1,]", "[,1]", "[1 2]", "[", "]", "[]]", "[[]", "{}", "{", '{"a"}', '{"a":}', '{"a" 1}', '{1:2}', "{'a':1}",
    '{"a":1,}', '{"a":1,,"b":2}', '{"a":1 "b":2}', '{"a":1,"b":2,"a":3}', '{"a":{"x":1},"a":[2]}',
    '{"":1,"":2}', '[1]x', "[1] ", " [ 1 , { \"a\" : [ ] } ] ", "1 2", "[] []", "//c\n1", "/*c*/1",
    "[1.0, 1e16, 1e15, 1e-5, 1e-6, 1e-7, 100.0, 0.1, 5e-324, -0.0, 1e22]", "[1.0, 1e16, 2e308]", "2e308",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases(text: str) -> None:
    check_text(text)


def nested(n: int, inner: str = "", kinds: str = "[") -> str:
    opens, closes = [], []
    for i in range(n):
        if kinds[i % len(kinds)] == "[":
            opens.append("[")
            closes.append("]")
        else:
            opens.append('{"k":')
            closes.append("}")
    if inner == "" and kinds[(n - 1) % len(kinds)] == "{":
        inner = "1"   # an object level needs a value
    return "".join(opens) + inner + "".join(reversed(closes))


@pytest.mark.parametrize("n", [1, 200, 201, 253, 254, 255, 256, 1023, 1024, 1025, 1100])
@pytest.mark.parametrize("inner,kinds", [("", "["), ("1", "["), ("{}", "["), ('"s"', "{"), ("[]", "[{")])
def test_nesting_around_orjsons_limits(n: int, inner: str, kinds: str) -> None:
    check_text(nested(n, inner, kinds))
    check_text("[" + nested(n, inner, kinds) + ",1]")


def check_plain(text: str) -> None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        assert _native._genai_plain_json(text) is None
        return
    assert _native._genai_plain_json(text) == orjson.dumps(genai._plain(value))


@MANY
@given(json_values, st.integers(0, 3))
@example([2**63 - 1, 2**63, 2**64 - 1, -(2**63), 18446744073709551616, -(2**63) - 1], 1)
def test_plain_of_parsed_json_is_plains(v: object, style: int) -> None:
    text = texts_of(v, style)
    try:
        text.encode()
    except UnicodeEncodeError:
        return
    check_plain(text)


@pytest.mark.parametrize("n", [1, 199, 200, 201, 202, 254, 255, 1024])
@pytest.mark.parametrize("inner,kinds", [("", "["), ("1", "["), ('"s"', "{"), ("{}", "[{"), ("[]", "{["),
                                         ("18446744073709551615", "[")])
def test_plain_ends_structured_values_at_max_depth(n: int, inner: str, kinds: str) -> None:
    check_plain(nested(n, inner, kinds))
    check_plain("[1," + nested(n, inner, kinds) + "]")


# ---------------------------------------------------------------------------------------------
# value_of / _plain, _content and _stringified
# ---------------------------------------------------------------------------------------------

UNICODE = st.text(st.characters(exclude_categories=("Cs",)))   # what a protobuf string holds
INT64 = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([-(2**63), 2**63 - 1, -1, 0, 1, 2**31, -(2**31) - 1])


def _any(**kw: object) -> AnyValue:
    return AnyValue(**kw)


scalar_values = st.one_of(
    UNICODE.map(lambda s: _any(string_value=s)),
    st.booleans().map(lambda b: _any(bool_value=b)),
    INT64.map(lambda i: _any(int_value=i)),
    (st.floats() | st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e16, 1e-7])).map(
        lambda x: _any(double_value=x)),
    st.binary(max_size=12).map(lambda b: _any(bytes_value=b)),
    st.integers(-(2**31), 2**31 - 1).map(lambda i: _any(string_value_strindex=i)),
    st.just(AnyValue()),
)

KV_KEYS = st.sampled_from(["a", "b", "", "a.b", "é"]) | UNICODE


def _array(values: list[AnyValue]) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=values))


def _kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in pairs]))


any_values = st.recursive(
    scalar_values,
    lambda inner: (st.lists(inner, max_size=4).map(_array)
                   | st.lists(st.tuples(KV_KEYS, inner), max_size=5).map(_kvlist)),
    max_leaves=20,
)


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, body: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(body)) + body


@st.composite
def any_wires(draw: st.DrawFn) -> bytes:
    """An AnyValue's bytes, some as no serialiser writes them: occurrences upb merges (the value
    messages concatenated), KeyValues whose value occurs more than once, unknown fields."""
    parts = [draw(any_values).SerializeToString() for _ in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):
        # one kvlist entry whose key and value occur more than once (upb merges the values)
        kv = b"".join(KeyValue(key=draw(KV_KEYS), value=draw(any_values)).SerializeToString()
                      for _ in range(draw(st.integers(1, 3))))
        parts.append(field(6, field(1, kv)))
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from([b"\x48\x05", b"\x52\x01x", b"\x5d\x00\x00\x00\x00", b"\x4b\x4c",
                                           b"\x08\x01", b"\x1a\x01\x05", b"\x25\x00\x00\x80\x3f"])))
    draw(st.randoms(use_true_random=False)).shuffle(parts)
    return b"".join(parts)


def parsed(wire: bytes) -> object:
    return value_of(AnyValue.FromString(wire))


@MANY
@given(any_wires())
@example(_array([_any(int_value=2**63 - 1), _any(int_value=-(2**63)), AnyValue()]).SerializeToString())
@example(_kvlist([("a", _any(int_value=1)), ("b", _any(bytes_value=b"\x00\xff")), ("a", _any(int_value=3))])
         .SerializeToString())
def test_any_values_read_as_value_of_and_plain_make_them(wire: bytes) -> None:
    assert _native._genai_any_value_json(wire) == orjson.dumps(genai._plain(parsed(wire)))


def deep_array(n: int, leaf: bytes) -> bytes:
    b = leaf
    for _ in range(n):
        b = field(5, field(1, b))
    return b


def deep_kvlist(n: int, leaf: bytes) -> bytes:
    b = leaf
    for _ in range(n):
        b = field(6, field(1, field(1, b"k") + field(2, b)))
    return b


GROUPS = {k: b"\x4b" * k + b"\x4c" * k for k in range(4)}


@pytest.mark.parametrize("n", [30, 32, 33, 34, 47, 48, 49, 50, 51])
@pytest.mark.parametrize("leaf", [b"", b"\x18\x01", b"\x2a\x00", b"\x32\x00", b"\x32\x02\x0a\x00",
                                  b"\x32\x04\x12\x02\x0a\x00", *GROUPS.values(), b"\x4b\x53\x5c\x4c",
                                  b"\x4b\x00\x00\x4c"])
def test_nesting_around_upbs_depth_limit(n: int, leaf: bytes) -> None:
    for wire in (deep_array(n, leaf), deep_kvlist(n * 2 // 3, leaf)):
        check_wire(wire)


def check_wire(wire: bytes) -> None:
    try:
        want = orjson.dumps(genai._plain(parsed(wire)))
    except Exception:   # upb's DecodeError
        tally("upb fails")
        with pytest.raises(ValueError):
            _native._genai_any_value_json(wire)
        return
    tally("upb parses")
    assert _native._genai_any_value_json(wire) == want


@MANY
@given(any_wires(), st.data())
def test_damaged_any_value_bytes_fail_where_upb_fails_them(wire: bytes, data: st.DataObject) -> None:
    raw = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 3))):
        how = data.draw(st.integers(0, 3))
        at = data.draw(st.integers(0, len(raw)))
        if how == 0:
            del raw[at:]
        elif how == 1 and at < len(raw):
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif how == 2:
            raw[at:at] = data.draw(st.sampled_from([b"\x00", b"\x80", b"\xff", b"\x0b", b"\x0c", b"\x4c", b"\x0e",
                                                    b"\x80\x80\x80\x80\x80\x00", b"\xff" * 11]))
        elif at < len(raw):
            raw[at] = data.draw(st.integers(0, 255))
    check_wire(bytes(raw))


WIRE_CASES = [
    b"", b"\x0a\x01\xff", b"\x0a\x01\xff\x0a\x01a", b"\x00\x00", b"\x02\x00", b"\x08\x05", b"\x1a\x01\x05",
    b"\x18\x07\x08\x05", b"\x10\x02", b"\x18" + b"\xff" * 9 + b"\x01", b"\x18" + b"\xff" * 10 + b"\x01",
    b"\x40" + b"\xff" * 9 + b"\x01", b"\x40\x85\x80\x80\x80\x10", b"\x2a\x02\x0a\x02\x2a\x02\x18\x01",
    b"\x2a\x04\x0a\x02\x18\x01\x2a\x04\x0a\x02\x18\x02", b"\x2a\x04\x0a\x02\x18\x01\x0a\x01a\x2a\x04\x0a\x02\x18\x02",
    b"\x32\x05\x0a\x03\x0a\x01\xff", b"\x0b\x0c", b"\x0c", b"\x0e", b"\x21\x00\x00", b"\x25\x00\x00\x80\x3f",
    b"\xf8\xff\xff\xff\x0f\x01", b"\x80\x80\x80\x80\x10\x01", b"\x98\x80\x80\x80\x80\x00\x01",
    b"\x98\x80\x80\x80\x00\x01", b"\x98\x80\x80\x80\x70\x01", b"\x0a\x81\x80\x80\x80\x00a",
    b"\x0a\x81\x80\x80\x80\x80\x00a", b"\x0a\x81\x80\x80\x80\x10a", b"\x4b\x53\x54\x4c", b"\x4b\x54",
    b"\x4b\x4c\x4c", b"\x4b\x80\x80\x80\x80\x10\x01\x4c", b"\x4b\x0a\x81\x80\x80\x80\x80\x00a\x4c",
    b"\x4b\x08" + b"\xff" * 10 + b"\x01\x4c", b"\x32\x06\x0a\x04\x12\x02\x18\x01\x32\x06\x0a\x04\x12\x02\x18\x02",
    field(6, field(1, field(2, b"\x18\x01") + field(1, b"k") + field(2, b"\x10\x01"))),
    field(6, field(1, field(2, field(5, field(1, b"\x18\x01"))) + field(2, field(5, field(1, b"\x18\x02"))))),
    b"\x21" + struct.pack("<d", float("nan")), b"\x21" + struct.pack("<d", -0.0),
]


@pytest.mark.parametrize("wire", WIRE_CASES)
def test_wire_edge_cases(wire: bytes) -> None:
    check_wire(wire)
    try:
        value = parsed(wire)
    except Exception:
        return
    check_content(wire)
    assert _native._genai_stringified(wire) == _stringified(value)


LEADING = st.just("") | st.sampled_from([" ", "\t\n", " \r\n "]) | st.sampled_from(
    ["\u3000", "\x1c", "\x1f", "\x85", "\xa0", "\u2028", "\u200b", "\ufeff", " \u3000 ", "\x0b", "\x0c"])


@st.composite
def json_strings(draw: st.DrawFn) -> str:
    """Texts _content looks at: JSON (valid, damaged, deep) behind whitespace of any kind."""
    how = draw(st.integers(0, 4))
    if how == 0:
        body = texts_of(draw(json_values), draw(st.integers(0, 3)))
    elif how == 1:
        body = texts_of(draw(json_values), 0)
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from(SIGNIFICANT + WHITESPACE)) + body[at + 1:]
    elif how == 2:
        n = draw(st.sampled_from([150, 199, 200, 201, 202, 254, 255, 300, 1024, 1025]))
        body = nested(n, draw(st.sampled_from(["", "1", '"x"', "{}"])), draw(st.sampled_from(["[", "{", "[{"])))
        if draw(st.booleans()):
            body = body + " " * draw(st.integers(0, 300))   # longer than 2 * _MAX_DEPTH, no deeper
    elif how == 3:
        body = draw(st.sampled_from(['"quoted"', '"\\ud800"', "{}", "[]", '"', "[", "{x", "plain", "1", "null",
                                     '"\\u00e9"', "[1e400]", "[18446744073709551616]"]))
    else:
        body = draw(UNICODE)
    text = draw(LEADING) + body + draw(st.sampled_from(["", "", "", " \n", "\u3000", "x"]))
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode()   # a protobuf string is UTF-8
    return text


def check_content(wire: bytes) -> None:
    value = parsed(wire)
    want = genai._content(value)
    if want is None:
        tally("None")
    elif not isinstance(value, str):
        tally(f"{type(value).__name__}: plain")
    elif want is not value:
        tally(f"str -> {type(want).__name__}")
    elif value.lstrip()[:1] not in ("{", "[", '"'):
        tally("str: not JSON")
    elif reference_dump(value) is None and len(value) <= 2 * genai._MAX_DEPTH:
        tally("str: orjson refuses")
    else:
        tally("str: orjson refuses or too deep")
    got = _native._genai_content_json(wire)
    if want is None:
        assert got is None
    else:
        assert got == orjson.dumps(want)


@MANY
@given(json_strings())
@example("[" * 201 + "]" * 201)
@example("[" * 200 + "]" * 200)
@example("\u3000" + "[" * 200 + "]" * 200)
@example(" " * 50 + '{"k":' * 201 + "1" + "}" * 201)
def test_content_of_strings_is_what_content_makes_of_them(text: str) -> None:
    check_content(AnyValue(string_value=text).SerializeToString())


@MANY
@given(any_wires())
@example(b"")
@example(AnyValue(string_value="").SerializeToString())
@example(_array([AnyValue()]).SerializeToString())
def test_content_of_any_value_is_what_content_makes_of_it(wire: bytes) -> None:
    check_content(wire)


@MANY
@given(any_wires() | json_strings().map(lambda s: AnyValue(string_value=s).SerializeToString()))
@example(b"")
def test_stringified_is_trace_jsons(wire: bytes) -> None:
    assert _native._genai_stringified(wire) == _stringified(parsed(wire))


def test_deep_values_end_at_max_depth_in_plain() -> None:
    for n in (98, 99, 100, 101):   # kvlists of arrays: 2 levels each in _plain, 5 messages in upb
        b = b"\x18\x07"
        for _ in range(n // 5):
            b = field(6, field(1, field(1, b"k") + field(2, field(5, field(1, b)))))
        check_wire(b)
        check_content(b)
    # a value 200 levels deep takes more than upb reads: _plain's limit is for parsed JSON,
    # which reaches it through _content's value, then _plain (a metadata value)
    text = nested(240, "1")
    got = _native._genai_content_json(AnyValue(string_value=text).SerializeToString())
    assert got == orjson.dumps(genai._content(text)) and got.startswith(b'"')


def test_random_kvlists_with_many_repeated_keys() -> None:
    rnd = random.Random(7)
    for size in (5, 17, 100, 2000):
        pairs = [(rnd.choice("abcdefghij" * 3 + "é"), _any(int_value=rnd.randint(0, 9))) for _ in range(size)]
        wire = _kvlist(pairs).SerializeToString()
        assert _native._genai_any_value_json(wire) == orjson.dumps(genai._plain(parsed(wire)))
        text = "{" + ",".join(f'"{k}":{v.int_value}' for k, v in pairs) + "}"
        check_text(text)
