"""Tenants kept apart with auth on (issue 14, cross-tenant mixing): trace ids come
from clients, so key A can send spans with tenant B's trace id; they must never
join B's per-trace document or Aperture batch, nor be written under B's name.
Real sockets against a running router with two API keys."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import cbor2
import orjson
import pytest
import zstandard

from tests.support import base_config, make_request, wait_for

PB = {"Content-Type": "application/x-protobuf"}
KEYS = {"tenant-a": "tenant-a-key-0123456789abcdef", "tenant-b": "tenant-b-key-0123456789abcdef"}
SHARED_TRACE = bytes.fromhex("b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0")   # B's trace id, which A also uses
_counter = iter(range(10_000))


class Store:
    """One destination on S3 (moto) or a local directory, read back the same way."""

    def __init__(self, kind: str, tmp_path: Path, moto: Any) -> None:
        self.kind, self.root = kind, tmp_path / "store"
        self.moto = moto
        self.bucket = moto.bucket(f"tenants-{next(_counter)}") if kind == "s3" else None

    def destination(self, **settings: Any) -> dict[str, Any]:
        if self.kind == "s3":
            return self.moto.destination(self.bucket, **settings)
        return {"type": "file", "dir": str(self.root), **settings}

    def objects(self) -> dict[str, bytes]:
        if self.kind == "s3":
            return self.moto.objects(self.bucket)
        if not self.root.exists():
            return {}
        return {str(p.relative_to(self.root)): p.read_bytes() for p in self.root.rglob("*")
                if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(params=["s3", "file"])
def store(request, tmp_path, moto) -> Store:
    return Store(request.param, tmp_path, moto)


def _start(start_router, tmp_path: Path, destination: dict[str, Any]):
    config = base_config(tmp_path, destinations={"store": destination})
    config["receivers"]["otlp"]["auth"] = {"api_keys": [{"name": n, "key": k} for n, k in KEYS.items()]}
    return start_router(config)


def _spans(first_id: int, count: int, claim: str | None = None, genai: bool = False):
    """A request of `count` spans of the shared trace, span ids from `first_id`;
    `claim` puts another tenant's name in the attribute auth-off routers read."""
    request = make_request(spans=count, seed=3)
    for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.trace_id = SHARED_TRACE
        span.span_id = (first_id + i).to_bytes(8, "big")
        span.parent_span_id = b""
        if claim is not None:
            span.attributes.add(key="trace.metadata.openrouter.api_key_name").value.string_value = claim
        if genai:
            for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
                               ("gen_ai.request.model", "gpt-4o")):
                span.attributes.add(key=key).value.string_value = value
            span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 5
    return request


def _post(router, tenant: str, request) -> None:
    status, _, body = router.post("/v1/traces", request.SerializeToString(),
                                  {**PB, "Authorization": f"Bearer {KEYS[tenant]}"})
    assert status == 200, body


B_SPANS = {(100 + i).to_bytes(8, "big").hex() for i in range(3)}
A_SPANS = {(900 + i).to_bytes(8, "big").hex() for i in range(2)}


def _send_both(router, genai: bool = False) -> None:
    _post(router, "tenant-b", _spans(100, 2, genai=genai))
    # A joins B's trace id while it is open, and claims B's name in the attribute.
    _post(router, "tenant-a", _spans(900, 2, claim="tenant-b", genai=genai))
    _post(router, "tenant-b", _spans(102, 1, genai=genai))


def test_a_key_cannot_add_to_another_keys_trace_document(start_router, tmp_path, store) -> None:
    router = _start(start_router, tmp_path, store.destination(
        format="json", trace_idle="1s", path_template="tenants/{apiKeyName}/{date}"))
    _send_both(router)
    objects = wait_for(lambda: len(store.objects()) >= 2 and store.objects(), timeout=15)
    time.sleep(0.5)
    objects = store.objects()
    assert len(objects) == 2, (sorted(objects), router.stderr)
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for key, data in objects.items():
        assert key.startswith("tenants/")
        by_tenant.setdefault(key.split("/")[1], []).append(orjson.loads(data))
    assert sorted(by_tenant) == ["tenant-a", "tenant-b"]
    [b_doc], [a_doc] = by_tenant["tenant-b"], by_tenant["tenant-a"]
    assert b_doc["id"] == a_doc["id"] == SHARED_TRACE.hex()
    assert {o["id"] for o in b_doc["observations"]} == B_SPANS
    assert {o["id"] for o in a_doc["observations"]} == A_SPANS


def test_without_the_key_in_the_path_the_documents_stay_apart(start_router, tmp_path, store) -> None:
    """The default layout has no {apiKeyName}: A's document for B's trace id is a
    second object beside B's (the next second's name), never a merge or an overwrite."""
    router = _start(start_router, tmp_path, store.destination(format="json", trace_idle="1s"))
    _send_both(router)
    objects = wait_for(lambda: len(store.objects()) >= 2 and store.objects(), timeout=15)
    time.sleep(0.5)
    objects = store.objects()
    assert len(objects) == 2, sorted(objects)
    assert {frozenset(o["id"] for o in orjson.loads(d)["observations"]) for d in objects.values()} == \
        {frozenset(A_SPANS), frozenset(B_SPANS)}


def _records(data: bytes) -> list[dict[str, Any]]:
    stream = io.BytesIO(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read())
    decoder = cbor2.CBORDecoder(stream)
    out = []
    while stream.tell() < len(stream.getbuffer()):
        out.append(decoder.decode())
    return out


def test_an_aperture_batch_holds_one_keys_records_only(start_router, tmp_path, store) -> None:
    router = _start(start_router, tmp_path, store.destination(format="cbor_zstd", every="1s", prefix="aperture"))
    _send_both(router, genai=True)
    wait_for(lambda: sum(len(_records(d)) for d in store.objects().values()) >= 5, timeout=15)
    objects = store.objects()
    assert len(objects) >= 2, sorted(objects)
    seen: dict[str, set[str]] = {}
    for key, data in objects.items():
        assert key.startswith("aperture/ts-aperture-export-")
        records = _records(data)
        logins = {r["identity"]["login_name"] for r in records}
        assert len(logins) == 1, (key, logins)   # one key's records per object
        seen.setdefault(logins.pop(), set()).update(r["capture_id"] for r in records)
    assert seen == {"tenant-b": B_SPANS, "tenant-a": A_SPANS}
