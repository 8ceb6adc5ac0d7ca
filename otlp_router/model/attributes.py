"""Reading OTLP attributes (KeyValue lists of AnyValue) as Python values."""

from __future__ import annotations

from typing import Any, Iterable

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def value_of(v: AnyValue) -> Any:
    """AnyValue → str | bool | int | float | bytes | list | dict | None."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def to_dict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """Attributes as a dict of Python values (the last of repeated keys wins, as in the SDKs)."""
    return {kv.key: value_of(kv.value) for kv in attributes}


def set_value(target: AnyValue, value: Any) -> None:
    """Python value → AnyValue, in place."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, (bytes, bytearray)):
        target.bytes_value = bytes(value)
    elif isinstance(value, (list, tuple)):
        target.array_value.SetInParent()
        for item in value:
            set_value(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        for k, item in value.items():
            kv = target.kvlist_value.values.add(key=str(k))
            set_value(kv.value, item)
    elif value is None:
        target.Clear()
    else:
        target.string_value = str(value)
