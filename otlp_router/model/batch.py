"""A batch: one OTLP export request as it moves down the data path."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, TypeVar

from google.protobuf.message import Message

from otlp_router import _native
from otlp_router.model.signals import Signal

T = TypeVar("T")


class Batch:
    """An export request of one signal with its item count.

    It holds the protobuf bytes, the decoded message, or both: bytes read back
    from a spool are only parsed when something looks inside, and a message
    that arrived as bytes is only serialised again once it has been changed.
    """

    __slots__ = ("signal", "_message", "items", "_wire", "api_key_name", "json_body", "received", "allowed_routes")

    def __init__(self, signal: Signal, message: Message | None, items: int, wire: bytes | None = None,
                 api_key_name: str | None = None, json_body: bytes | None = None,
                 received: float | None = None) -> None:
        if message is None and wire is None:
            raise ValueError("a batch needs a message or its bytes")
        self.signal = signal
        self._message = message
        self.items = items
        self._wire = wire
        self.api_key_name = api_key_name
        # The OTLP JSON the batch arrived as, for substring prefilters that may
        # only err towards looking closer (JSON escapes can hide a key); dropped
        # once routed.
        self.json_body = json_body
        self.received = time.time() if received is None else received
        # Routes the client's API key may reach (None: all); only looked at when routing.
        self.allowed_routes: frozenset[str] | None = None

    @property
    def message(self) -> Message:
        if self._message is None:
            self._message = self.signal.request_type.FromString(self._wire)
        return self._message

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

    def compact(self) -> None:
        """Keep only the bytes, when they are known: a spooled batch waiting for
        its destination then costs its wire size in memory, not wire plus the
        decoded message (several times larger); it is parsed again if needed."""
        if self._wire is not None:
            self._message = None

    def evicted(self) -> "Batch":
        """This batch without its payload, bytes and message (a disk spool holding them on disk
        only keeps this); `replace_wire` before use. The batch itself stays whole: the spools of
        other destinations may hold it too."""
        copy = Batch.__new__(Batch)
        for name in self.__slots__:
            setattr(copy, name, getattr(self, name))
        copy._wire = copy._message = None
        return copy

    def modified(self) -> None:
        """Call after changing `message` in place: the arrival bytes no longer match it."""
        self.message  # noqa: B018 - make sure the message, not just stale bytes, is kept
        self._wire = None

    def replace_wire(self, wire: bytes) -> None:
        """The batch is now these bytes (a transform that works on the wire made them): the
        message, if something wants it again, is parsed from them."""
        self._wire = wire
        self._message = None

    def derive(self, message: Message | None, items: int, wire: bytes | None = None) -> "Batch":
        """A new batch of another message (`wire`: its bytes, if known; the bytes alone
        when `message` is None) with this one's origin (API key, arrival time)."""
        return Batch(self.signal, message, items, wire, api_key_name=self.api_key_name, received=self.received)

    def __repr__(self) -> str:
        return f"Batch({self.signal.name}, {self.items} {self.signal.item_name})"


def on_wire(signal: Signal, wire: bytes, read: Callable[[bytes], T]) -> T:
    """`read(wire)`, a native core function on a request's protobuf bytes. Bytes it refuses
    (ValueError) are parsed by upb, which raises as it did before the core read them; what upb
    takes is serialised again (canonical bytes, which the core reads) and read once more."""
    try:
        return read(wire)
    except ValueError:
        return read(signal.request_type.FromString(wire).SerializeToString())


def split(batch: Batch, groups: list[int], outputs: list[list[int]]) -> list[Batch]:
    """Per output (the groups it takes), a new batch of the items whose group (`groups`, in
    item order) it takes, each with its resource and scope: written by the native core on the
    protobuf bytes."""
    parts = on_wire(batch.signal, batch.wire, lambda wire: _native.select(batch.signal.name, wire, groups, outputs))
    return [batch.derive(None, items, wire) for wire, items in parts]


def select(batch: Batch, keep: list[bool]) -> Batch:
    """A new batch of the items whose flag is set (flags in item order), each
    with its resource and scope."""
    return split(batch, [int(k) for k in keep], [[1]])[0]


def items_of(batch: Batch) -> Iterator[tuple[Any, Any]]:
    """Every item of a batch with its resource, in order."""
    signal = batch.signal
    for rs in getattr(batch.message, signal.resource_field):
        for ss in getattr(rs, signal.scope_field):
            for item in getattr(ss, signal.items_field):
                yield item, rs.resource


def partition(batch: Batch, by: str, owner_of: Callable[[bytes], int]) -> dict[int, Batch]:
    """Split a batch by owner: `by` ("trace_id", "service" or "trace_id_or_service", read by
    the native core) gives an item's key, `owner_of(key)` its owner (asked once per distinct
    key). A batch with one owner is returned whole."""
    keys, index = on_wire(batch.signal, batch.wire, lambda wire: _native.item_keys(batch.signal.name, wire, by))
    owners = [owner_of(key) for key in keys]
    targets = list(dict.fromkeys(owners[k] for k in index))
    if len(targets) <= 1:
        return {targets[0]: batch} if targets else {}
    parts = split(batch, [owners[k] for k in index], [[t] for t in targets])
    return dict(zip(targets, parts))
