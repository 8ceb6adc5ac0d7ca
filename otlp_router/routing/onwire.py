"""Running a native transform on an export request's protobuf bytes (sampling, redaction)."""

from __future__ import annotations

from typing import Callable, TypeVar

from otlp_router.model.signals import Signal

T = TypeVar("T")


def on_wire(transform: Callable[[str, bytes], T], wire: bytes, signal: Signal) -> T:
    """`transform(signal name, wire)`; for bytes the core cannot read (its ValueError), upb's
    verdict as before the core: its DecodeError, or else the transform of upb's own bytes."""
    try:
        return transform(signal.name, wire)
    except ValueError:
        return transform(signal.name, signal.request_type.FromString(wire).SerializeToString())
