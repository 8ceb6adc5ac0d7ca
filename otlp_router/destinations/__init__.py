"""Where routed batches go. `build` turns a `destinations:` entry into a destination."""

from __future__ import annotations

from otlp_router.destinations.base import CheckResult, Destination, ExportError
from otlp_router.destinations.discard import DiscardDestination
from otlp_router.destinations.file import FileDestination
from otlp_router.destinations.loadbalance import LoadBalancedDestination
from otlp_router.destinations.otlp_grpc import OtlpGrpcDestination
from otlp_router.destinations.otlp_http import OtlpHttpDestination
from otlp_router.destinations.storage import LocalStorageDestination, S3Destination
from otlp_router.settings import Section

TYPES: dict[str, type[Destination]] = {
    cls.type_name: cls
    for cls in (FileDestination, S3Destination, OtlpHttpDestination, OtlpGrpcDestination, DiscardDestination)}


def build(name: str, settings: Section) -> Destination:
    type_name = settings.str("type", choices=tuple(TYPES))
    # A directory takes OTLP JSON as appended, rotated files; the stored formats
    # use the S3 key layout under it.
    if type_name == "file" and settings.data.get("format") in ("json", "cbor_zstd"):
        return LocalStorageDestination(name, settings)
    if type_name in ("otlp_http", "otlp_grpc") and settings.has("loadbalance"):
        return LoadBalancedDestination(name, settings, TYPES[type_name])
    return TYPES[type_name](name, settings)


__all__ = ["CheckResult", "Destination", "ExportError", "TYPES", "build"]
