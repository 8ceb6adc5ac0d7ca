"""A small fake OpenAI-compatible server on 127.0.0.1, for instrumentation tests.

Serves `POST /v1/chat/completions` (plain, and `stream: true` as server-sent events with a
final usage chunk when `stream_options.include_usage` is set) and `POST /v1/embeddings`, with
a deterministic answer and usage that has cached and reasoning tokens. Runs in a daemon thread
on a free port; as a context manager it stops on exit, and it stops by itself after `lifetime`
seconds in any case. Standard library only, so it can also run as `python -m tests.fake_openai`.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini-2024-07-18"
COMPLETION = "Forty-two, says the fake model (COMPLETION-MARKER-7f3a)."
# Usage as OpenAI reports it: cached tokens inside prompt_tokens, reasoning inside completion_tokens.
PROMPT_TOKENS = 1843
CACHED_TOKENS = 1024
COMPLETION_TOKENS = 320
REASONING_TOKENS = 128
TOTAL_TOKENS = PROMPT_TOKENS + COMPLETION_TOKENS
EMBEDDING_TOKENS = 8
CREATED = 1_700_000_000


def usage() -> dict[str, Any]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": TOTAL_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def completion(request_number: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake{request_number:04d}",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": COMPLETION, "refusal": None}}],
        "usage": usage(),
    }


def stream_chunks(request_number: int, include_usage: bool) -> list[dict[str, Any]]:
    base = {"id": f"chatcmpl-fake{request_number:04d}", "object": "chat.completion.chunk", "created": CREATED,
            "model": MODEL, "system_fingerprint": "fp_fake", "service_tier": "default"}
    extra = {"usage": None} if include_usage else {}
    words = COMPLETION.split(" ")
    pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    chunks = [{**base, **extra, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                             "logprobs": None, "finish_reason": None}]}]
    for piece in pieces:
        chunks.append({**base, **extra, "choices": [{"index": 0, "delta": {"content": piece},
                                                     "logprobs": None, "finish_reason": None}]})
    chunks.append({**base, **extra, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                                 "finish_reason": "stop"}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": usage()})
    return chunks


def embeddings(request: dict[str, Any]) -> dict[str, Any]:
    inputs = request.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    return {"object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": i, "embedding": [0.125, -0.25, 0.5, 0.0625]}
                     for i in range(count)],
            "usage": {"prompt_tokens": EMBEDDING_TOKENS * count, "total_tokens": EMBEDDING_TOKENS * count}}


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_fake")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send_json(404, {"error": {"message": f"no such path {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        path = self.path.split("?", 1)[0]
        number = self.server.record(path, request)
        if path.endswith("/chat/completions"):
            if request.get("stream"):
                include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                self._stream(stream_chunks(number, include_usage))
            else:
                self._send_json(200, completion(number))
        elif path.endswith("/embeddings"):
            self._send_json(200, embeddings(request))
        else:
            # e.g. the Langfuse SDK's own API calls, when pointed here: answered, never needed
            self._send_json(404, {"error": {"message": f"no such path {path}", "type": "invalid_request_error"}})

    def _stream(self, chunks: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("x-request-id", "req_fake")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def record(self, path: str, request: dict[str, Any]) -> int:
        with self._lock:
            self.requests.append((path, request))
            return len(self.requests)


class FakeOpenAI:
    """The fake server; `base_url` is what an OpenAI client takes (`http://127.0.0.1:PORT/v1`)."""

    def __init__(self, lifetime: float = 600.0) -> None:
        self._server = _Server()
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True, name="fake-openai")
        self._thread.start()
        # stops by itself even if nobody calls stop()
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        self._stopped = False

    @property
    def requests(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self._server.requests)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> "FakeOpenAI":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


if __name__ == "__main__":
    with FakeOpenAI(lifetime=60) as server:
        print(server.base_url, flush=True)
        time.sleep(60)
