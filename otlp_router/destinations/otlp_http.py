"""`type: otlp_http`: export to an OTLP/HTTP endpoint (Axiom, Tempo, Honeycomb,
Langfuse, another collector or router), protobuf or JSON, over a pooled
keep-alive connection."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from otlp_router import _native
from otlp_router.destinations.assembly import Group
from otlp_router.destinations.base import CheckResult, Destination, ExportError
from otlp_router.destinations.otlp_common import (connection_test_request, decode_response, merged_message,
                                                  merged_wire, note_partial_success, parse_retry_after,
                                                  status_message)
from otlp_router.destinations.tls import ClientTls
from otlp_router.model import otlp_json
from otlp_router.model.batch import Batch
from otlp_router.model.signals import SIGNALS
from otlp_router.settings import Section
from otlp_router.threads import offload

# OTLP/HTTP: these may succeed later; every other 4xx/5xx is final for this data.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
LARGE_EXPORT = 256 * 1024


class OtlpHttpDestination(Destination):
    type_name = "otlp_http"
    default_flush_interval = 0.2
    default_max_in_flight = 4

    def __init__(self, name: str, settings: Section) -> None:
        super().__init__(name, settings)
        self.endpoints = self._endpoints(settings)
        self.accepts = frozenset(self.endpoints)
        # The URL `check` and TLS set-up go by: the traces one if there is one.
        self.endpoint = self.endpoints.get("traces") or next(iter(self.endpoints.values()))
        self.encoding = settings.str("encoding", "protobuf", choices=("protobuf", "json"))
        self.compression = settings.str("compression", "gzip", choices=("gzip", "none"))
        self.headers = settings.str_map("headers", {})
        self.timeout = settings.duration("timeout", 10.0, minimum=0.001)
        self.tls = ClientTls.read(settings.section("tls"))
        self.check_with_span = settings.bool("check_with_span", False)
        self.max_connections = settings.int("max_connections", 8, minimum=1)
        settings.done()
        self._client: httpx.AsyncClient | None = None

    @staticmethod
    def _endpoints(settings: Section) -> dict[str, str]:
        """Per-signal URLs, as the OTel SDKs derive them: `endpoint` is a base URL
        that gets /v1/{signal} (a URL already ending in /v1/<signal> is taken as
        that signal's, its base for the others); `traces_endpoint` etc. override."""
        def url(key: str, value: str) -> str:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                settings.fail(f"expected an http:// or https:// URL, got {value!r}", key)
            return value

        out: dict[str, str] = {}
        if settings.has("endpoint"):
            base = url("endpoint", settings.str("endpoint")).rstrip("/")
            for signal in SIGNALS:
                if base.endswith(f"/v1/{signal}"):
                    base = base[: -len(f"/v1/{signal}")]
                    break
            out = {signal: f"{base}/v1/{signal}" for signal in SIGNALS}
        for signal in SIGNALS:
            key = f"{signal}_endpoint"
            if settings.has(key):
                out[signal] = url(key, settings.str(key))
        if not out:
            settings.fail("is required (or traces_endpoint / logs_endpoint / metrics_endpoint)", "endpoint")
        return out

    def _make_client(self) -> httpx.AsyncClient:
        verify = self.tls.context() if self.endpoint.startswith("https") else True
        limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
        return httpx.AsyncClient(timeout=self.timeout, verify=verify, limits=limits)

    async def start(self) -> None:
        self._client = self._make_client()

    def _body(self, batches: list[Batch]) -> tuple[bytes, dict[str, str]]:
        json = self.encoding == "json"
        body = otlp_json.encode(merged_message(batches)) if json else merged_wire(batches)
        headers = {**self.headers, "Content-Type": "application/json" if json else "application/x-protobuf"}
        if self.compression == "gzip":
            body = _native.gzip(body, 1)  # level 1: most of the saving at a fraction of the CPU
            headers["Content-Encoding"] = "gzip"
        return body, headers

    async def _post(self, client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
                    ) -> httpx.Response:
        try:
            return await client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise ExportError(f"no answer from {url} within {self.timeout:g}s") from None
        except httpx.HTTPError as e:
            raise ExportError(f"cannot reach {url}: {e or type(e).__name__}") from None

    async def export(self, group: Group) -> None:
        batches = group.batches()
        if self._client is None:
            await self.start()
        assert self._client is not None
        signal = batches[0].signal
        url = self.endpoints.get(signal.name)
        if url is None:
            raise ExportError(f"no endpoint for {signal.name} (set {signal.name}_endpoint)", permanent=True)
        # Encoding and gzip of a large export off the event loop: it would stall acknowledgements.
        large = sum(b.size for b in batches) > LARGE_EXPORT
        body, headers = await offload(self._body, batches) if large else self._body(batches)
        response = await self._post(self._client, url, body, headers)
        status = response.status_code
        if 200 <= status < 300:
            parsed = decode_response(signal, response.content, "json" in response.headers.get("content-type", ""))
            if parsed is not None:
                note_partial_success(self.name, signal, parsed)
            return
        words = status_message(response.content, response.headers.get("content-type", ""))
        message = f"HTTP {status}: {words}" if words else f"HTTP {status} (no message)"
        if status in RETRYABLE_STATUS:
            raise ExportError(message, retry_after=parse_retry_after(response.headers.get("retry-after")))
        raise ExportError(message, permanent=True)

    async def check(self) -> CheckResult:
        request = connection_test_request(self.check_with_span)
        json = self.encoding == "json"
        body = otlp_json.encode(request) if json else request.SerializeToString()
        headers = {**self.headers, "Content-Type": "application/json" if json else "application/x-protobuf"}
        async with self._make_client() as client:
            try:
                response = await self._post(client, self.endpoint, body, headers)
            except ExportError as e:
                return CheckResult(False, str(e))
        detail = f"HTTP {response.status_code} from {self.endpoint}"
        if response.status_code >= 300:
            words = status_message(response.content, response.headers.get("content-type", ""))
            return CheckResult(False, f"{detail}: {words}" if words else detail)
        return CheckResult(True, detail)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
