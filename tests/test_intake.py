"""What both receivers share: a refusal becomes one status; an unexpected error is retryable."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

from otlp_router.model.signals import TRACES
from otlp_router.receivers import payload
from otlp_router.receivers.intake import Intake, Refused
from tests.support import make_request


class ExplodingPipeline:
    async def accept(self, batch: object) -> None:
        raise KeyError("a bug in routing")


def test_an_unexpected_error_is_503_unavailable_and_logged_once_with_its_traceback(caplog) -> None:
    """Issue 13, finding 10: it was 500 / UNKNOWN, which OTLP clients do not retry."""
    intake = Intake(ExplodingPipeline())  # type: ignore[arg-type]
    body = make_request().SerializeToString()
    with caplog.at_level(logging.ERROR, logger="otlp_router.receivers"):
        for _ in range(3):
            with pytest.raises(Refused) as refused:
                asyncio.run(intake.export(TRACES, payload.PROTOBUF, body, None, "http"))
            assert refused.value.status == 503 and refused.value.retry_after == 1.0
            assert refused.value.grpc_code == grpc.StatusCode.UNAVAILABLE
            assert "KeyError" in refused.value.message
    assert sum(1 for r in caplog.records if r.exc_info) == 1
    assert len(caplog.records) == 3
