"""Where stored formats are put: a local directory or an S3-compatible bucket, same key layout."""

from otlp_router.destinations.stores.base import Store, StoreError

__all__ = ["Store", "StoreError"]
