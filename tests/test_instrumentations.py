"""Real GenAI instrumentation libraries, exporting to a real running router.

Each case runs `tests/instrumented_app.py` in its own process (instrumentors patch `openai`
globally and conflict): the real `openai` client (or a Pydantic AI agent) makes one chat call and
one streaming call against the fake OpenAI server of `tests/fake_openai.py` on 127.0.0.1, with the
user and session id set the way that library's users set them, and the library's OTel exporters
send to a router process. No real LLM API is called; nothing leaves 127.0.0.1.

The router writes every case to a per-trace JSON directory, an Aperture (cbor_zstd) directory,
OTLP JSON lines, and a private variant of each (privacy: true). The tests check, for each
library: model, usage (Langfuse buckets in the per-trace JSON, Aperture's own meaning in the
records, as the README says), input, output, user id and session id; and that the private
variants hold no prompt or completion string anywhere while model, usage and ids remain.

What each library (at the versions the `test` extra pins) reports of the fake server's usage
(1843 prompt tokens of which 1024 cached, 320 completion tokens of which 128 reasoning):
  openai-v2 2.4b0        input / output only, on chat completions (cached only on the Responses API)
  openllmetry 0.62       cached on both calls, reasoning on the plain call only (not when streaming)
  openinference 0.1.66   both, on both (llm.token_count.*_details.*)
  langfuse 5             both: the raw OpenAI usage object in langfuse.observation.usage_details
  logfire 5              cached as gen_ai.usage.cache_read.input_tokens; reasoning only inside
                         gen_ai.usage.raw (the provider's usage object)
  pydantic-ai 2.68       cached, and reasoning as gen_ai.usage.details.reasoning_tokens
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from otlp_router.destinations.formats.aperture import decode_records
from tests import fake_openai
from tests import instrumented_app as app
from tests.fake_openai import FakeOpenAI
from tests.support import ROOT, RouterProcess, base_config, wait_for

APP = Path(__file__).with_name("instrumented_app.py")

# Strings that only prompts and completions hold: none may appear in a private variant.
CONTENT_MARKERS = ("SYSTEM-MARKER-91b2", "PROMPT-MARKER-c4d1", "STREAM-PROMPT-MARKER-e5f6",
                   "COMPLETION-MARKER-7f3a", "six times seven", "terse assistant", "Forty-two")

PRIVATE = ("doc_private", "aperture_private", "raw_private")


@dataclass(frozen=True)
class Reports:
    """Which usage buckets the library reports for one call (True: must show; False: it does not
    send them, so they may only show if a later version starts to, and then must be right)."""
    cached: bool
    reasoning: bool


@dataclass(frozen=True)
class Case:
    library: str
    mode: str
    chat: Reports
    stream: Reports

    @property
    def id(self) -> str:
        return f"{self.library}-{self.mode}" if self.mode else self.library


BOTH = Reports(cached=True, reasoning=True)
NONE = Reports(cached=False, reasoning=False)

CASES = [
    Case("openai-v2", "span_and_event", chat=NONE, stream=NONE),
    Case("openai-v2", "event_only", chat=NONE, stream=NONE),
    Case("openllmetry", "", chat=BOTH, stream=Reports(cached=True, reasoning=False)),
    Case("openinference", "", chat=BOTH, stream=BOTH),
    Case("langfuse", "", chat=BOTH, stream=BOTH),
    Case("logfire", "v2", chat=BOTH, stream=BOTH),
    Case("logfire", "v1", chat=BOTH, stream=BOTH),
    Case("pydantic-ai", "", chat=BOTH, stream=BOTH),
]


def _params() -> list[Any]:
    return [pytest.param(case, id=case.id) for case in CASES]


# --- running one case ------------------------------------------------------------------------

@dataclass
class Run:
    case: Case
    directory: Path
    answered: dict[str, Any]
    documents: dict[str, list[dict[str, Any]]]      # destination → per-trace JSON documents
    records: dict[str, list[dict[str, Any]]]        # destination → Aperture records
    router_log: str

    def written_bytes(self, destination: str) -> bytes:
        """Everything a destination wrote, decoded where it is compressed (Aperture's zstd)."""
        chunks = []
        for path in sorted((self.directory / destination).rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if path.name.endswith(".cbor.zstd"):
                    data = json.dumps(list(decode_records(data)), default=repr).encode()
                chunks.append(data)
        return b"\n".join(chunks)


def _destinations(tmp: Path) -> dict[str, Any]:
    def file(name: str, **options: Any) -> dict[str, Any]:
        return {"type": "file", "dir": str(tmp / name), **options}
    return {
        "doc": file("doc", format="json", trace_idle="300ms"),
        "doc_private": file("doc_private", format="json", trace_idle="300ms", privacy=True),
        "aperture": file("aperture", format="cbor_zstd", every="300ms"),
        "aperture_private": file("aperture_private", format="cbor_zstd", every="300ms", privacy=True),
        "raw": file("raw", format="otlp_json"),
        "raw_private": file("raw_private", format="otlp_json", privacy=True),
    }


def _documents(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_bytes()) for p in sorted(directory.rglob("*.json"))]


def _records(directory: Path) -> list[dict[str, Any]]:
    return [r for p in sorted(directory.glob("*.cbor.zstd")) for r in decode_records(p.read_bytes())]


def _app_env(router: RouterProcess, fake: FakeOpenAI) -> dict[str, str]:
    """The environment less anything that could point an SDK elsewhere (a real API, a proxy)."""
    dropped = ("OTEL_", "LANGFUSE_", "LOGFIRE_", "TRACELOOP_", "OPENAI_", "OPENINFERENCE_")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(dropped) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update({"ROUTER_HTTP": f"http://127.0.0.1:{router.http_port}",
                "ROUTER_GRPC": f"127.0.0.1:{router.grpc_port}",
                "FAKE_OPENAI_BASE_URL": fake.base_url, "PYTHONPATH": str(ROOT),
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "OTEL_SDK_DISABLED": "false", "PYTHONWARNINGS": "ignore"})
    return env


def _run(case: Case, tmp: Path, fake: FakeOpenAI) -> Run:
    # Logs too: openai-v2's event modes send prompts and completions as log events, which join
    # their spans in the per-trace JSON and the Aperture records.
    routes = [{"name": "stored", "destinations": ["doc", "doc_private", "aperture", "aperture_private"],
               "signals": ["traces", "logs"]},
              {"name": "raw", "destinations": ["raw", "raw_private"]}]
    router = RouterProcess(base_config(tmp, destinations=_destinations(tmp), routes=routes), tmp)
    try:
        mode = case.mode[1:] if case.library == "logfire" else case.mode   # logfire: semconv version
        proc = subprocess.run([sys.executable, str(APP), case.library, *([mode] if mode else [])],
                              env=_app_env(router, fake), cwd=ROOT, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{case.id} app failed:\n{proc.stdout}\n{proc.stderr[-6000:]}"
        answered = json.loads(proc.stdout.strip().splitlines()[-1])

        def delivered() -> bool:
            return all(len(_with_usage(_generations(_documents(tmp / d)))) >= 2 for d in ("doc", "doc_private")) \
                and all(len(_usage_records(_records(tmp / d))) >= 2 for d in ("aperture", "aperture_private"))

        wait_for(delivered, timeout=30, interval=0.2)
    finally:
        router.stop(timeout=30)
    return Run(case, tmp, answered,
               {d: _documents(tmp / d) for d in ("doc", "doc_private")},
               {d: _records(tmp / d) for d in ("aperture", "aperture_private")},
               router.stderr)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(lifetime=1800) as server:
        yield server


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, fake: FakeOpenAI) -> Callable[[Case], Run]:
    """Each case is run once per module; its tests share what it wrote."""
    done: dict[str, Run] = {}

    def get(case: Case) -> Run:
        if case.id not in done:
            done[case.id] = _run(case, tmp_path_factory.mktemp(case.id), fake)
        return done[case.id]
    return get


# --- reading what was written ------------------------------------------------------------------

def _generations(documents: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(document, observation) for every GENERATION, in start order."""
    found = [(d, o) for d in documents for o in d["observations"] if o["type"] == "GENERATION"]
    return sorted(found, key=lambda pair: pair[1]["startTime"])


def _with_usage(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    # Logfire makes two spans of a streamed call: the request (no response yet) and the stream's
    # outcome; the model call with usage is the one that answered.
    return [(d, o) for d, o in pairs if o["usageDetails"]]


def _usage_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((r for r in records if r.get("usage")), key=lambda r: r["timestamp"])


def _calls(run: Run, destination: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    pairs = _with_usage(_generations(run.documents[destination]))
    assert len(pairs) == 2, (f"{run.case.id}: expected a chat and a streamed generation with usage in "
                             f"{destination}, got {[(o['name'], o['usageDetails']) for _, o in pairs]}")
    return pairs


def _records_of(run: Run, destination: str) -> list[dict[str, Any]]:
    records = _usage_records(run.records[destination])
    assert len(records) == 2, f"{run.case.id}: expected 2 Aperture records with usage, got {records}"
    return records


def _check_document_usage(usage: dict[str, int], reports: Reports, where: str) -> None:
    """Langfuse's buckets: input without cache reads, output without reasoning, total = all."""
    if reports.cached:
        assert "input_cached_tokens" in usage, f"{where}: cached tokens missing: {usage}"
    if reports.reasoning:
        assert "output_reasoning_tokens" in usage, f"{where}: reasoning tokens missing: {usage}"
    cached = usage.get("input_cached_tokens")
    reasoning = usage.get("output_reasoning_tokens")
    assert cached in (None, fake_openai.CACHED_TOKENS), f"{where}: {usage}"
    assert reasoning in (None, fake_openai.REASONING_TOKENS), f"{where}: {usage}"
    assert usage["input"] == fake_openai.PROMPT_TOKENS - (cached or 0), f"{where}: {usage}"
    assert usage["output"] == fake_openai.COMPLETION_TOKENS - (reasoning or 0), f"{where}: {usage}"
    assert usage["total"] == fake_openai.TOTAL_TOKENS, f"{where}: {usage}"
    for key in ("reasoning_tokens", "cached_tokens", "cache_read_tokens"):
        assert key not in usage, f"{where}: {key} counted beside Langfuse's bucket: {usage}"


def _check_record_usage(usage: dict[str, int], reports: Reports, where: str) -> None:
    """Aperture's meaning: input / output as the provider reported them, the buckets beside."""
    assert usage["input_tokens"] == fake_openai.PROMPT_TOKENS, f"{where}: {usage}"
    assert usage["output_tokens"] == fake_openai.COMPLETION_TOKENS, f"{where}: {usage}"
    if reports.cached:
        assert "cached_tokens" in usage, f"{where}: {usage}"
    if reports.reasoning:
        assert "reasoning_tokens" in usage, f"{where}: {usage}"
    assert usage.get("cached_tokens") in (None, fake_openai.CACHED_TOKENS), f"{where}: {usage}"
    assert usage.get("reasoning_tokens") in (None, fake_openai.REASONING_TOKENS), f"{where}: {usage}"


def _check_fields(run: Run, doc_destination: str, aperture_destination: str) -> None:
    case = run.case
    for (document, observation), reports, call in zip(_calls(run, doc_destination), (case.chat, case.stream),
                                                      ("chat", "stream")):
        where = f"{case.id} {doc_destination} {call} ({observation['name']})"
        assert observation["model"] == fake_openai.MODEL, where
        _check_document_usage(observation["usageDetails"], reports, where)
        assert document["userId"] == app.USER_ID, f"{where}: userId {document['userId']!r}"
        assert document["sessionId"] == app.SESSION_ID, f"{where}: sessionId {document['sessionId']!r}"
    for record, reports, call in zip(_records_of(run, aperture_destination), (case.chat, case.stream),
                                     ("chat", "stream")):
        where = f"{case.id} {aperture_destination} {call}"
        assert record["model"] == fake_openai.MODEL, where
        _check_record_usage(record["usage"], reports, where)
        assert record["identity"]["login_name"] == app.USER_ID, f"{where}: {record['identity']}"
        assert record["session_id"] == app.SESSION_ID, f"{where}: {record['session_id']!r}"
        assert record["path"] == "/v1/chat/completions", where


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- the tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", _params())
def test_app_talked_to_the_fake_server(case: Case, runs: Callable[[Case], Run]) -> None:
    run = runs(case)
    assert run.answered["chat"] == fake_openai.COMPLETION
    assert run.answered["stream"] == fake_openai.COMPLETION
    assert run.answered["chat_total"] == run.answered["stream_total"] == fake_openai.TOTAL_TOKENS


@pytest.mark.parametrize("case", _params())
def test_model_usage_user_and_session(case: Case, runs: Callable[[Case], Run]) -> None:
    _check_fields(runs(case), "doc", "aperture")


@pytest.mark.parametrize("case", _params())
def test_input_and_output(case: Case, runs: Callable[[Case], Run]) -> None:
    run = runs(case)
    (_, chat), (_, stream) = _calls(run, "doc")
    for observation, prompt, call in ((chat, app.PROMPT, "chat"), (stream, app.STREAM_PROMPT, "stream")):
        where = f"{case.id} {call} ({observation['name']})"
        assert observation["input"] is not None, f"{where}: input is null"
        assert prompt in _text(observation["input"]), f"{where}: input {observation['input']!r}"
        assert app.SYSTEM in _text(observation["input"]), f"{where}: no system prompt in {observation['input']!r}"
        assert observation["output"] is not None, f"{where}: output is null"
        assert fake_openai.COMPLETION in _text(observation["output"]), f"{where}: output {observation['output']!r}"
    chat_record, stream_record = _records_of(run, "aperture")
    for record, prompt, call in ((chat_record, app.PROMPT, "chat"), (stream_record, app.STREAM_PROMPT, "stream")):
        capture = record["capture"]
        where = f"{case.id} aperture {call}"
        assert capture["requestBody"] and prompt in capture["requestBody"], f"{where}: {capture['requestBody']!r}"
        assert capture["responseBody"] and fake_openai.COMPLETION in capture["responseBody"], \
            f"{where}: {capture['responseBody']!r}"
        assert capture["model"] == fake_openai.MODEL and capture["sessionId"] == app.SESSION_ID, where


@pytest.mark.parametrize("case", _params())
def test_private_variants_hold_no_content(case: Case, runs: Callable[[Case], Run]) -> None:
    run = runs(case)
    # The library did send content (so the check below is not vacuous) ...
    raw = run.written_bytes("raw")
    assert app.PROMPT.encode() in raw and fake_openai.COMPLETION.encode() in raw, f"{case.id}: no content sent"
    # ... and no private variant kept any of it, in any byte it wrote.
    for destination in PRIVATE:
        written = run.written_bytes(destination)
        assert written, f"{case.id}: {destination} wrote nothing"
        leaked = [m for m in CONTENT_MARKERS if m.encode() in written]
        assert not leaked, f"{case.id}: {destination} leaks {leaked}"
    for record in run.records["aperture_private"]:
        assert "capture" not in record, f"{case.id}: a private Aperture record has a capture"
    for document in run.documents["doc_private"]:
        assert document["input"] is None and document["output"] is None, case.id
        for observation in document["observations"]:
            assert observation["input"] is None and observation["output"] is None, (case.id, observation["name"])


@pytest.mark.parametrize("case", _params())
def test_private_variants_keep_model_usage_and_ids(case: Case, runs: Callable[[Case], Run]) -> None:
    _check_fields(runs(case), "doc_private", "aperture_private")
