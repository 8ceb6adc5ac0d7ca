"""Per-trace JSON, Aperture CBOR+zstd and OTLP JSON objects, on moto's S3 server
and on a local directory, through a running router."""

from __future__ import annotations

import gzip
import io
import time
from pathlib import Path
from typing import Any

import cbor2
import orjson
import pytest
import zstandard

from tests.support import ROOT, base_config, make_request, wait_for

FIXTURES = ROOT / "tests" / "fixtures" / "genai"
JS = {"Content-Type": "application/json"}
PB = {"Content-Type": "application/x-protobuf"}


def _dates(since: float) -> set[str]:
    """The UTC dates from `since` until now: an object written around midnight is dated on
    either side of it."""
    return {time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (since, time.time())}


class Target:
    """The same destination on S3 (moto) or on local disk, read back the same way."""

    def __init__(self, kind: str, tmp_path: Path, moto: Any, bucket: str) -> None:
        self.kind, self.tmp_path, self.moto = kind, tmp_path, moto
        self.bucket = moto.bucket(bucket) if kind == "s3" else None

    def destination(self, **settings: Any) -> dict[str, Any]:
        if self.kind == "s3":
            return self.moto.destination(self.bucket, **settings)
        return {"type": "file", "dir": str(self.tmp_path / "store"), **settings}

    def objects(self) -> dict[str, bytes]:
        if self.kind == "s3":
            return self.moto.objects(self.bucket)
        root = self.tmp_path / "store"
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and not p.name.startswith(".")}


_counter = iter(range(10_000))


@pytest.fixture(params=["s3", "file"])
def target(request, tmp_path, moto) -> Target:
    return Target(request.param, tmp_path, moto, f"bucket-{next(_counter)}")


def _router(start_router, tmp_path: Path, destination: dict[str, Any]):
    return start_router(base_config(tmp_path, destinations={"store": destination}))


def _post_fixture(router, name: str) -> dict[str, Any]:
    body = (FIXTURES / f"{name}.json").read_bytes()
    status, _, _ = router.post("/v1/traces", body, JS)
    assert status == 200
    return orjson.loads(body)


def _trace_ids(doc: dict[str, Any]) -> set[str]:
    return {s["traceId"].lower() for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}


def test_per_trace_json_with_the_default_layout(start_router, tmp_path, target) -> None:
    started = time.time()
    router = _router(start_router, tmp_path, target.destination(format="json", trace_idle="200ms"))
    sent = _post_fixture(router, "openrouter")
    trace_id = next(iter(_trace_ids(sent)))
    objects = wait_for(lambda: target.objects(), timeout=10)
    (key,) = objects
    folder, date, name = key.split("/")
    assert folder == "openrouter-traces" and date in _dates(started)
    assert name.startswith(f"{trace_id}-") and name.endswith(".json")
    assert abs(int(key.rsplit("-", 1)[1].removesuffix(".json")) - time.time()) < 30
    doc = orjson.loads(objects[key])
    assert doc["id"] == trace_id
    assert len(doc["observations"]) == sum(len(ss["spans"]) for rs in sent["resourceSpans"]
                                           for ss in rs["scopeSpans"])
    generation = next(o for o in doc["observations"] if o["type"] == "GENERATION")
    assert generation["model"] and generation["usageDetails"]["input"] > 0
    assert doc["userId"] and doc["sessionId"]


def test_path_template_variables_and_prefix(start_router, tmp_path, target) -> None:
    started = time.time()
    router = _router(start_router, tmp_path, target.destination(
        format="json", trace_idle="200ms", prefix="team-a",
        path_template="{prefix}/{year}/{month}/{day}/{apiKeyName}"))
    _post_fixture(router, "openrouter")  # carries trace.metadata.openrouter.api_key_name
    request = make_request(spans=2, seed=9)
    assert router.post("/v1/traces", request.SerializeToString(), PB)[0] == 200
    keys = wait_for(lambda: len(target.objects()) == 2 and sorted(target.objects()), timeout=10)
    days = _dates(started)
    assert all(k.startswith("team-a/") and "-".join(k.split("/")[1:4]) in days for k in keys)
    plain = [k for k in keys if k.split("/")[4] == "default"]
    named = [k for k in keys if k.split("/")[4] != "default"]
    assert plain and plain[0].endswith(f"/{request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()}-"
                                       + plain[0].rsplit("-", 1)[1])
    assert named and "/default/" not in named[0]


def test_a_trace_split_over_requests_lands_in_one_object_and_a_late_span_in_another(start_router, tmp_path,
                                                                                     target) -> None:
    router = _router(start_router, tmp_path, target.destination(format="json", trace_idle="1s"))
    request = make_request(spans=6, seed=3)
    spans = request.resource_spans[0].scope_spans[0].spans
    for part in ([0, 1], [2, 3], [4]):
        piece = make_request(spans=6, seed=3)
        keep = [piece.resource_spans[0].scope_spans[0].spans[i] for i in part]
        del piece.resource_spans[0].scope_spans[0].spans[:]
        piece.resource_spans[0].scope_spans[0].spans.extend(keep)
        assert router.post("/v1/traces", piece.SerializeToString(), PB)[0] == 200
        time.sleep(0.2)
    first = wait_for(lambda: target.objects(), timeout=10)
    assert len(first) == 1
    assert len(orjson.loads(next(iter(first.values())))["observations"]) == 5
    time.sleep(1.1)  # the next object of the trace gets a later timestamp
    late = make_request(spans=6, seed=3)
    keep = late.resource_spans[0].scope_spans[0].spans[5]
    del late.resource_spans[0].scope_spans[0].spans[:5]
    assert late.resource_spans[0].scope_spans[0].spans[0] == keep
    assert router.post("/v1/traces", late.SerializeToString(), PB)[0] == 200
    objects = wait_for(lambda: len(target.objects()) == 2 and target.objects(), timeout=10)
    trace_id = spans[0].trace_id.hex()
    assert all(k.rsplit("/", 1)[1].startswith(trace_id) for k in objects)
    assert sorted(len(orjson.loads(v)["observations"]) for v in objects.values()) == [1, 5]


def _records(data: bytes) -> list[dict[str, Any]]:
    """Read an Aperture export with zstandard + cbor2 alone."""
    stream = io.BytesIO(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read())
    decoder = cbor2.CBORDecoder(stream)
    out = []
    while stream.tell() < len(stream.getbuffer()):
        out.append(decoder.decode())
    return out


def test_cbor_zstd_batches_split_at_limit(start_router, tmp_path, target) -> None:
    router = _router(start_router, tmp_path, target.destination(format="cbor_zstd", every="500ms", limit=2,
                                                                prefix="prod"))
    sent = 0
    for name in ("otel_genai", "openllmetry"):
        _post_fixture(router, name)
    objects = wait_for(lambda: target.objects(), timeout=10)
    time.sleep(1.0)
    objects = target.objects()
    assert all(k.startswith("prod/ts-aperture-export-") and k.endswith(".cbor.zstd") for k in objects)
    records = [r for data in objects.values() for r in _records(data)]
    sent = len(records)
    assert sent >= 3 and all(len(_records(d)) <= 2 for d in objects.values())
    assert len(objects) == (sent + 1) // 2 or len(objects) >= sent // 2  # limit splits, names never collide
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    for r in records:
        assert r["ver"] == 2 and isinstance(r["id"], int) and r["timestamp"].endswith("Z")
        assert isinstance(r["capture"]["rawRequestBody"], bytes)


def test_privacy_leaves_no_content_in_either_format(start_router, tmp_path, target) -> None:
    router = _router(start_router, tmp_path, target.destination(format="json", trace_idle="200ms", privacy=True))
    for name in ("openrouter", "otel_genai", "openinference", "openllmetry", "langfuse"):
        _post_fixture(router, name)
    objects = wait_for(lambda: len(target.objects()) >= 5 and target.objects(), timeout=15)
    assert objects
    for data in objects.values():
        assert b"SECRET-" not in data
    docs = [orjson.loads(d) for d in objects.values()]
    assert any(o["model"] and o["usageDetails"] for doc in docs for o in doc["observations"])


def test_privacy_drops_the_aperture_capture(start_router, tmp_path, target) -> None:
    router = _router(start_router, tmp_path, target.destination(format="cbor_zstd", every="300ms", privacy=True))
    _post_fixture(router, "otel_genai")
    objects = wait_for(lambda: target.objects(), timeout=10)
    records = [r for d in objects.values() for r in _records(d)]
    assert records and all("capture" not in r for r in records)
    assert all(b"SECRET-" not in d for d in objects.values())
    assert any(r.get("usage") for r in records)


def test_otlp_json_objects_on_s3(start_router, tmp_path, moto) -> None:
    started = time.time()
    bucket = moto.bucket("raw-otlp")
    router = _router(start_router, tmp_path, moto.destination(bucket, format="otlp_json", prefix="lake",
                                                              rotate={"max_age": "300ms"}))
    request = make_request(spans=4, seed=5)
    assert router.post("/v1/traces", request.SerializeToString(), PB)[0] == 200
    objects = wait_for(lambda: moto.objects(bucket), timeout=10)
    (key,) = objects
    prefix, signal, date, name = key.split("/")
    assert (prefix, signal) == ("lake", "traces") and date in _dates(started)
    assert name.startswith("traces-") and name.endswith(".jsonl.gz")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from otlp_router.model import otlp_json
    lines = gzip.decompress(objects[key]).splitlines()
    assert otlp_json.decode(ExportTraceServiceRequest, lines[0]) == request


def test_prefix_ending_in_a_slash_is_refused(tmp_path) -> None:
    from otlp_router import config
    from otlp_router.settings import ConfigError
    import yaml
    text = yaml.safe_dump(base_config(tmp_path, destinations={"s": {
        "type": "s3", "bucket": "b", "region": "us-east-1", "format": "cbor_zstd", "prefix": "prod/"}}))
    with pytest.raises(ConfigError) as err:
        config.parse(text)
    assert err.value.path == "destinations.s.prefix" and "must not end with /" in err.value.problem


def test_uploads_wait_out_an_s3_outage(start_router, tmp_path, moto) -> None:
    from tests.s3server import Gate
    gate = Gate(moto.port)
    try:
        bucket = moto.bucket(f"outage-{next(_counter)}")
        destination = {**moto.destination(bucket, format="json", trace_idle="200ms"), "endpoint": gate.endpoint,
                       "retry": {"initial_interval": "100ms", "max_interval": "1s"}}
        router = _router(start_router, tmp_path, destination)
        gate.shut()
        sent = [make_request(spans=3, seed=s) for s in (11, 12, 13)]
        for request in sent:
            assert router.post("/v1/traces", request.SerializeToString(), PB)[0] == 200
        assert wait_for(lambda: "state failing: cannot reach the endpoint" in router.stderr, timeout=15)
        gate.open()
        objects = wait_for(lambda: len(moto.objects(bucket)) == 3 and moto.objects(bucket), timeout=60)
        assert objects and sorted(orjson.loads(v)["id"] for v in objects.values()) == \
            sorted(r.resource_spans[0].scope_spans[0].spans[0].trace_id.hex() for r in sent)
        assert "dead letter" not in router.stderr
    finally:
        gate.shut()


def test_check_puts_and_removes_a_probe_and_explains_failures(tmp_path, moto) -> None:
    import subprocess
    import sys
    import yaml
    bucket = moto.bucket("checked")
    good = moto.destination(bucket, format="json")
    missing = moto.destination("no-such-bucket", format="json")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path, destinations={"good": good, "missing": missing})))
    result = subprocess.run([sys.executable, "-m", "otlp_router", "check", "-c", str(path)], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "destination good (s3): ok: wrote and removed s3://checked/" in result.stdout
    assert "destination missing (s3): FAILED" in result.stdout and "does not exist" in result.stdout
    assert moto.objects(bucket) == {}


@pytest.mark.parametrize("fmt", ["json", "cbor_zstd"])
def test_a_replay_after_a_crash_does_not_create_a_second_object(tmp_path, fmt) -> None:
    """The same spool entries written again (acknowledgement lost in a crash) find their object."""
    import asyncio

    from otlp_router.destinations import build
    from otlp_router.model.batch import Batch
    from otlp_router.model.signals import TRACES
    from otlp_router.settings import Section
    from otlp_router.destinations.delivery import BatchSettings, Delivery, RetrySettings
    from otlp_router.spool.memory import MemorySpool
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from otlp_router.model import otlp_json

    request = otlp_json.decode(ExportTraceServiceRequest, (FIXTURES / "otel_genai.json").read_bytes())
    received = time.time() - 5

    async def write_once() -> None:
        settings = {"type": "file", "dir": str(tmp_path / "store"), "format": fmt,
                    **({"trace_idle": "10ms"} if fmt == "json" else {"every": "10ms"})}
        destination = build("store", Section(settings, "t.yaml", "destinations.store"))
        spool = MemorySpool("store", 1 << 20)
        delivery = Delivery(destination, spool, RetrySettings(), BatchSettings())
        await delivery.start()
        await spool.append(Batch(TRACES, None, 1, request.SerializeToString(), received=received))
        await delivery.stop(5.0)
        assert spool.pending_items == 0

    asyncio.run(write_once())
    first = sorted(p.name for p in (tmp_path / "store").rglob("*") if p.is_file())
    asyncio.run(write_once())
    assert sorted(p.name for p in (tmp_path / "store").rglob("*") if p.is_file()) == first
    assert str(int(received)) in first[0]


def _aperture_destination(target: Target) -> tuple[Any, list[str]]:
    """A destination writing Aperture objects to `target`, and the names its store reads back."""
    from otlp_router.destinations import build
    from otlp_router.settings import Section

    destination = build("store", Section(target.destination(format="cbor_zstd"), "t.yaml", "destinations.store"))
    reads: list[str] = []
    get = destination.store.get

    async def counted(key: str) -> bytes | None:
        reads.append(key)
        return await get(key)

    destination.store.get = counted
    return destination, reads


def _records_received_at(record_id: int, received: float) -> Any:
    from otlp_router.destinations.assembly import RecordGroup
    from otlp_router.destinations.formats.aperture import encode_record

    group = RecordGroup(0.0, 0.0, first_received=received)
    group.records.append(encode_record({"id": record_id, "ver": 2}))
    return group


def _export(destination: Any, groups: list[Any]) -> None:
    import asyncio

    async def run() -> None:
        await destination.start()
        for group in groups:
            await destination.export(group)
        await destination.stop()

    asyncio.run(run())


SECOND = 1_700_000_000


def test_objects_of_a_busy_second_take_the_seconds_after_it_without_reading_back_their_own(target,
                                                                                          monkeypatch) -> None:
    """More objects than MAX_NAME_READS with one first second all find a name: the names this
    process wrote are passed without a read (each would otherwise read back every earlier one)."""
    from otlp_router.destinations import storage

    monkeypatch.setattr(storage, "MAX_NAME_READS", 5)
    destination, reads = _aperture_destination(target)
    _export(destination, [_records_received_at(i, SECOND + 0.5) for i in range(12)])
    objects = target.objects()
    assert sorted(objects) == [f"ts-aperture-export-{SECOND + i}.cbor.zstd" for i in range(12)]
    assert reads == []
    for i in range(12):
        assert _records(objects[f"ts-aperture-export-{SECOND + i}.cbor.zstd"]) == [{"id": i, "ver": 2}]


def test_after_a_restart_each_name_taken_is_read_once_and_a_replay_finds_its_object(target) -> None:
    """A new process knows no names: it reads each taken one once (a replay finds its earlier
    write among them) and passes it unread from then on."""
    first, _ = _aperture_destination(target)
    _export(first, [_records_received_at(i, SECOND + 0.5) for i in range(4)])
    second, reads = _aperture_destination(target)
    replayed = _records_received_at(2, SECOND + 0.5)   # the third object again, acknowledgement lost
    _export(second, [replayed, _records_received_at(7, SECOND + 0.5), _records_received_at(8, SECOND + 0.5)])
    name = "ts-aperture-export-{}.cbor.zstd".format
    assert reads == [name(SECOND), name(SECOND + 1), name(SECOND + 2), name(SECOND + 3)]
    objects = target.objects()
    assert sorted(objects) == [name(SECOND + i) for i in range(6)]
    assert _records(objects[name(SECOND + 4)]) == [{"id": 7, "ver": 2}]


def test_taken_names_pass_other_bytes_only_and_keep_the_newest() -> None:
    from otlp_router.destinations.storage import TakenNames

    names = TakenNames()
    names.LIMIT = 2
    names.add("a", (3, 1))
    assert names.holds_other("a", (3, 2)) and names.holds_other("a", (4, 1))
    assert not names.holds_other("a", (3, 1))   # perhaps these very bytes: compared, not passed
    assert not names.holds_other("b", (3, 2))   # unknown: read
    names.add("b", (1, 1))
    names.add("a", (3, 1))   # met again: the newest now
    names.add("c", (1, 1))
    assert not names.holds_other("b", (9, 9)) and names.holds_other("a", (9, 9))


def test_a_missing_bucket_is_permanent_the_state_says_why_and_replay_delivers_once_it_exists(tmp_path, moto) -> None:
    """Access and bucket errors need an operator: dead letter (not retried forever),
    `failing` with the reason, and `otlp-router replay` once fixed."""
    import subprocess
    import sys

    import yaml

    from tests.support import RouterProcess
    bucket = f"later-{next(_counter)}"
    config = base_config(tmp_path, destinations={"store": moto.destination(bucket, format="json",
                                                                           trace_idle="50ms")})
    router = RouterProcess(config, tmp_path)
    sent = make_request(spans=3, seed=21)
    try:
        assert router.post("/v1/traces", sent.SerializeToString(), PB)[0] == 200
        assert wait_for(lambda: "kept in the dead letter" in router.stderr, timeout=20)
        status = orjson.loads(router.get_admin("/api/status")[2])
        [store] = [d for d in status["destinations"] if d["name"] == "store"]
        assert store["state"] == "failing" and "does not exist" in store["last_error"]
        assert store["dead_lettered"] == 3 and store["spool_items"] == 0
    finally:
        router.stop()
    moto.bucket(bucket)
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "otlp_router", "replay", "-c", str(tmp_path / "router.yaml")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "delivered 3 item(s)" in result.stdout and "does not exist" in result.stdout
    [document] = [orjson.loads(v) for v in moto.objects(bucket).values()]
    assert document["id"] == bytes([21] * 16).hex() and len(document["observations"]) == 3


@pytest.mark.parametrize("code, status, permanent", [
    ("NoSuchBucket", 404, True), ("AccessDenied", 403, True), ("InvalidAccessKeyId", 403, True),
    ("SignatureDoesNotMatch", 403, True), ("SlowDown", 503, False), ("InternalError", 500, False),
    ("ServiceUnavailable", 503, False), ("RequestTimeout", 400, False), ("TooManyRequests", 429, False)])
def test_store_errors_are_classified(code, status, permanent) -> None:
    import botocore.exceptions

    from otlp_router.destinations.stores.s3 import S3Settings, S3Store
    from otlp_router.settings import Section
    store = S3Store(S3Settings.read(Section({"bucket": "b", "region": "us-east-1"}, "t.yaml", "d")))
    error = botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")
    assert store._explain(error).permanent is permanent
    assert store._explain(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x")).permanent is False
    assert store._explain(botocore.exceptions.ReadTimeoutError(endpoint_url="http://x")).permanent is False


def _genai_span_json(trace_id: str, span_id: str) -> bytes:
    span = {"traceId": trace_id, "spanId": span_id, "name": "chat gpt-4o-mini", "kind": 3,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                           {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "3"}}]}
    return orjson.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [
        {"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "spans": [span]}]}]})


def _details_log_json(trace_id: str, span_id: str) -> bytes:
    record = {"timeUnixNano": "1700000000900000000", "traceId": trace_id, "spanId": span_id,
              "eventName": "gen_ai.client.inference.operation.details",
              "attributes": [{"key": "gen_ai.input.messages", "value": {"stringValue":
                              '[{"role":"user","parts":[{"type":"text","content":"secret prompt"}]}]'}},
                             {"key": "gen_ai.output.messages", "value": {"stringValue":
                              '[{"role":"assistant","parts":[{"type":"text","content":"secret answer"}]}]'}}]}
    untraced = {"timeUnixNano": "1700000000900000000", "body": {"stringValue": "no trace here"}}
    return orjson.dumps({"resourceLogs": [{"resource": {}, "scopeLogs": [
        {"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "logRecords": [record, untraced]}]}]})


@pytest.mark.parametrize("fmt", ["json", "cbor_zstd"])
@pytest.mark.parametrize("privacy", [False, True])
def test_genai_log_events_join_their_span_across_requests(start_router, tmp_path, privacy, fmt) -> None:
    """OpenAI-v2's event mode puts prompts and completions only in a log event: it arrives in a
    logs request of its own (here before its span) and joins the span in the trace's document,
    or in its Aperture record."""
    store = tmp_path / "store"
    window = {"trace_idle": "500ms"} if fmt == "json" else {"every": "1s"}
    config = base_config(tmp_path, destinations={"store": {"type": "file", "dir": str(store), "format": fmt,
                                                           **window}},
                         routes=[{"name": "genai", "destinations": ["store"], "signals": ["traces", "logs"],
                                  "privacy": privacy}])
    router = start_router(config)
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    assert router.post("/v1/logs", _details_log_json(trace_id, span_id), JS)[0] == 200
    assert router.post("/v1/traces", _genai_span_json(trace_id, span_id), JS)[0] == 200
    [(name, data)] = wait_for(lambda: [(p.name, p.read_bytes()) for p in store.rglob("*") if p.is_file()
                                       and not p.name.startswith(".")], timeout=10)
    if fmt == "json":
        assert name.startswith(trace_id)
        [o] = orjson.loads(data)["observations"]
        assert o["type"] == "GENERATION" and o["model"] == "gpt-4o-mini"
        prompt, answer = (o["input"], o["output"])
    else:
        [rec] = _records(data)
        assert rec["model"] == "gpt-4o-mini" and rec["capture_id"] == span_id
        capture = rec.get("capture") or {}
        prompt, answer = (capture.get("requestBody"), capture.get("responseBody"))
    if privacy:
        assert b"secret" not in data and prompt is None and answer is None
    else:
        assert "secret prompt" in orjson.dumps(prompt).decode() and "secret answer" in orjson.dumps(answer).decode()
    # The record without a trace (or span) id has no document or record to go in: the dead letter keeps it.
    dead = wait_for(lambda: list((tmp_path / "spool" / "store" / "dead").glob("*")), timeout=10)
    assert dead and b"no trace here" in b"".join(p.read_bytes() for p in dead if p.is_file())


def test_a_route_without_signals_sends_a_per_trace_store_spans_only(tmp_path) -> None:
    from otlp_router.config import load
    path = tmp_path / "router.yaml"
    path.write_text(orjson.dumps(base_config(tmp_path, destinations={
        "store": {"type": "file", "dir": str(tmp_path / "s"), "format": "json"},
        "lines": {"type": "file", "dir": str(tmp_path / "l"), "format": "otlp_json"}})).decode())
    [route] = load(path).routing.routes
    assert route.signals == {"traces", "logs", "metrics"}   # the OTLP JSON lines take every signal
    assert route.sends == {"store": {"traces"}, "lines": {"traces", "logs", "metrics"}}


def test_a_router_without_s3_destinations_does_not_load_boto3(tmp_path) -> None:
    """boto3 is 14 MB of RSS and 90 ms of start-up: loaded only for a destination that writes to S3."""
    import subprocess
    import sys
    script = (
        "import sys\n"
        "from otlp_router import server\n"
        "from otlp_router.destinations import build\n"
        "from otlp_router.settings import Section\n"
        f"build('store', Section({{'type': 'file', 'dir': {str(tmp_path)!r}, 'format': 'cbor_zstd'}}, 't.yaml', 'd'))\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')], 'boto3 loaded'\n"
        "build('s3', Section({'type': 's3', 'bucket': 'b', 'region': 'us-east-1'}, 't.yaml', 'd'))\n"
        "assert 'boto3' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
