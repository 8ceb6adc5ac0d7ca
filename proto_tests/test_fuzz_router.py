"""Fuzzing a running router over real sockets: hostile requests in, only 200 and 4xx out.

One router process (1 MiB body and message limits) receives a few thousand generated HTTP
requests -- damaged OTLP protobuf and JSON bodies from test_fuzz_decoders, random content types,
Content-Encodings (gzip, deflate, zstd, identity, bogus; bombs; truncated), methods and paths,
chunked or not -- over one keep-alive connection, and a few hundred gRPC Export calls with
damaged bytes. Then:

* every HTTP request gets an answer (the server may close a connection, but only after
  answering); the answer is 200 or 4xx, never 5xx, and it is the one the decoders give
  in-process for the same bytes: same status, same partial_success count, an error body that
  is a google.rpc.Status in the request's content type;
* every gRPC call ends OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED, again as the decoders say;
* afterwards the router is alive, accepts a valid request of every signal with 200, logged
  no traceback, wrote what it accepted in a form that reads back, and its resident memory
  stayed within `MAX_RSS`.

`HttpClient`, `http_requests`, `grpc_calls` and the `check_*` functions are shared with
bench/fuzz.py.
"""

from __future__ import annotations

import http.client
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import orjson
import pytest
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from otlp_router.model import otlp_json
from otlp_router.model.signals import SIGNALS, TRACES, Signal
from otlp_router.receivers import payload
from proto_tests.test_fuzz_decoders import (
    BOMB_SIZE,
    FUZZ,
    Outcome,
    ShortRepr,
    bombs,
    cases,
    check_decoding,
    protobuf_bodies,
    short,
)
from tests.support import RouterProcess, base_config, make_request

CAP = 1 << 20
# Baseline of the router process is ~70 MB (Python, grpcio, uvicorn, upb). A request holds at
# most CAP bytes after decompression; the costliest shape measured (JSON of empty objects)
# peaks at ~50 bytes of RSS per body byte (16 MiB took the router to 810 MiB), so ~50 MB for
# 1 MiB, and requests come one at a time. 300 MB leaves room for allocator fragmentation, yet
# a leak of 100 kB per request over these thousands of requests, or one bomb inflated past
# the cap (8 MiB+ as bytes, far more decoded), would cross it.
MAX_RSS = 300 << 20
EXPORT_PATHS = {s.http_path: s for s in SIGNALS.values()}
GRPC_OK = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


def router_config(workdir: Path) -> dict:
    config = base_config(workdir)
    config["receivers"]["otlp"]["http"]["max_request_body_size"] = CAP
    config["receivers"]["otlp"]["grpc"]["max_recv_msg_size"] = CAP
    return config


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants (workers), from /proc."""
    total = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # gone meanwhile
            continue
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(m.group(1)) * 1024 if m else 0
        todo.extend(map(int, children))
    return total


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------

class DroppedConnection(AssertionError):
    """The server closed a connection without answering the request sent on it."""


@dataclass(frozen=True, repr=False)
class HttpRequest(ShortRepr):
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    chunked: bool = False   # Transfer-Encoding: chunked instead of Content-Length

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name), None)

    def describe(self) -> str:
        return f"{self.method} {self.path} {self.headers} chunked={self.chunked} body={short(self.body, 200)}"

    def __repr__(self) -> str:
        return (f"HttpRequest({self.method!r}, {self.path!r}, {self.headers!r}, chunked={self.chunked}, "
                f"body={short(self.body)})")


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpClient:
    """One keep-alive connection, renewed when the server closes it."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self.connections = 0

    def send(self, request: HttpRequest) -> HttpAnswer:
        fresh = self._conn is None
        try:
            return self._send(request)
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as e:
            self.close()
            if fresh:
                raise DroppedConnection(f"no answer on a new connection: {e!r}\n{request.describe()}") from e
        # A kept-alive connection may have been closed by the server between requests (after an
        # answer that said so, or idle): that is not a dropped request, so send it again.
        try:
            return self._send(request)
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as e:
            self.close()
            raise DroppedConnection(f"no answer on a new connection: {e!r}\n{request.describe()}") from e

    def _send(self, request: HttpRequest) -> HttpAnswer:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.connections += 1
        conn = self._conn
        body = _chunks(request.body) if request.chunked else request.body
        try:
            conn.request(request.method, request.path, body=body, headers=request.headers,
                         encode_chunked=request.chunked)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer before the body is all sent (413 from Content-Length, a
            # malformed request) and close: its answer is still there to read.
            pass
        response = conn.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        return HttpAnswer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i:i + size]


_CONTENT_TYPES = ["application/x-protobuf", "application/protobuf", "application/json",
                  "application/json; charset=utf-8", "Application/JSON", "application/json; charset=latin-1",
                  "application/x-protobuf; proto=x", "text/plain", "", "multipart/form-data; boundary=x",
                  "application/json;;", "application/grpc", "*/*", "application/json\x7f", "application/x-protobuf\x00"]
_METHODS = ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "FOO", "post"]
# Not HTTP methods to the server's parser (llhttp): refused before the router sees the request.
_UNKNOWN_METHODS = {"FOO", "post"}
_OTHER_PATHS = ["/", "/v1/nope", "/v1/traces/x", "/V1/TRACES"]


def _header_text(text: str) -> str:
    """Text http.client can send as a header value (latin-1, no line breaks)."""
    return text.encode("latin-1", "replace").decode("latin-1").replace("\r", " ").replace("\n", " ")


@st.composite
def http_requests(draw: st.DrawFn) -> HttpRequest:
    signal = draw(st.sampled_from(list(SIGNALS.values())))
    choice = draw(st.integers(0, 99))
    if choice < 2:  # a few kB on the wire, 8 MiB inflated
        encoding = draw(st.sampled_from(sorted(bombs())))
        kind, body = draw(st.sampled_from([payload.PROTOBUF, payload.JSON])), bombs()[encoding]
    elif choice < 4:  # past the body limit as sent: answered from Content-Length, or while reading
        kind, encoding, body = payload.PROTOBUF, "identity", draw(st.sampled_from([CAP + 1, 2 * CAP])) * b"\0"
    else:
        c = draw(cases(signal))
        kind, encoding, body = c.kind, c.encoding, c.body
    content_type = "application/x-protobuf" if kind == payload.PROTOBUF else "application/json"
    if draw(st.integers(0, 9)) == 0:
        content_type = draw(st.sampled_from(_CONTENT_TYPES) | st.text(max_size=24))
    headers = {}
    if draw(st.integers(0, 19)):  # now and then no Content-Type at all
        headers["Content-Type"] = _header_text(content_type)
    if encoding or draw(st.booleans()):
        headers["Content-Encoding"] = _header_text(encoding)
    if draw(st.integers(0, 9)) == 0:
        headers[draw(st.sampled_from(["Authorization", "X-Api-Key", "Accept", "X-Junk"]))] = \
            _header_text(draw(st.text(max_size=16)))
    method = "POST" if draw(st.integers(0, 9)) else draw(st.sampled_from(_METHODS))
    path = signal.http_path if draw(st.integers(0, 19)) else draw(st.sampled_from(_OTHER_PATHS))
    if draw(st.integers(0, 19)) == 0:
        path += "?x=1"
    return HttpRequest(method, path, headers, body, chunked=draw(st.integers(0, 9)) == 0)


def expected_http(request: HttpRequest) -> tuple[int, Outcome | None] | None:
    """The status the router must answer (and the decoders' outcome behind a 200 or 400), or
    None when only "some 4xx" can be said (requests the HTTP parser itself refuses)."""
    if request.method in _UNKNOWN_METHODS or any(
            ord(c) < 32 and c != "\t" or ord(c) == 127 for v in request.headers.values() for c in v):
        return None
    signal = EXPORT_PATHS.get(request.path.split("?", 1)[0])
    if signal is None:
        return 404, None
    if request.method != "POST":
        return 405, None
    try:
        kind = payload.content_kind(request.header("content-type") or "")
    except payload.PayloadError as e:
        return e.status, None
    if len(request.body) > CAP:
        return 413, None
    outcome = check_decoding(signal, kind, request.body, request.header("content-encoding") or "", CAP)
    return outcome.status, outcome


def check_http_answer(request: HttpRequest, answer: HttpAnswer) -> None:
    """The router's answer is the one the decoders give in-process, in the right form."""
    context = f"{answer.status} {answer.body[:300]!r} for {request.describe()}"
    assert answer.status == 200 or 400 <= answer.status < 500, context
    expected = expected_http(request)
    if expected is None:
        assert 400 <= answer.status < 500, context
        return
    status, outcome = expected
    assert answer.status == status, f"expected {status} ({outcome}), got {context}"
    signal = EXPORT_PATHS.get(request.path.split("?", 1)[0])
    if signal is None or request.method == "HEAD":
        return
    if status == 405:
        assert answer.headers.get("allow") == "POST", context
        return
    # Answers are in the request's content type; JSON when that was not one of ours.
    try:
        is_json = payload.content_kind(request.header("content-type") or "") == payload.JSON
    except payload.PayloadError:
        is_json = True
    assert answer.headers.get("content-type") == ("application/json" if is_json else "application/x-protobuf"), \
        context
    if status == 200:
        response = signal.response_type()
        if is_json:
            response = otlp_json.decode(signal.response_type, answer.body)
        else:
            response.ParseFromString(answer.body)
        assert outcome is not None
        rejected = getattr(response.partial_success, signal.rejected_field)
        assert rejected == outcome.rejected, context
        assert bool(response.partial_success.error_message) == bool(outcome.rejected), context
    else:
        error = orjson.loads(answer.body) if is_json else _status_dict(answer.body)
        assert error.get("message") and error.get("code"), context


def _status_dict(body: bytes) -> dict:
    try:
        status = status_pb2.Status.FromString(body)
    except DecodeError:
        return {}
    return {"code": status.code, "message": status.message}


# ---------------------------------------------------------------------------------------------
# gRPC
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class GrpcCall(ShortRepr):
    signal: Signal
    body: bytes
    gzip: bool

    def describe(self) -> str:
        return f"{self.signal.name} gzip={self.gzip} body={short(self.body, 200)}"

    def __repr__(self) -> str:
        return f"GrpcCall({self.signal.name}, gzip={self.gzip}, body={short(self.body)})"


@st.composite
def grpc_calls(draw: st.DrawFn) -> GrpcCall:
    signal = draw(st.sampled_from(list(SIGNALS.values())))
    choice = draw(st.integers(0, 99))
    if choice < 2:  # small on the wire when compressed, past the limit once inflated
        return GrpcCall(signal, bytes(BOMB_SIZE), gzip=True)
    if choice < 4:
        return GrpcCall(signal, b"\0" * (CAP + 1), gzip=draw(st.booleans()))
    return GrpcCall(signal, draw(protobuf_bodies(signal)), gzip=draw(st.booleans()))


@dataclass
class GrpcClient:
    port: int
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def call(self, call: GrpcCall) -> tuple[grpc.StatusCode, bytes | None, str]:
        export = self.channel.unary_unary(f"/{call.signal.grpc_service}/Export")
        compression = grpc.Compression.Gzip if call.gzip else grpc.Compression.NoCompression
        try:
            body, state = export.with_call(call.body, timeout=30, compression=compression)
        except grpc.RpcError as e:
            return e.code(), None, e.details() or ""
        return state.code(), body, ""

    def close(self) -> None:
        self.channel.close()


def check_grpc_answer(call: GrpcCall, code: grpc.StatusCode, body: bytes | None, details: str) -> None:
    context = f"{code.name} {details!r} for {call.describe()}"
    assert code in GRPC_OK, context
    if len(call.body) > CAP:
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, context
        return
    outcome = check_decoding(call.signal, payload.PROTOBUF, call.body, "identity", CAP)
    assert code == (grpc.StatusCode.OK if outcome.status == 200 else grpc.StatusCode.INVALID_ARGUMENT), context
    if body is not None:
        response = call.signal.response_type.FromString(body)
        assert getattr(response.partial_success, call.signal.rejected_field) == outcome.rejected, context


# ---------------------------------------------------------------------------------------------
# Valid requests, for the health check afterwards
# ---------------------------------------------------------------------------------------------

def valid_request(signal: Signal) -> Message:
    if signal is TRACES:
        return make_request(spans=3)
    # Some shape of every other signal with valid items (no ids), built like the fuzzed ones.
    request = signal.request_type()
    scope = getattr(getattr(request, signal.resource_field).add(), signal.scope_field).add()
    item = getattr(scope, signal.items_field).add()
    if "name" in item.DESCRIPTOR.fields_by_name:
        item.name = "fuzz-check"
    return request


def written_lines(directory: Path, signal: Signal) -> list[bytes]:
    """The complete lines the file destination wrote for a signal so far (it may be mid-write)."""
    lines = []
    for path in sorted((directory / signal.name).rglob("*.jsonl")):
        complete, _, _ = path.read_bytes().rpartition(b"\n")
        lines.extend(line for line in complete.split(b"\n") if line)
    return lines


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    workdir = tmp_path_factory.mktemp("fuzz-router")
    router = RouterProcess(router_config(workdir), workdir)
    yield router
    try:
        router.stop()
    except RuntimeError:
        router.kill()
        raise


@pytest.fixture(scope="module")
def http_client(router: RouterProcess) -> Iterator[HttpClient]:
    client = HttpClient(router.http_port)
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc_client(router: RouterProcess) -> Iterator[GrpcClient]:
    client = GrpcClient(router.grpc_port)
    yield client
    client.close()


@pytest.fixture(scope="module")
def answers() -> Counter[str]:
    """Statuses seen across this module's tests."""
    return Counter()


@settings(FUZZ, max_examples=2500)
@given(request=http_requests())
def test_every_http_request_is_answered_200_or_4xx_as_the_decoders_decide(
        router: RouterProcess, http_client: HttpClient, answers: Counter[str], request: HttpRequest) -> None:
    answer = http_client.send(request)
    answers[f"http {answer.status}"] += 1
    check_http_answer(request, answer)


@settings(FUZZ, max_examples=300)
@given(call=grpc_calls())
def test_every_grpc_call_ends_ok_invalid_argument_or_resource_exhausted(
        grpc_client: GrpcClient, answers: Counter[str], call: GrpcCall) -> None:
    code, body, details = grpc_client.call(call)
    answers[f"grpc {code.name}"] += 1
    check_grpc_answer(call, code, body, details)


def test_the_router_is_healthy_after_the_fuzzing(router: RouterProcess, answers: Counter[str]) -> None:
    assert router.proc.poll() is None, router.stderr
    for signal in SIGNALS.values():
        status, _, body = router.post(signal.http_path, valid_request(signal).SerializeToString(),
                                      {"Content-Type": "application/x-protobuf"})
        assert status == 200, (signal.name, body)
    rss = rss_bytes(router.proc.pid)
    assert rss < MAX_RSS, f"router RSS {rss >> 20} MiB"
    assert "Traceback" not in router.stderr, router.stderr[-5000:]
    # What was accepted, however odd, was written in a form that reads back.
    for signal in SIGNALS.values():
        for line in written_lines(router.workdir / "out", signal):
            otlp_json.decode(signal.request_type, line)
    if answers:  # when run after the fuzzing tests: they reached every kind of answer
        assert {"http 200", "http 400", "http 404", "http 405", "http 413", "http 415", "grpc OK",
                "grpc INVALID_ARGUMENT", "grpc RESOURCE_EXHAUSTED"} <= set(answers), answers
