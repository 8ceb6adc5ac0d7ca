"""Tailscale Aperture export records: one CBOR map per model call (GenAI span).

A batch object is one zstd frame holding a CBOR sequence (RFC 8742: maps one
after another, not an array), readable with `zstandard` + `cbor2` alone and by
third-party Aperture export tools. Record fields follow Aperture's export
layout (schema version 2); `capture`, which holds headers and bodies, is left
out in privacy mode.

Typed readers (Go structs and the like) rely on one type per field, so unknown
strings are "" rather than absent, except where Aperture itself leaves a key
out (`usage` members, `estimated_cost`). As in Aperture's exports,
`requestBody` / `responseBody` are text (the JSON of the span's input / output,
or the text itself when that is a plain string) and `rawRequestBody` /
`rawResponseBody` the same as CBOR byte strings.

`api_type` says which API the call spoke. A request path on the span decides it
when there is one (`_PATH_API_TYPES`); otherwise the provider (or, without one,
the model's name: claude…, gpt-…, gemini…) and the operation do
(`_PROVIDER_FAMILIES`, then `_API_TYPES`), and what neither knows is "unknown":

    provider family                 chat / none       text_completion       embeddings         responses
    openai (openai, azure…openai)   oai_completions   oai_text_completions  oai_embeddings     oai_responses
    openai_compatible (openrouter,  oai_completions   oai_text_completions  oai_embeddings     -
      groq, deepseek, mistral_ai, x_ai, perplexity, azure.ai.inference, ollama, …)
    anthropic                       ant_messages      ant_messages          -                  -
    gemini (gcp.gemini, gcp.gen_ai, gai_generate_content  (same)            gai_embed_content  -
      google)
    vertex (gcp.vertex_ai)          vertex_generate_content (same)          -                  -
    bedrock (aws.bedrock)           bedrock_model_invoke  (same)            (same)             -

Spans relayed by OpenRouter Broadcast name the upstream provider, but the
client spoke OpenRouter's OpenAI-compatible API, so they count as
openai_compatible.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any

import cbor2
import orjson
import zstandard
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from otlp_router.destinations.formats.trace_json import SpanRef, rfc3339
from otlp_router.model.attributes import value_of
from otlp_router.model.genai import GenAIView

VERSION = 2

# api_type → request path; "{model}" stands for the record's model.
API_PATHS: dict[str, str] = {
    "oai_completions": "/v1/chat/completions",
    "oai_text_completions": "/v1/completions",
    "oai_responses": "/v1/responses",
    "oai_embeddings": "/v1/embeddings",
    "ant_messages": "/v1/messages",
    "gai_generate_content": "/v1beta/models/{model}:generateContent",
    "gai_embed_content": "/v1beta/models/{model}:embedContent",
    "bedrock_model_invoke": "/model/{model}/invoke",
}

_PATH_API_TYPES: tuple[tuple[str, str], ...] = (   # path ending → api_type; longer endings first
    ("/chat/completions", "oai_completions"),
    ("/completions", "oai_text_completions"),
    ("/responses", "oai_responses"),
    ("/embeddings", "oai_embeddings"),
    ("/messages", "ant_messages"),
    (":generateContent", "gai_generate_content"),
    (":streamGenerateContent", "gai_generate_content"),
    (":embedContent", "gai_embed_content"),
)

# Provider names (lowercased) as the conventions and gateways spell them → provider family.
_PROVIDER_FAMILIES: dict[str, str] = {
    **dict.fromkeys(("openai", "azure.ai.openai", "az.ai.openai", "azure", "azure_openai"), "openai"),
    **dict.fromkeys(("openrouter", "azure.ai.inference", "az.ai.inference", "groq", "deepseek", "mistral_ai",
                     "mistralai", "x_ai", "xai", "perplexity", "together_ai", "together", "fireworks", "ollama",
                     "vllm"), "openai_compatible"),
    "anthropic": "anthropic",
    **dict.fromkeys(("gcp.gemini", "gcp.gen_ai", "gemini", "google", "google ai studio"), "gemini"),
    **dict.fromkeys(("gcp.vertex_ai", "vertex_ai", "vertexai", "google vertex"), "vertex"),
    **dict.fromkeys(("aws.bedrock", "bedrock", "amazon bedrock"), "bedrock"),
}

# Without a provider, the model names its maker (Langfuse spans, for one, carry no provider).
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("claude", "anthropic"), ("gemini", "gemini"), ("gpt-", "openai"), ("chatgpt", "openai"), ("o1", "openai"),
    ("o3", "openai"), ("o4", "openai"), ("text-embedding-3", "openai"), ("text-embedding-ada", "openai"),
)

# gen_ai.operation.name → the kind of call; without one, EMBEDDING spans embed and the rest chat.
_OPERATION_KINDS = {"chat": "chat", "generate_content": "chat", "text_completion": "text_completion",
                    "embeddings": "embeddings", "responses": "responses"}

_API_TYPES: dict[tuple[str, str], str] = {
    ("openai", "chat"): "oai_completions",
    ("openai", "text_completion"): "oai_text_completions",
    ("openai", "embeddings"): "oai_embeddings",
    ("openai", "responses"): "oai_responses",
    ("openai_compatible", "chat"): "oai_completions",
    ("openai_compatible", "text_completion"): "oai_text_completions",
    ("openai_compatible", "embeddings"): "oai_embeddings",
    ("anthropic", "chat"): "ant_messages",
    ("anthropic", "text_completion"): "ant_messages",
    ("gemini", "chat"): "gai_generate_content",
    ("gemini", "text_completion"): "gai_generate_content",
    ("gemini", "embeddings"): "gai_embed_content",
    ("vertex", "chat"): "vertex_generate_content",
    ("vertex", "text_completion"): "vertex_generate_content",
    ("bedrock", "chat"): "bedrock_model_invoke",
    ("bedrock", "text_completion"): "bedrock_model_invoke",
    ("bedrock", "embeddings"): "bedrock_model_invoke",
}

# Custom metadata OpenRouter Broadcast puts on every span it relays.
_OPENROUTER_MARKERS = ("openrouter.provider_slug", "openrouter.api_key_name")

_NODE_KEYS = ("host.id", "service.instance.id", "host.name")

# Span attributes read here besides the GenAI view, in one pass per record.
_SCANNED_PREFIXES = ("http.", "url.", "gen_ai.tool.")
_PATH_KEYS = ("http.route", "url.path", "http.target")   # best first
_STATUS_KEYS = ("http.response.status_code", "http.status_code")
_REQUEST_HEADER = "http.request.header."
_RESPONSE_HEADER = "http.response.header."
_TOOL_KEYS = {"gen_ai.tool.call.id": "id", "gen_ai.tool.name": "name", "gen_ai.tool.call.arguments": "arguments"}
# Credentials never leave in a capture, whatever the span carried.
_SECRET_HEADERS = frozenset(("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
                             "api-key", "x-goog-api-key"))

# Content items that are tool calls: OTel GenAI parts, Anthropic blocks, OpenAI Responses items.
_CALL_TYPES = frozenset(("tool_call", "tool_use", "function_call"))


def record(ref: SpanRef, view: GenAIView, *, record_id: int, privacy: bool,
           api_key_name: str | None) -> dict[str, Any] | None:
    """The Aperture record of a span; None when the span is not a model call."""
    if not view.is_genai:
        return None
    span = ref.span

    found: dict[str, Any] = {}
    request_headers: dict[str, list[str]] = {}
    response_headers: dict[str, list[str]] = {}
    tool: dict[str, Any] = {}
    for kv in span.attributes:
        key = kv.key
        if not key.startswith(_SCANNED_PREFIXES):
            continue
        if key in _PATH_KEYS or key in _STATUS_KEYS:
            found[key] = value_of(kv.value)
        elif privacy:
            continue   # the rest only goes into the capture
        elif key.startswith(_REQUEST_HEADER):
            _add_header(request_headers, key[len(_REQUEST_HEADER):], value_of(kv.value))
        elif key.startswith(_RESPONSE_HEADER):
            _add_header(response_headers, key[len(_RESPONSE_HEADER):], value_of(kv.value))
        elif key in _TOOL_KEYS:
            tool[_TOOL_KEYS[key]] = value_of(kv.value)

    model = view.model or ""
    request_path = next((path for key in _PATH_KEYS if (path := _path(found.get(key))) is not None), None)
    api_type = _api_type(view, request_path)
    path = request_path
    if path is None:
        path = API_PATHS.get(api_type, "")
        if "{model}" in path:
            path = path.replace("{model}", model) if model else ""
    status_code = next((code for key in _STATUS_KEYS if (code := _status(found.get(key))) is not None),
                       500 if span.status.code == Status.STATUS_CODE_ERROR else 200)

    # Aperture's meanings, not Langfuse's buckets: the counts as the provider reported them, cache
    # reads inside input_tokens and reasoning inside output_tokens, each also given on its own.
    usage: dict[str, int] = {}
    for key, count in (("input_tokens", view.input_tokens), ("output_tokens", view.output_tokens),
                       ("cached_tokens", view.cached_tokens), ("reasoning_tokens", view.reasoning_tokens)):
        if count is not None:
            usage[key] = count

    login_name = view.user_id or api_key_name or _text(view.metadata.get("openrouter.api_key_name")) or ""
    stable_node_id = next((text for key in _NODE_KEYS if (text := _text(ref.resource.get(key)))), "")
    timestamp = rfc3339(span.start_time_unix_nano, 9)
    capture_id = span.span_id.hex()
    session_id = view.session_id or ""
    elapsed = span.end_time_unix_nano - span.start_time_unix_nano

    out: dict[str, Any] = {
        "id": record_id,
        "ver": VERSION,
        "timestamp": timestamp,
        "identity": {"login_name": login_name, "stable_node_id": stable_node_id},
        "model": model,
        "api_type": api_type,
        "usage": usage,
    }
    if view.cost is not None:
        # The basis is the model priced: the price table's id when the router estimated the cost.
        basis = view.cost_estimate.model if view.cost_estimate is not None else model
        out["estimated_cost"] = {"dollars": view.cost, "cost_basis": basis, "usage": dict(usage)}
    out["duration_ms"] = (elapsed + 500_000) // 1_000_000 if span.end_time_unix_nano and elapsed > 0 else 0
    out["capture_id"] = capture_id
    out["session_id"] = session_id
    out["path"] = path
    out["status_code"] = status_code
    if privacy:
        return out

    tool_use = _tool_uses(view.output)
    if "id" in tool or "name" in tool:
        tool_use.append({"id": tool.get("id"), "name": tool.get("name"), "arguments": tool.get("arguments")})
    request_body, raw_request = _body(view.input)
    response_body, raw_response = _body(view.output)
    out["capture"] = {
        "id": capture_id,
        "model": model,
        "startTime": timestamp,
        "loginName": login_name,
        "stableNodeId": stable_node_id,
        "tags": list(view.tags),
        "statusCode": status_code,
        "path": path,
        "toolUseData": tool_use,
        "requestHeaders": request_headers,
        "responseHeaders": response_headers,
        "requestBody": request_body,
        "responseBody": response_body,
        "rawRequestBody": raw_request,
        "rawResponseBody": raw_response,
        "sessionId": session_id,
    }
    return out


def encode_records(records: Sequence[dict[str, Any]]) -> bytes:
    """One zstd frame holding the records as a CBOR sequence."""
    return compress_records([encode_record(rec) for rec in records])


def encode_record(record: dict[str, Any]) -> bytes:
    """One record's CBOR (a quarter of the record's size in memory, while an object fills)."""
    return cbor2.dumps(record)


def compress_records(encoded: Sequence[bytes]) -> bytes:
    """One zstd frame holding these CBOR-encoded records, in order."""
    stream = RecordStream()
    for rec in encoded:
        stream.append(rec)
    return stream.finish()


class RecordStream:
    """An object's records, compressed as they come: an object filling with thousands of
    records holds their compressed bytes (a few percent of them), not the records. Until
    it is finished a record can still be replaced (a log event joined its span); only then
    is the object decompressed and compressed again. The bytes are those of
    `compress_records` of the same records."""

    def __init__(self) -> None:
        self._compressor = zstandard.ZstdCompressor().compressobj()
        self._chunks: list[bytes] = []
        self._lengths: list[int] = []
        self._replaced: dict[int, bytes] = {}
        self._finished: bytes | None = None

    def __len__(self) -> int:
        return len(self._lengths)

    def append(self, record: bytes) -> None:
        self.extend(record, (len(record),))

    def extend(self, records: bytes, lengths: Sequence[int]) -> None:
        """Records one after another, `lengths` saying where each ends (one compress call for
        a request's records)."""
        assert self._finished is None, "an object is not added to once finished"
        chunk = self._compressor.compress(records)
        if chunk:
            self._chunks.append(chunk)
        self._lengths.extend(lengths)

    def replace(self, index: int, record: bytes) -> None:
        assert self._finished is None, "an object is not changed once finished"
        self._replaced[index] = record

    def finish(self) -> bytes:
        """The object's bytes: one zstd frame of the records in order (the same bytes every
        time: an export that is retried encodes the object again)."""
        if self._finished is None:
            self._chunks.append(self._compressor.flush())
            data = b"".join(self._chunks)
            self._chunks = []
            if self._replaced:
                records = self._split(data)
                for index, record in self._replaced.items():
                    records[index] = record
                    self._lengths[index] = len(record)
                data = compress_records(records)
            self._finished = data
        return self._finished

    def records(self) -> list[bytes]:
        """The records, as the finished object holds them."""
        return self._split(self.finish()) if self._lengths else []

    def _split(self, data: bytes) -> list[bytes]:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        out, at = [], 0
        for length in self._lengths:
            out.append(raw[at:at + length])
            at += length
        return out


def decode_records(data: bytes) -> Iterator[dict[str, Any]]:
    """The records of an export object (any number of zstd frames), in order."""
    stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True))
    decoder = cbor2.CBORDecoder(stream)
    # Peeking tells the end of the data from a record cut short (which raises).
    while stream.peek(1):
        yield decoder.decode()


def _api_type(view: GenAIView, request_path: str | None) -> str:
    if request_path is not None:
        for ending, api_type in _PATH_API_TYPES:
            if request_path.endswith(ending):
                return api_type
    if any(marker in view.metadata for marker in _OPENROUTER_MARKERS):
        family: str | None = "openai_compatible"
    elif view.provider:
        family = _PROVIDER_FAMILIES.get(view.provider.lower())
    else:
        model = (view.model or "").lower()
        family = next((maker for prefix, maker in _MODEL_PREFIXES if model.startswith(prefix)), None)
    if family is None:
        return "unknown"
    kind = _OPERATION_KINDS.get(view.operation or "") or ("embeddings" if view.type == "EMBEDDING" else "chat")
    return _API_TYPES.get((family, kind), "unknown")


def _path(value: Any) -> str | None:
    """A request path without its query (which may hold a key, as Gemini's ?key= does)."""
    if not isinstance(value, str):
        return None
    path = value.split("?", 1)[0].rstrip("/")
    return path or None


def _status(value: Any) -> int | None:
    if isinstance(value, str) and value.isdigit():
        try:
            value = int(value)
        except ValueError:   # digits int() refuses ("²"), or more than its digit limit
            return None
    return value if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599 else None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _add_header(headers: dict[str, list[str]], name: str, value: Any) -> None:
    if not name or name.lower() in _SECRET_HEADERS:
        return
    values = value if isinstance(value, list) else [value]
    headers[name] = [v if isinstance(v, str) else str(v) for v in values if v is not None]


def _body(value: Any) -> tuple[str | None, bytes]:
    """A body as text and as bytes: a plain string as it is, anything else as JSON."""
    if value is None:
        return None, b""
    if isinstance(value, str):
        return value, value.encode()
    raw = orjson.dumps(value)
    return raw.decode(), raw


def _tool_uses(output: Any) -> list[dict[str, Any]]:
    """The tool calls in a span's output, whichever message shape holds them."""
    if isinstance(output, list):
        messages = output
    elif isinstance(output, dict):
        if isinstance(output.get("choices"), list):      # an OpenAI chat completion
            messages = [c.get("message") or c.get("delta") for c in output["choices"] if isinstance(c, dict)]
        elif isinstance(output.get("output"), list):     # an OpenAI Responses response
            messages = output["output"]
        else:                                            # one message, or an Anthropic Messages response
            messages = [output]
    else:
        return []
    uses: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("message"), dict):   # an OTel gen_ai.choice
            message = message["message"]
        if not isinstance(message, dict):
            continue
        if _is_call(message):
            uses.append(_tool_use(message))
            continue
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            uses.extend(_tool_use(call) for call in calls if isinstance(call, dict))
        for key in ("parts", "content"):   # OTel GenAI parts, Anthropic content blocks
            items = message.get(key)
            if isinstance(items, list):
                uses.extend(_tool_use(item) for item in items if isinstance(item, dict) and _is_call(item))
        if isinstance(message.get("function_call"), dict):   # OpenAI's legacy single call
            uses.append(_tool_use(message["function_call"]))
    return uses


def _is_call(item: dict[str, Any]) -> bool:
    kind = item.get("type")   # any JSON value: a list or object must not reach the set lookup
    return isinstance(kind, str) and kind in _CALL_TYPES


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    if isinstance(call.get("tool_call"), dict):   # OpenInference nests each call
        call = call["tool_call"]
    function = call.get("function")
    if isinstance(function, dict):
        name, arguments = function.get("name"), function.get("arguments")
    else:
        name, arguments = call.get("name"), call.get("arguments", call.get("input"))
    return {"id": call.get("call_id") or call.get("id"), "name": name, "arguments": arguments}
