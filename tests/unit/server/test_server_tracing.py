"""OpenTelemetry traces, read back from the SDK's in-memory exporter: off by default, the
caller's W3C traceparent honoured, engine phases as spans, the support assistant's retrieval
and generation covering the request, and the trace carried on to upstream servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_engine import FakeEngine
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support.desk import SupportDesk
from llmeco.engine.backends.remote import UpstreamSet
from llmeco.engine.backends.upstream_config import UpstreamsConfig, UpstreamSpec
from llmeco.governance.crypto import Cipher
from llmeco.observability import tracing
from llmeco.rag.embed import Embedder
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.server.gateway.serving import TokenCounter, UpstreamGateway
from llmeco.settings import Settings
from llmeco.store import Store

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.disable()


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished}


def seconds(s: ReadableSpan) -> float:
    assert s.start_time is not None and s.end_time is not None
    return (s.end_time - s.start_time) / 1e9


async def test_off_by_default_records_nothing(settings: Settings, fake: FakeEngine) -> None:
    assert not tracing.enabled()
    exporter = InMemorySpanExporter()  # never installed: nothing could reach it anyway
    app = build_app(settings, {fake.name: fake})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
    assert r.status_code == 200
    assert tracing.current() is None and exporter.get_finished_spans() == ()


async def test_chat_request_continues_the_callers_trace_with_engine_phases(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    fake = FakeEngine(reply="one two three four five", delay=0.01)
    app = build_app(settings, {fake.name: fake})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
    assert r.status_code == 200
    named = by_name(spans.get_finished_spans())
    server = named["POST /v1/chat/completions"]
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_ID
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    generate = named["generate"]
    assert generate.parent is not None and generate.parent.span_id == server.context.span_id
    assert generate.attributes is not None and generate.attributes["gen_ai.usage.output_tokens"] > 0
    phases = [named[n] for n in ("engine.queue", "engine.prefill", "engine.decode")]
    for phase in phases:
        assert phase.parent is not None and phase.parent.span_id == generate.context.span_id
    # the phases tile the generation: each starts where the previous ended
    assert phases[0].start_time == generate.start_time
    assert phases[0].end_time == phases[1].start_time
    assert phases[1].end_time == phases[2].start_time
    assert phases[2].end_time == generate.end_time
    assert seconds(phases[2]) > 0.02  # five tokens, 10 ms apart


async def test_a_5xx_marks_the_server_span_failed(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    fake = FakeEngine()
    app = build_app(settings, {fake.name: fake})
    app.state.llmeco.draining = True  # new work gets 503
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 503
    (server,) = [s for s in spans.get_finished_spans() if s.name.startswith("POST")]
    assert not server.status.is_ok and server.attributes is not None
    assert server.attributes["http.response.status_code"] == 503


async def test_support_request_trace_shows_retrieval_and_generation_adding_up(
    tmp_path: Path, embedder: Embedder, acme_handbook: str, spans: InMemorySpanExporter
) -> None:
    store = Store.from_settings(Settings(home=tmp_path))
    kb = KnowledgeBase.create(store, "acme", embedder)
    kb.add_text("handbook.md", acme_handbook)
    desk = SupportDesk(store, embedder, ConversationLog(store, Cipher([b"k" * 32])), company="Acme")
    fake = FakeEngine(reply="Refunds reach your card within five business days.", delay=0.005)
    fake.max_model_len = 8192
    app = build_app(Settings(home=tmp_path), {fake.name: fake}, support=desk)
    question = {
        "model": "support:acme",
        "messages": [{"role": "user", "content": "How long do refunds take?"}],
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await c.post("/v1/chat/completions", json=question)  # warm the embedder and the store
        spans.clear()
        r = await c.post("/v1/chat/completions", json=question)
    assert r.status_code == 200 and "five business days" in r.text
    finished = spans.get_finished_spans()
    named = by_name(finished)
    server = named["POST /v1/chat/completions"]
    children = [s for s in finished if s.parent and s.parent.span_id == server.context.span_id]
    names = [s.name for s in sorted(children, key=lambda s: s.start_time or 0)]
    assert names[:3] == ["conversation.history", "retrieval", "generate"], names
    assert "grounding" in names
    retrieval, generate = named["retrieval"], named["generate"]
    assert seconds(retrieval) > 0 and seconds(generate) > 0.02  # tokens 5 ms apart
    # the request's time is its steps' time: they do not overlap and leave little uncovered
    total = sum(seconds(s) for s in children)
    assert total <= seconds(server)
    assert total >= 0.85 * seconds(server), (total, seconds(server), names)
    print(
        "support trace:",
        {s.name: round(seconds(s) * 1000, 1) for s in children},
        "request ms:",
        round(seconds(server) * 1000, 1),
    )


async def test_traceparent_is_propagated_to_the_upstream(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    seen: list[str | None] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(200, json={"id": "x", "choices": [], "usage": {"prompt_tokens": 1}})

    config = UpstreamsConfig(
        upstreams=[UpstreamSpec(name="up", urls=["http://upstream/v1"], model="real", retries=0)]
    )
    upstreams = UpstreamSet(
        config, client=httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    )
    settings = Settings(home=tmp_path)
    app = build_app(settings, {}, gateway=UpstreamGateway(upstreams, TokenCounter(settings)))
    body = {"model": "up", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/chat/completions", json=body, headers={"traceparent": TRACEPARENT})
    assert r.status_code == 200, r.text
    (sent,) = seen
    assert sent is not None
    _, trace_id, span_id, _ = sent.split("-")
    server = by_name(spans.get_finished_spans())["POST /v1/chat/completions"]
    assert trace_id == TRACE_ID  # the caller's trace goes on upstream
    assert span_id == format(server.context.span_id, "016x")  # as a child of llmeco's span


def test_otlp_export_when_the_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT turns export on: spans arrive at the collector as OTLP."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "LLMECO_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing.configure(Settings(home=tmp_path)) and not tracing.enabled()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "llmeco-test")
    try:
        assert tracing.configure(Settings(home=tmp_path))
        with tracing.span("retrieval"):
            pass
        tracing.disable()  # flushes the batch
    finally:
        server.shutdown()
        thread.join(5)
    assert received and received[0][0] == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(received[0][1])
    resource = request.resource_spans[0].resource
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "llmeco-test"
    assert request.resource_spans[0].scope_spans[0].spans[0].name == "retrieval"
