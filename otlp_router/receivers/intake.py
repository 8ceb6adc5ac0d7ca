"""What both transports do with an export once its bytes are in: authenticate,
rate-limit, decode, apply limits, hand to the pipeline, and turn every refusal
into one `Refused` that each transport maps to its own status."""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2

from otlp_router import telemetry
from otlp_router.model.batch import Batch
from otlp_router.model.signals import Rejection, Signal
from otlp_router.pipeline import Pipeline, SpoolFull
from otlp_router.receivers import payload
from otlp_router.settings import Section
from otlp_router.threads import offload


log = logging.getLogger("otlp_router.receivers")

LARGE_BODY = 1 << 20


# The gRPC code of each HTTP status a refusal can carry (the OTLP spec's pairs).
_GRPC_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
               405: grpc.StatusCode.UNIMPLEMENTED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
               415: grpc.StatusCode.INVALID_ARGUMENT, 429: grpc.StatusCode.RESOURCE_EXHAUSTED,
               503: grpc.StatusCode.UNAVAILABLE}


class Refused(Exception):
    """An export answered with an error. `status` is the HTTP status; gRPC maps it."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return _GRPC_CODES.get(self.status, grpc.StatusCode.UNKNOWN)

    def rpc_status(self) -> status_pb2.Status:
        """The google.rpc.Status both transports send, with RetryInfo when there is a retry hint."""
        status = status_pb2.Status(code=self.grpc_code.value[0], message=self.message)
        if self.retry_after is not None:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromNanoseconds(int(self.retry_after * 1e9))
            status.details.add().Pack(info)
        return status


@dataclass
class ApiKey:
    name: str
    key: bytes
    routes: frozenset[str] | None = None        # None: every route
    requests_per_second: float | None = None
    _tokens: float = field(default=0.0, repr=False)
    _at: float | None = field(default=None, repr=False)   # None: no request yet

    def take(self) -> float | None:
        """Token bucket: None when allowed, else seconds to wait."""
        rate = self.requests_per_second
        if rate is None:
            return None
        now = time.monotonic()
        # Burst: one second of requests, and at least one: below one request
        # per second a bucket of `rate` tokens would never hold a whole one.
        capacity = max(1.0, rate)
        self._tokens = capacity if self._at is None else min(capacity, self._tokens + (now - self._at) * rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / rate


@dataclass
class Auth:
    keys: list[ApiKey]

    @classmethod
    def read(cls, section: Section) -> "Auth":
        keys = []
        for i, raw in enumerate(section.list("api_keys")):
            entry = Section(raw, section.file, section.key_path(f"api_keys[{i}]"))
            name = entry.str("name")
            if entry.has("key") == entry.has("key_file"):
                entry.fail("expected exactly one of key, key_file")
            if entry.has("key"):
                key = entry.str("key")
            else:
                path = entry.str("key_file")
                try:
                    key = Path(path).read_text().strip()
                except OSError as e:
                    entry.fail(f"cannot read {path}: {e.strerror or e}", "key_file")
            if len(key) < 16:
                entry.fail("an API key must be at least 16 characters", "key" if entry.has("key") else "key_file")
            routes = entry.list("routes", None)
            rate = entry.number("max_requests_per_second", None, minimum=0.001)
            entry.done()
            keys.append(ApiKey(name, key.encode(), frozenset(routes) if routes is not None else None, rate))
        if not keys:
            section.fail("expected at least one API key", "api_keys")
        section.done()
        return cls(keys)

    def identify(self, presented: str | None) -> ApiKey | None:
        """The key presented, compared in constant time against every configured key."""
        if not presented:
            return None
        candidate = presented.encode()
        found = None
        for key in self.keys:  # no early exit: timing does not tell which key, or how much, matched
            if hmac.compare_digest(candidate, key.key):
                found = key
        return found


@dataclass(frozen=True)
class Limits:
    max_items_per_request: int = 0          # 0: no limit
    max_attributes_per_span: int = 0
    max_attribute_value_length: int = 0

    @classmethod
    def read(cls, section: Section) -> "Limits":
        s = cls(section.int("max_spans_per_request", 0, minimum=0),
                section.int("max_attributes_per_span", 0, minimum=0),
                section.int("max_attribute_value_length", 0, minimum=0))
        section.done()
        return s

    def apply(self, batch: Batch) -> None:
        """Truncate what is past the per-span limits, counting it (as the SDKs' span limits do)."""
        if not (self.max_attributes_per_span or self.max_attribute_value_length):
            return
        dropped = truncated = 0
        length = self.max_attribute_value_length
        for rs in batch.message.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs = span.attributes
                    if self.max_attributes_per_span and len(attrs) > self.max_attributes_per_span:
                        extra = len(attrs) - self.max_attributes_per_span
                        del attrs[self.max_attributes_per_span:]
                        span.dropped_attributes_count += extra
                        dropped += extra
                    if length:
                        for kv in attrs:
                            value = kv.value
                            if value.WhichOneof("value") == "string_value" and len(value.string_value) > length:
                                value.string_value = value.string_value[:length]
                                truncated += 1
        if dropped or truncated:
            batch.modified()
            telemetry.limited_attributes.labels("dropped").inc(dropped)
            telemetry.limited_attributes.labels("truncated").inc(truncated)


class Intake:
    def __init__(self, pipeline: Pipeline, auth: Auth | None = None, limits: Limits | None = None) -> None:
        self.pipeline = pipeline
        self.auth = auth
        self.limits = limits or Limits()
        self.draining = False
        self._logged: set[type] = set()   # exception types whose traceback was logged

    def authenticate(self, authorization: str | None, api_key: str | None) -> ApiKey | None:
        """`Authorization: Bearer <key>` or `x-api-key: <key>`; None when auth is off."""
        if self.auth is None:
            return None
        presented = api_key
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer":
                presented = token.strip()
        key = self.auth.identify(presented)
        if key is None:
            raise Refused(401, "unauthenticated")
        wait = key.take()
        if wait is not None:
            raise Refused(429, f"request rate of API key {key.name} exceeded", wait)
        return key

    async def export(self, signal: Signal, kind: str, data: bytes, key: ApiKey | None, transport: str) -> Rejection:
        try:
            return await self._export(signal, kind, data, key, transport)
        except Refused:
            raise
        except Exception as e:  # noqa: BLE001 - a bug must not look like a final refusal to the client
            # 503 / UNAVAILABLE: clients retry, and nothing was acknowledged.
            if type(e) not in self._logged:
                self._logged.add(type(e))
                log.exception("unexpected error while accepting a %s request; answered 503", signal.name)
            else:
                log.error("unexpected error while accepting a %s request; answered 503: %r", signal.name, e)
            raise Refused(503, f"internal error while accepting the request ({type(e).__name__}); retry",
                          1.0) from None

    async def _export(self, signal: Signal, kind: str, data: bytes, key: ApiKey | None, transport: str
                      ) -> Rejection:
        labels = ("otlp", transport, signal.name)
        try:
            if len(data) > LARGE_BODY:
                # Decoding holds the GIL, but in a thread the interpreter still
                # switches back to the event loop every few ms: one big request
                # slows the others instead of stalling them until it is done.
                batch, rejection = await offload(payload.decode, signal, kind, data)
            else:
                batch, rejection = payload.decode(signal, kind, data)
        except payload.PayloadError as e:
            raise Refused(e.status, e.message) from None
        if self.limits.max_items_per_request and batch.items > self.limits.max_items_per_request:
            raise Refused(400, f"{batch.items} {signal.item_name} in one request; the limit is "
                               f"{self.limits.max_items_per_request}")
        if self.draining:
            raise Refused(503, "the router is shutting down; retry", 1.0)
        if key is not None:
            batch.api_key_name = key.name
            batch.allowed_routes = key.routes
        self.limits.apply(batch)
        try:
            await self.pipeline.accept(batch)
        except SpoolFull as e:
            telemetry.receiver_refused.labels(*labels, "backpressure").inc(batch.items)
            raise Refused(429, str(e), e.retry_after) from None
        telemetry.receiver_accepted.labels(*labels).inc(batch.items)
        if rejection.count:
            telemetry.receiver_refused.labels(*labels, "invalid").inc(rejection.count)
        return rejection
