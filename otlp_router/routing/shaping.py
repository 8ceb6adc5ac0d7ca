"""What a destination (or a route) does to the items it takes, before they are
spooled: sampling, attribute actions, privacy, redaction, in that order.

Each destination gets its own copy of a request it shares with others, so the
transforms of one destination never leak into another."""

from __future__ import annotations

from otlp_router.model.batch import Batch
from otlp_router.routing.actions import AttributeActions
from otlp_router.routing.privacy import may_hold_content, strip_wire
from otlp_router.routing.redaction import Redaction
from otlp_router.routing.sampling import Sampling
from otlp_router.settings import Section

DESTINATION_KEYS = ("privacy", "redaction", "attributes", "sampling")
ROUTE_KEYS = ("privacy", "attributes")


class Shaping:
    def __init__(self, privacy: bool = False, redaction: Redaction | None = None,
                 actions: AttributeActions | None = None, sampling: Sampling | None = None) -> None:
        self.privacy = privacy
        self.redaction = redaction
        self.actions = actions
        self.sampling = sampling

    @classmethod
    def read(cls, section: Section, keys: tuple[str, ...] = DESTINATION_KEYS) -> "Shaping":
        privacy = section.bool("privacy", False) if "privacy" in keys else False
        redaction = Redaction(section.section("redaction")) \
            if "redaction" in keys and section.has("redaction") else None
        actions = AttributeActions(section.list("attributes"), section.file, section.key_path("attributes")) \
            if "attributes" in keys and section.has("attributes") else None
        sampling = Sampling(section.section("sampling")) if "sampling" in keys and section.has("sampling") else None
        return cls(privacy, redaction, actions, sampling)

    def __bool__(self) -> bool:
        return bool(self.privacy or self.redaction or self.actions or self.sampling)

    def apply(self, batch: Batch) -> int:
        """Shape the batch in place; returns the items sampled out. Every transform works on
        the protobuf bytes (the native core's); the message is only built for attribute actions
        with include / exclude rules."""
        signal = batch.signal
        removed = 0
        if self.sampling is not None:
            sampled = self.sampling.apply_wire(batch.wire, signal)
            if sampled is not None:
                batch.replace_wire(sampled[0])
                removed = sampled[1]
                batch.items -= removed
        if self.actions is not None:
            changed = self.actions.apply_wire(batch.wire, signal, batch.api_key_name)
            if changed is not None:
                batch.replace_wire(changed)
        if self.privacy:
            # On the protobuf bytes (the native core): serialised here if only the message is
            # known, and the spool wants the bytes anyway.
            wire = batch.wire
            if may_hold_content(wire):
                stripped = strip_wire(wire, signal)
                if stripped is not None:
                    batch.replace_wire(stripped[0])
        if self.redaction is not None:
            redacted = self.redaction.apply_wire(batch.wire, signal)
            if redacted is not None:
                batch.replace_wire(redacted)
        return removed


def shape(batch: Batch, shapings: list[Shaping], shared: bool) -> tuple[Batch, int]:
    """Apply route and destination shaping; a batch other destinations also
    receive is copied first."""
    if shared:
        wire = batch.wire_if_known
        if wire is not None:   # the bytes are the content: each copy parses them if it must
            batch = batch.derive(None, batch.items, wire)
        else:
            copy = type(batch.message)()
            copy.CopyFrom(batch.message)
            batch = batch.derive(copy, batch.items)
    removed = 0
    for shaping in shapings:
        removed += shaping.apply(batch)
    return batch, removed
