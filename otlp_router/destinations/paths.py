"""Object keys for the stored formats, safe on a local directory and on S3 alike.

Template variables can come from clients (with auth off, `{apiKeyName}` is a
span attribute), so every value becomes exactly one path segment of a fixed
character set before it is put into a key, and the finished key is checked as
a whole: relative, normalised, made of safe segments, within S3's length limit
and, for a directory, resolving under it. A key that fails is refused, never
written somewhere else. Pure functions, but `resolve_under`, which asks the
filesystem about symbolic links."""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import Mapping

from otlp_router import _native

SAFE_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._-")
MAX_VALUE_BYTES = 64       # one variable's segment: room for several in a name, far below NAME_MAX
MAX_SEGMENT_BYTES = 255    # NAME_MAX of Linux filesystems
MAX_KEY_BYTES = 1024       # S3's limit on a key
PLACEHOLDER = "_"          # what an empty, `.` or `..` value turns into
_DIGEST_BYTES = 5          # 10 hex digits: names cut or changed stay distinct


class UnsafeKey(ValueError):
    """A key (or a template, or a prefix) that could leave its root or is not a valid object name."""


def safe_segment(value: str) -> str:
    """`value` as one path segment of [A-Za-z0-9._-], at most MAX_VALUE_BYTES.

    Ordinary names come back unchanged. Any other is cleaned (other characters
    become `_`, `.` and `..` the placeholder), cut to fit and given a hash of
    the original, so that two different values never share a segment by accident."""
    if value == "":
        return PLACEHOLDER
    if value not in (".", "..") and len(value) <= MAX_VALUE_BYTES and all(c in SAFE_CHARACTERS for c in value):
        return value
    cleaned = PLACEHOLDER if value in (".", "..") else "".join(c if c in SAFE_CHARACTERS else "_" for c in value)
    # surrogatepass: a lone surrogate must not make the hash (and so the write) fail.
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_BYTES).hexdigest()
    return f"{cleaned[:MAX_VALUE_BYTES - len(digest) - 1]}-{digest}"


def template_fields(template: str) -> list[str]:
    """The variables a path template names; refuses conversions, format specs and
    attribute or index access (`{apiKeyName:.2}` could cut a value down to `..`)."""
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise UnsafeKey(f"bad braces ({e})") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise UnsafeKey(f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                            "is not a plain variable")
        fields.append(name)
    return fields


def render(template: str, values: Mapping[str, str], verbatim: Mapping[str, str] | None = None) -> str:
    """The template filled in, as a key without empty segments: each of `values`
    becomes one safe segment; `verbatim` values (the operator's own, e.g. the
    destination's prefix, checked with `check_prefix`) go in as they are and may
    span segments or be empty."""
    filled = {name: safe_segment(value) for name, value in values.items()}
    filled.update(verbatim or {})
    return "/".join(part for part in template.format_map(filled).split("/") if part)


def check_prefix(prefix: str) -> str:
    """An operator's prefix: empty, or safe segments joined by `/`."""
    if prefix:
        check_key(prefix)
    return prefix


def check_key(key: str) -> str:
    """The key itself if it is a relative, normalised key of safe segments that
    fits S3's limit; raises UnsafeKey naming the problem otherwise."""
    if not isinstance(key, str) or not key:
        raise UnsafeKey("empty key")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafeKey(f"{key!r} is not valid UTF-8") from None
    if size > MAX_KEY_BYTES:
        raise UnsafeKey(f"key of {size} bytes; at most {MAX_KEY_BYTES}")
    if key.startswith("/"):
        raise UnsafeKey(f"{key!r} is absolute")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise UnsafeKey(f"{key!r} has an empty, . or .. segment")
        if not all(c in SAFE_CHARACTERS for c in segment):
            raise UnsafeKey(f"{key!r}: segment {segment!r} has characters other than A-Z a-z 0-9 . _ -")
        if len(segment) > MAX_SEGMENT_BYTES:
            raise UnsafeKey(f"{key!r}: a segment of {len(segment)} bytes; at most {MAX_SEGMENT_BYTES}")
    return key


def resolve_under(root: Path | str, key: str) -> Path:
    """Where `key` lands under the directory `root`, once checked and with symbolic
    links followed (as `Path.resolve`, by the C library's realpath in the core: 65 µs of
    Python a put otherwise); raises UnsafeKey when that is outside `root`."""
    check_key(key)
    inside, path = _native.resolve_under(root, key)
    if not inside:
        raise UnsafeKey(f"{key!r} resolves to {path!r}, outside {str(Path(root).resolve())!r}")
    return Path(path)
