"""An S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, GCS, Backblaze B2) via boto3.

boto3 blocks, so each request runs in a worker thread, at most
`max_concurrency` at a time, off the event loop."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from otlp_router.destinations.base import CheckResult
from otlp_router.destinations.stores.base import Store, StoreError
from otlp_router.settings import Section
from otlp_router.threads import Workers

T = TypeVar("T")

_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
              "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable"}
_PLAIN = {
    "NoSuchBucket": "bucket {bucket} does not exist",
    "AccessDenied": "access denied to bucket {bucket} (check the key's permissions for PutObject)",
    "InvalidAccessKeyId": "the access key id is not known to the store",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "ExpiredToken": "the session token has expired",
    "AuthorizationHeaderMalformed": "the region {region} does not match the bucket's region",
    "PermanentRedirect": "bucket {bucket} is in another region than {region}",
}


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    region: str
    endpoint: str | None
    access_key_id: str | None
    secret_access_key: str | None
    session_token: str | None
    addressing_style: str
    request_checksum: str
    max_concurrency: int
    conditional_writes: bool

    @classmethod
    def read(cls, section: Section) -> "S3Settings":
        s = cls(
            bucket=section.str("bucket"),
            region=section.str("region"),
            endpoint=section.str("endpoint", None),
            access_key_id=section.str("access_key_id", None),
            secret_access_key=section.str("secret_access_key", None),
            session_token=section.str("session_token", None),
            addressing_style=section.str("addressing_style", "auto", choices=("auto", "path", "virtual")),
            # boto3 ≥ 1.36 adds CRC checksums to every upload by default; several
            # S3-compatible stores reject them, so only send them when required.
            request_checksum=section.str("request_checksum", "when_required",
                                         choices=("when_required", "when_supported")),
            max_concurrency=section.int("max_concurrency", 8, minimum=1),
            conditional_writes=section.bool("conditional_writes", True),
        )
        if (s.access_key_id is None) != (s.secret_access_key is None):
            section.fail("access_key_id and secret_access_key go together (or leave both unset for the "
                         "standard AWS credential chain)")
        return s


class S3Store(Store):
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        # Its own threads: a slow store must not hold up the spool's fsyncs or
        # the encoders, which use other pools.
        self._threads = Workers(settings.max_concurrency, "s3")
        self._conditional = settings.conditional_writes

    def location(self, key: str) -> str:
        return f"s3://{self.settings.bucket}/{key}"

    def _make_client(self) -> Any:
        s = self.settings
        config = botocore.config.Config(
            region_name=s.region,
            s3={"addressing_style": s.addressing_style},
            # One attempt per call: the delivery engine's retry loop (and `retry:`) decides the rest.
            retries={"mode": "standard", "total_max_attempts": 1},
            request_checksum_calculation=s.request_checksum,
            response_checksum_validation=s.request_checksum,
            connect_timeout=10, read_timeout=60, max_pool_connections=s.max_concurrency,
        )
        session = boto3.session.Session(aws_access_key_id=s.access_key_id, aws_secret_access_key=s.secret_access_key,
                                        aws_session_token=s.session_token, region_name=s.region)
        return session.client("s3", endpoint_url=s.endpoint, config=config)

    async def _in_thread(self, call: Callable[..., T], *args: Any) -> T:
        return await self._threads.run(call, *args)

    async def start(self) -> None:
        if self._client is None:
            self._client = await self._in_thread(self._make_client)

    async def stop(self) -> None:
        self._threads.shutdown(cancel_queued=True)
        self._threads = Workers(self.settings.max_concurrency, "s3")

    def _explain(self, e: Exception) -> StoreError:
        if isinstance(e, botocore.exceptions.ClientError):
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            plain = _PLAIN.get(code, "").format(bucket=self.settings.bucket, region=self.settings.region)
            words = plain or f"{code or 'error'} (HTTP {status}): {e.response.get('Error', {}).get('Message', '')}"
            # 5xx, throttling and timeouts may pass; any other 4xx (access, bucket,
            # credentials, a refused object) needs someone to change something.
            retryable = code in _THROTTLED or status >= 500 or status in (0, 408, 429)
            return StoreError(words.rstrip(": "), permanent=not retryable)
        if isinstance(e, botocore.exceptions.NoCredentialsError):
            return StoreError("no credentials: set access_key_id and secret_access_key, or configure the "
                              "standard AWS credential chain", permanent=True)
        if isinstance(e, botocore.exceptions.EndpointConnectionError):
            return StoreError(f"cannot reach the endpoint {self.settings.endpoint or 'of AWS S3'}")
        # Connection resets, read timeouts and the like.
        return StoreError(f"{type(e).__name__}: {e}")

    def _put(self, key: str, data: bytes, if_absent: bool) -> bool:
        client = self._client
        bucket = self.settings.bucket
        if if_absent and self._conditional:
            try:
                client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except botocore.exceptions.ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code == "PreconditionFailed" or status == 412:
                    return False
                if code not in ("NotImplemented", "InvalidArgument") and status != 501:
                    raise
                self._conditional = False  # this store ignores If-None-Match: look first instead
        if if_absent:
            try:
                client.head_object(Bucket=bucket, Key=key)
                return False
            except botocore.exceptions.ClientError as e:
                if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                    raise
        client.put_object(Bucket=bucket, Key=key, Body=data)
        return True

    async def put(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        await self.start()
        async with self._slots:
            try:
                return await self._in_thread(self._put, key, data, if_absent)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                raise self._explain(e) from None

    def _probe(self, key: str) -> None:
        self._client.put_object(Bucket=self.settings.bucket, Key=key, Body=b"otlp-router check")
        self._client.delete_object(Bucket=self.settings.bucket, Key=key)

    async def check(self, prefix: str) -> CheckResult:
        key = f"{prefix.rstrip('/') + '/' if prefix else ''}.otlp-router-check-{uuid.uuid4().hex}"
        try:
            await self.start()
            await self._in_thread(self._probe, key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            return CheckResult(False, f"{self.location(key)}: {self._explain(e)}")
        return CheckResult(True, f"wrote and removed {self.location(key)}")

    def read(self, key: str) -> bytes | None:
        """An object's bytes, None when missing (blocking; `otlp-router decode` uses it directly)."""
        if self._client is None:
            self._client = self._make_client()
        try:
            return self._client.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._explain(e) from None
        except botocore.exceptions.BotoCoreError as e:
            raise self._explain(e) from None

    async def get(self, key: str) -> bytes | None:
        await self.start()
        async with self._slots:
            return await self._in_thread(self.read, key)
