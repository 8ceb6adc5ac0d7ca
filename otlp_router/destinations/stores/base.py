"""The object store interface shared by the local directory and S3."""

from __future__ import annotations

from abc import ABC, abstractmethod

from otlp_router.destinations.base import CheckResult, ExportError


class StoreError(ExportError):
    """A store operation failed, classified like any export: `permanent` for what
    needs an operator (access denied, no such bucket: the group goes to the dead
    letter, `otlp-router replay` once fixed), otherwise retried with backoff."""


class Store(ABC):
    @abstractmethod
    async def put(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        """Write an object; with `if_absent`, False (and nothing written) when the key exists."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """An object's bytes, or None when there is no such key."""

    @abstractmethod
    async def check(self, prefix: str) -> CheckResult:
        """Put and remove a small probe object under `prefix`."""

    @abstractmethod
    def location(self, key: str) -> str:
        """Where a key lives, for people (s3://bucket/key, /path/key)."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
