"""`type: discard`: accept and forget, counted (like the Collector's nop exporter).

For routes that drop on purpose, and for measuring ingest alone."""

from __future__ import annotations

from otlp_router.destinations.assembly import Group
from otlp_router.destinations.base import Destination
from otlp_router.settings import Section


class DiscardDestination(Destination):
    type_name = "discard"

    def __init__(self, name: str, settings: Section) -> None:
        super().__init__(name, settings)
        settings.done()

    async def export(self, group: Group) -> None:
        pass
