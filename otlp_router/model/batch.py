"""A batch: one decoded OTLP export request as it moves down the data path."""

from __future__ import annotations

from google.protobuf.message import Message

from otlp_router.model.signals import Signal


class Batch:
    """An export request of one signal, with its item count and, while the
    message is unchanged, the protobuf bytes it arrived as (so forwarding or
    spooling an untouched request costs no re-serialisation)."""

    __slots__ = ("signal", "message", "items", "_wire", "api_key_name", "json_body")

    def __init__(self, signal: Signal, message: Message, items: int, wire: bytes | None = None,
                 api_key_name: str | None = None, json_body: bytes | None = None) -> None:
        self.signal = signal
        self.message = message
        self.items = items
        self._wire = wire
        self.api_key_name = api_key_name
        # The OTLP JSON the batch arrived as, for substring prefilters that may
        # only err towards looking closer (JSON escapes can hide a key); dropped
        # once routed.
        self.json_body = json_body

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = self.message.SerializeToString()
        return self._wire

    @property
    def wire_if_known(self) -> bytes | None:
        """The protobuf bytes if they are at hand, without serialising."""
        return self._wire

    @property
    def size(self) -> int:
        """Bytes on the wire, without serialising when the arrival bytes are still valid."""
        return len(self._wire) if self._wire is not None else self.message.ByteSize()

    def modified(self) -> None:
        """Call after changing `message` in place: the arrival bytes no longer match it."""
        self._wire = None

    def __repr__(self) -> str:
        return f"Batch({self.signal.name}, {self.items} {self.signal.item_name})"
