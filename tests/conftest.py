from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.s3server import MotoServer
from tests.support import RouterProcess, base_config


@pytest.fixture
def start_router(tmp_path: Path) -> Iterator[Callable[..., RouterProcess]]:
    """Start routers for this test; every one is stopped (then killed) afterwards."""
    started: list[RouterProcess] = []

    def start(config: dict | str | None = None, workdir: Path | None = None) -> RouterProcess:
        directory = workdir or tmp_path
        directory.mkdir(parents=True, exist_ok=True)
        router = RouterProcess(config if config is not None else base_config(directory), directory)
        started.append(router)
        return router

    yield start
    for router in started:
        try:
            router.stop(timeout=10)
        except RuntimeError:
            router.kill()


@pytest.fixture(scope="module")
def shared_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    """One router for a module of tests that only look at responses."""
    directory = tmp_path_factory.mktemp("router")
    router = RouterProcess(base_config(directory), directory)
    yield router
    router.stop()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto S3 server for the session; tests use their own buckets."""
    server = MotoServer()
    yield server
    server.stop()
