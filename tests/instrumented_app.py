"""A tiny LLM app instrumented by one real GenAI instrumentation library, run as its own process.

    python tests/instrumented_app.py LIBRARY [MODE]

Instrumentors patch the `openai` package globally and conflict with one another, so the tests run
this once per library. It makes one chat call and one streaming call with the real `openai` client
(or a Pydantic AI agent) against the fake server at $FAKE_OPENAI_BASE_URL, sets the user and session
id the way that library's users do, exports with the OTel SDK's OTLP exporters to the router at
$ROUTER_HTTP (`http://127.0.0.1:PORT`) / $ROUTER_GRPC (`127.0.0.1:PORT`), flushes and exits.
Never any host but 127.0.0.1. Prints one JSON line: what the calls answered.

LIBRARY / MODE:
  openai-v2 span_and_event | event_only   opentelemetry-instrumentation-openai-v2 (spans + log events)
  openllmetry                             opentelemetry-instrumentation-openai (Traceloop)
  openinference                           openinference-instrumentation-openai (gRPC export)
  langfuse                                the Langfuse SDK's OpenAI integration (langfuse.openai)
  logfire 2 | 1                           logfire.instrument_openai(version=2 | 1), send_to_logfire off
  pydantic-ai                             a Pydantic AI agent, instrumented
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

USER_ID = "user-4711"
SESSION_ID = "session-0815"
SYSTEM = "You are a terse assistant. SYSTEM-MARKER-91b2"
PROMPT = "What is six times seven? PROMPT-MARKER-c4d1"
STREAM_PROMPT = "Say it again, streaming this time. STREAM-PROMPT-MARKER-e5f6"
REQUEST_MODEL = "gpt-4o-mini"

ROUTER_HTTP = os.environ.get("ROUTER_HTTP", "")
ROUTER_GRPC = os.environ.get("ROUTER_GRPC", "")
BASE_URL = os.environ.get("FAKE_OPENAI_BASE_URL", "")


def _resource(service: str) -> Any:
    from opentelemetry.sdk.resources import Resource
    return Resource.create({"service.name": service, "deployment.environment.name": "ci"})


def _span_exporter(grpc: bool = False) -> Any:
    if grpc:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        return GrpcExporter(endpoint=ROUTER_GRPC, insecure=True, timeout=10)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=f"{ROUTER_HTTP}/v1/traces", timeout=10)


def _tracer_provider(service: str, *processors: Any, grpc: bool = False) -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    provider = TracerProvider(resource=_resource(service))
    for processor in processors:
        provider.add_span_processor(processor)
    provider.add_span_processor(BatchSpanProcessor(_span_exporter(grpc)))
    trace.set_tracer_provider(provider)
    return provider


def _logger_provider(service: str) -> Any:
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    provider = LoggerProvider(resource=_resource(service))
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{ROUTER_HTTP}/v1/logs",
                                                                               timeout=10)))
    set_logger_provider(provider)
    return provider


def _baggage(values: dict[str, str]) -> Any:
    """Attach OTel baggage (copied onto every span by a BaggageSpanProcessor); returns the token."""
    from opentelemetry import baggage, context
    ctx = context.get_current()
    for key, value in values.items():
        ctx = baggage.set_baggage(key, value, ctx)
    return context.attach(ctx)


def _client(openai_module: Any = None) -> Any:
    import openai
    module = openai_module or openai
    return module.OpenAI(base_url=BASE_URL, api_key="test", max_retries=0, timeout=20)


def _calls(client: Any) -> dict[str, Any]:
    """One chat call and one streaming call; what they answered."""
    response = client.chat.completions.create(
        model=REQUEST_MODEL, temperature=0.2, max_tokens=400,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}])
    stream = client.chat.completions.create(
        model=REQUEST_MODEL, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": STREAM_PROMPT}])
    streamed = []
    usage = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            streamed.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage.total_tokens
    return {"chat": response.choices[0].message.content, "stream": "".join(streamed),
            "chat_total": response.usage.total_tokens, "stream_total": usage}


# --- one function per library ------------------------------------------------------------------

def openai_v2(mode: str) -> dict[str, Any]:
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = mode   # span_and_event | event_only
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor

    # The OTel way to put user.id / session.id on every span of a request: baggage, copied onto spans.
    tracer_provider = _tracer_provider("openai-v2-app", BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
    logger_provider = _logger_provider("openai-v2-app")
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    _baggage({"user.id": USER_ID, "session.id": SESSION_ID})
    try:
        return _calls(_client())
    finally:
        tracer_provider.force_flush(10_000)
        logger_provider.force_flush(10_000)
        tracer_provider.shutdown()
        logger_provider.shutdown()


def openllmetry(mode: str) -> dict[str, Any]:
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
    from opentelemetry import context
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.sdk.trace import SpanProcessor

    class AssociationProperties(SpanProcessor):
        """What traceloop-sdk's span processor does for `Traceloop.set_association_properties`:
        the context's `association_properties` become `traceloop.association.properties.*`.
        (traceloop-sdk itself does not resolve beside opentelemetry-sdk 1.45.)"""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            properties = context.get_value("association_properties", parent_context) or {}
            for key, value in properties.items():
                span.set_attribute(f"traceloop.association.properties.{key}", value)

    tracer_provider = _tracer_provider("openllmetry-app", AssociationProperties())
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    context.attach(context.set_value("association_properties", {"user_id": USER_ID, "session_id": SESSION_ID}))
    try:
        return _calls(_client())
    finally:
        tracer_provider.force_flush(10_000)
        tracer_provider.shutdown()


def openinference(mode: str) -> dict[str, Any]:
    from openinference.instrumentation import using_attributes
    from openinference.instrumentation.openai import OpenAIInstrumentor

    tracer_provider = _tracer_provider("openinference-app", grpc=True)
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    try:
        with using_attributes(user_id=USER_ID, session_id=SESSION_ID):
            return _calls(_client())
    finally:
        tracer_provider.force_flush(10_000)
        tracer_provider.shutdown()


def langfuse_sdk(mode: str) -> dict[str, Any]:
    # Fake keys; the SDK's own API (prompts, scores) would go to the fake server, never used here.
    os.environ.update({"LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-test",
                       "LANGFUSE_BASE_URL": BASE_URL.rsplit("/v1", 1)[0], "LANGFUSE_TRACING_ENVIRONMENT": "ci"})
    from langfuse import Langfuse, propagate_attributes
    from langfuse import openai as langfuse_openai

    # The SDK exports to {base_url}/api/public/otel/v1/traces; the router serves /v1/traces, so the
    # SDK is handed an exporter aimed there (its `span_exporter` option).
    langfuse = Langfuse(span_exporter=_span_exporter(), flush_at=1, flush_interval=0.5)
    try:
        with langfuse.start_as_current_observation(as_type="span", name="answer-request"):
            with propagate_attributes(user_id=USER_ID, session_id=SESSION_ID):
                return _calls(_client(langfuse_openai))
    finally:
        langfuse.flush()
        langfuse.shutdown()


def logfire_sdk(mode: str) -> dict[str, Any]:
    import logfire
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    def keep_session_id(match: Any) -> Any:
        # Logfire's scrubber redacts any attribute named like 'session' ("[Scrubbed due to 'session']"),
        # session.id included: users who send session ids allow that one attribute.
        return match.value if match.path == ("attributes", "session.id") else None

    logfire.configure(send_to_logfire=False, console=False, service_name="logfire-app", metrics=False,
                      inspect_arguments=False, environment="ci",
                      scrubbing=logfire.ScrubbingOptions(callback=keep_session_id),
                      additional_span_processors=[BatchSpanProcessor(_span_exporter())])
    client = _client()
    logfire.instrument_openai(client, version=int(mode or 2))  # type: ignore[arg-type]
    try:
        # Logfire copies baggage onto every span as attributes (add_baggage_to_attributes).
        with logfire.set_baggage(**{"user.id": USER_ID, "session.id": SESSION_ID}):
            with logfire.span("answer request"):
                return _calls(client)
    finally:
        logfire.force_flush(10_000)
        logfire.shutdown()


def pydantic_ai(mode: str) -> dict[str, Any]:
    from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    tracer_provider = _tracer_provider("pydantic-ai-app", BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
    model = OpenAIChatModel(REQUEST_MODEL, provider=OpenAIProvider(base_url=BASE_URL, api_key="test"))
    Agent.instrument_all(InstrumentationSettings(tracer_provider=tracer_provider))
    agent = Agent(model, system_prompt=SYSTEM, name="answer-agent")
    # Langfuse's documented trace attributes, on every span through baggage.
    _baggage({"langfuse.user.id": USER_ID, "langfuse.session.id": SESSION_ID})

    async def run() -> dict[str, Any]:
        result = await agent.run(PROMPT)
        async with agent.run_stream(STREAM_PROMPT) as streamed:
            text = await streamed.get_output()
        return {"chat": result.output, "stream": text, "chat_total": result.usage.total_tokens,
                "stream_total": streamed.usage.total_tokens}

    try:
        return asyncio.run(run())
    finally:
        tracer_provider.force_flush(10_000)
        tracer_provider.shutdown()


LIBRARIES = {"openai-v2": openai_v2, "openllmetry": openllmetry, "openinference": openinference,
             "langfuse": langfuse_sdk, "logfire": logfire_sdk, "pydantic-ai": pydantic_ai}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in LIBRARIES or not BASE_URL.startswith("http://127.0.0.1:"):
        print(__doc__, file=sys.stderr)
        return 2
    answered = LIBRARIES[argv[0]](argv[1] if len(argv) > 1 else "")
    print(json.dumps(answered), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
