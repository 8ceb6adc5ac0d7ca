"""Never lose an accepted span: outages, kill -9, full spools, dead letters. Real processes and sockets."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time

import grpc
import orjson
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.downstream import HttpSink, Reply
from tests.support import AckedLoad, RouterProcess, base_config, numbered_request, wait_for

PB = {"Content-Type": "application/x-protobuf"}
FAST_RETRY = {"initial_interval": "50ms", "max_interval": "500ms", "max_elapsed": "0s"}  # 0: retry forever


def _config(tmp_path, sink_url: str, **spool) -> dict:
    config = base_config(tmp_path, destinations={"down": {
        "type": "otlp_http", "endpoint": sink_url, "retry": FAST_RETRY, "batch": {"flush_interval": "10ms"},
        "timeout": "2s"}})
    config["spool"].update(spool)
    return config


def test_a_downstream_outage_under_load_loses_nothing(start_router, tmp_path) -> None:
    sink = HttpSink()
    port = sink.port
    sink.close()  # down from the start
    router = start_router(_config(tmp_path, f"http://127.0.0.1:{port}/v1/traces"))
    load = AckedLoad([router])
    load.start()
    time.sleep(2.0)
    sink = HttpSink(port)
    try:
        time.sleep(1.0)
        load.done.set()
        load.join(10)
        assert load.acked
        assert wait_for(lambda: load.acked <= sink.span_ids(), timeout=30)
        assert len(sink.span_ids()) == len(load.acked)  # distinct out == acknowledged in
    finally:
        sink.close()


def test_kill_9_at_random_points_loses_no_acknowledged_span(tmp_path) -> None:
    sink = HttpSink()
    config = _config(tmp_path, sink.url)
    router_ref = [RouterProcess(config, tmp_path)]
    load = AckedLoad(router_ref)
    load.start()
    rng = random.Random(7)
    try:
        for _ in range(4):
            time.sleep(rng.uniform(0.3, 1.2))
            router_ref[0].proc.send_signal(signal.SIGKILL)
            router_ref[0].proc.wait(10)
            router_ref[0].kill()
            router_ref[0] = RouterProcess(config, tmp_path)
        time.sleep(0.5)
        load.done.set()
        load.join(10)
        assert wait_for(lambda: load.acked <= sink.span_ids(), timeout=30), \
            f"lost {len(load.acked - sink.span_ids())} of {len(load.acked)}"
        print(f"acked={len(load.acked)} delivered={len(sink.span_ids())} "
              f"duplicates={len(sink.spans()) - len(sink.span_ids())}")
    finally:
        router_ref[0].stop()
        sink.close()


def test_recovery_report_for_a_torn_spool_at_start_up(tmp_path) -> None:
    sink = HttpSink()
    sink.close()
    config = _config(tmp_path, sink.url)
    router = RouterProcess(config, tmp_path)
    for n in range(3):
        assert router.post("/v1/traces", numbered_request(n).SerializeToString(), PB)[0] == 200
    router.proc.send_signal(signal.SIGKILL)
    router.proc.wait(10)
    router.kill()
    (segment,) = (tmp_path / "spool" / "down").glob("*.seg")
    segment.write_bytes(segment.read_bytes()[:-15])  # the end marker (8 bytes) and 7 of the last record's
    sink = HttpSink(sink.port)
    try:
        router = RouterProcess(config, tmp_path)
        assert "torn or corrupt record" in router.stderr and "recovered 2 record(s)" in router.stderr
        assert wait_for(lambda: len(sink.span_ids()) == 20)
        router.stop()
    finally:
        router.kill()
        sink.close()


def test_a_full_spool_pushes_back_only_on_its_routes_and_the_sdk_delivers_everything(start_router, tmp_path) -> None:
    sink = HttpSink()
    port = sink.port
    sink.close()
    config = base_config(tmp_path, destinations={
        "slow": {"type": "otlp_http", "endpoint": f"http://127.0.0.1:{port}/v1/traces", "retry": FAST_RETRY,
                 "batch": {"flush_interval": "10ms"}},
        "local": {"type": "file", "dir": str(tmp_path / "out"), "format": "otlp_json"}},
        routes=[{"name": "llm", "match": {"resource": "service.name", "equals": "sdk-full"}, "destinations": ["slow"]},
                {"name": "rest", "default": True, "destinations": ["local"]}])
    config["spool"]["max_bytes"] = "20KiB"
    router = start_router(config)
    # Fill the spool of `slow` so the next request to it is refused.
    refused = None
    for n in range(100):
        request = numbered_request(n)
        request.resource_spans[0].resource.attributes[0].value.string_value = "sdk-full"
        status, headers, _ = router.post("/v1/traces", request.SerializeToString(), PB)
        if status == 429:
            refused = headers
            break
    assert refused is not None and int(refused["retry-after"]) >= 1
    # Other routes keep flowing.
    assert router.post("/v1/traces", numbered_request(500).SerializeToString(), PB)[0] == 200
    with grpc.insecure_channel(f"127.0.0.1:{router.grpc_port}") as channel:
        request = numbered_request(501)
        request.resource_spans[0].resource.attributes[0].value.string_value = "sdk-full"
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(
                request.SerializeToString(), timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The SDK's exporter retries RESOURCE_EXHAUSTED; once the downstream is back, all arrives.
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-full"}))
    provider.add_span_processor(BatchSpanProcessor(GrpcExporter(endpoint=f"127.0.0.1:{router.grpc_port}",
                                                                insecure=True, timeout=30)))
    tracer = provider.get_tracer("t")
    ids = set()
    for i in range(20):
        with tracer.start_as_current_span(f"sdk-{i}") as span:
            ids.add(span.get_span_context().span_id.to_bytes(8, "big"))
    flusher = threading.Thread(target=provider.force_flush, args=(30_000,), daemon=True)
    flusher.start()
    time.sleep(1.0)
    sink = HttpSink(port)
    try:
        flusher.join(40)
        provider.shutdown()
        assert wait_for(lambda: ids <= sink.span_ids(), timeout=30)
    finally:
        sink.close()


def test_a_rejected_batch_goes_to_the_dead_letter_and_replay_delivers_it(tmp_path) -> None:
    sink = HttpSink()
    sink.script = [Reply(400, body=b"unknown dataset")]
    config = _config(tmp_path, sink.url)
    router = RouterProcess(config, tmp_path)
    sent = numbered_request(1)
    try:
        assert router.post("/v1/traces", sent.SerializeToString(), PB)[0] == 200
        assert wait_for(lambda: "kept in the dead letter" in router.stderr)
        router.stop()
        assert not sink.span_ids()
        (tmp_path / "router.yaml").write_text(yaml.safe_dump(config))
        result = subprocess.run([sys.executable, "-m", "otlp_router", "replay", "-c", str(tmp_path / "router.yaml")],
                                capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "delivered 10 item(s) (first rejected: HTTP 400: unknown dataset)" in result.stdout
        assert sink.span_ids() == {s.span_id for s in sent.resource_spans[0].scope_spans[0].spans}
        assert not list((tmp_path / "spool" / "down" / "dead").glob("*.dead"))
    finally:
        router.kill()
        sink.close()


def test_a_full_disk_pushes_back_and_recovers_once_space_is_freed(tmp_path) -> None:
    """The spool's files may not grow past 64 KiB (RLIMIT_FSIZE stands in for a full
    disk): appends fail, clients get 429, and once the downstream takes the
    backlog the acknowledged segments go and appends succeed again."""
    import resource
    sink = HttpSink()
    port = sink.port
    sink.close()
    config = _config(tmp_path, f"http://127.0.0.1:{port}/v1/traces")
    limit = 64 * 1024

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    router = RouterProcess(config, tmp_path, preexec_fn=small_files)
    try:
        statuses = [router.post("/v1/traces", numbered_request(n).SerializeToString(), PB)[:2]
                    for n in range(40)]
        refused = [h for s, h in statuses if s == 429]
        assert refused and int(refused[0]["retry-after"]) >= 1
        assert wait_for(lambda: "otlp_router_spool_write_errors_total" in router.get_admin("/metrics")[2].decode())
        accepted = sum(1 for s, _ in statuses if s == 200)
        sink = HttpSink(port)
        assert wait_for(lambda: len(sink.span_ids()) == accepted * 10, timeout=20)
        later = numbered_request(100)
        assert wait_for(lambda: router.post("/v1/traces", later.SerializeToString(), PB)[0] == 200, timeout=10)
        assert wait_for(lambda: {s.span_id for s in later.resource_spans[0].scope_spans[0].spans} <= sink.span_ids())
    finally:
        router.stop()
        sink.close()


@pytest.mark.parametrize("kind", ["s3", "otlp"])
def test_sigterm_with_an_unreachable_destination_ends_in_time_and_keeps_the_spool(tmp_path, moto, kind) -> None:
    """Shutdown with a destination that cannot be written ends within
    shutdown_timeout plus a second; what it did not deliver is still in the
    spool at the next start (issue 13, finding 5)."""
    from tests.s3server import Gate
    bucket = moto.bucket(f"sigterm-{kind}")
    gate = Gate(moto.port)
    sink = HttpSink()
    port = sink.port
    sink.close()
    destination = {**moto.destination(bucket, format="json", trace_idle="100ms"), "endpoint": gate.endpoint} \
        if kind == "s3" else {"type": "otlp_http", "endpoint": f"http://127.0.0.1:{port}", "timeout": "30s"}
    config = base_config(tmp_path, destinations={"down": {**destination, "retry": FAST_RETRY}},
                         shutdown_timeout="1s")
    gate.shut()
    router = RouterProcess(config, tmp_path)
    sent = [numbered_request(n) for n in range(5)]
    ids = {s.span_id for r in sent for s in r.resource_spans[0].scope_spans[0].spans}
    try:
        for request in sent:
            assert router.post("/v1/traces", request.SerializeToString(), PB)[0] == 200
        assert wait_for(lambda: "state failing" in router.stderr, timeout=15)
        assert router.stop(timeout=1.0 + 1.0 + 2.0) == 0   # shutdown_timeout, a second, the interpreter's exit
        assert "stay in the spool for the next start" in router.stderr
    finally:
        router.kill()
    gate.open()
    sink = HttpSink(port)
    router = RouterProcess(config, tmp_path)
    try:
        if kind == "s3":
            def written() -> set[bytes]:
                docs = [orjson.loads(v) for v in moto.objects(bucket).values()]
                return {bytes.fromhex(o["id"]) for d in docs for o in d["observations"]}
            assert wait_for(lambda: ids <= written(), timeout=30)
        else:
            assert wait_for(lambda: ids <= sink.span_ids(), timeout=30)
        assert "dead letter" not in router.stderr
    finally:
        router.stop()
        sink.close()
        gate.shut()


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 512 KiB filesystem (tmpfs), mounted for the test and always unmounted."""
    import os
    directory = tmp_path / "small"
    directory.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the RLIMIT_FSIZE test stands in")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(directory)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, stdin=subprocess.DEVNULL)


def test_a_full_disk_under_a_local_store_is_waited_out_not_dead_lettered(tmp_path, small_filesystem) -> None:
    """ENOSPC writing a stored object is retryable: once space is back the
    documents are written by themselves, and nothing went to the dead letter."""
    filler = small_filesystem / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while f.write(b"x" * 4096):
                pass
        except OSError:
            pass   # full
    config = base_config(tmp_path, destinations={"store": {
        "type": "file", "dir": str(small_filesystem / "store"), "format": "json", "trace_idle": "50ms",
        "retry": FAST_RETRY}})
    router = RouterProcess(config, tmp_path)
    sent = [numbered_request(n, spans=3) for n in range(4)]
    try:
        for request in sent:
            assert router.post("/v1/traces", request.SerializeToString(), PB)[0] == 200
        assert wait_for(lambda: "No space left on device" in router.stderr, timeout=15)
        filler.unlink()

        def written() -> set[bytes]:
            docs = [orjson.loads(p.read_bytes()) for p in (small_filesystem / "store").rglob("*.json")]
            return {bytes.fromhex(o["id"]) for d in docs for o in d["observations"]}
        ids = {s.span_id for r in sent for s in r.resource_spans[0].scope_spans[0].spans}
        assert wait_for(lambda: written() == ids, timeout=20)
        assert wait_for(lambda: "state ok" in router.stderr, timeout=10)
        assert "dead letter" not in router.stderr
    finally:
        router.stop()
