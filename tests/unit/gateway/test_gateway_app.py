"""The gateway inside the real app: bytes relayed, errors shaped, tokens counted.

The upstream is an httpx ``MockTransport`` (what it answers is the point, not the network);
the app is the real ``build_app`` with no local model, driven in-process.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from llmeco.engine.backends.remote import UpstreamSet
from llmeco.engine.backends.upstream_config import UpstreamsConfig, UpstreamSpec
from llmeco.server import build_app
from llmeco.server.gateway.serving import TokenCounter, UpstreamGateway
from llmeco.settings import Settings

Handler = Callable[[httpx.Request], httpx.Response]
CHUNK = (
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hi there"}}],"usage":null}\r\n\r\n'
)
USAGE = (
    b'data: {"id":"c","choices":[],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}\r\n\r\n'
)
DONE = b"data: [DONE]\r\n\r\n"
CHAT = {"model": "up", "messages": [{"role": "user", "content": "Say hi"}]}


class Body(httpx.AsyncByteStream):
    def __init__(self, *chunks: bytes, broken: bool = False) -> None:
        self.chunks = chunks
        self.broken = broken

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.broken:
            raise httpx.ReadError("connection reset by peer")


def gateway_client(handler: Handler, settings: Settings) -> tuple[httpx.AsyncClient, list[bytes]]:
    sent: list[bytes] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request.read())
        return handler(request)

    config = UpstreamsConfig(
        upstreams=[UpstreamSpec(name="up", urls=["http://upstream/v1"], model="real", retries=0)]
    )
    upstreams = UpstreamSet(config, client=httpx.AsyncClient(transport=httpx.MockTransport(record)))
    app = build_app(settings, {}, gateway=UpstreamGateway(upstreams, TokenCounter(settings)))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return client, sent


async def test_stream_bytes_pass_unchanged_and_the_gateways_usage_chunk_is_dropped(
    tmp_path: Path,
) -> None:
    handler = lambda r: httpx.Response(  # noqa: E731
        200, headers={"content-type": "text/event-stream"}, stream=Body(CHUNK, USAGE, DONE)
    )
    client, sent = gateway_client(handler, Settings(home=tmp_path))
    async with client:
        r = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 200 and r.content == CHUNK + DONE
        asked = json.loads(sent[0])
        assert asked["model"] == "real" and asked["stream_options"] == {"include_usage": True}
        r = await client.post(
            "/v1/chat/completions",
            json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        )
        assert r.content == CHUNK + USAGE + DONE
        metrics = (await client.get("/metrics")).text
    assert 'llmeco_prompt_tokens_total{model="up"} 14.0' in metrics
    assert 'llmeco_generation_tokens_total{model="up"} 4.0' in metrics
    assert (
        'llmeco_upstream_requests_total{outcome="200",upstream="up",url="http://upstream/v1"} 2.0'
        in metrics
    )


async def test_a_stream_broken_after_its_start_ends_with_an_error_event(cached_home: Path) -> None:
    # tokens are counted with the default model's tokenizer: the cached home has it converted
    handler = lambda r: httpx.Response(200, stream=Body(CHUNK, broken=True))  # noqa: E731
    client, _ = gateway_client(handler, Settings(home=cached_home))
    async with client:
        r = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        metrics = (await client.get("/metrics")).text
    assert r.status_code == 200
    assert r.content.startswith(CHUNK)  # the upstream's bytes, then ours
    error_event = r.content[len(CHUNK) :].split(b"\n\n")[0]
    error = json.loads(error_event.removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_error" and "incomplete" in error["message"]
    assert r.content.endswith(b"data: [DONE]\n\n")
    assert (
        'llmeco_upstream_errors_total{outcome="broken",upstream="up",url="http://upstream/v1"} 1.0'
        in metrics
    )


async def test_a_stream_that_ends_without_done_is_not_silently_truncated(cached_home: Path) -> None:
    # tokens are counted with the default model's tokenizer: the cached home has it converted
    handler = lambda r: httpx.Response(200, stream=Body(CHUNK))  # noqa: E731
    client, _ = gateway_client(handler, Settings(home=cached_home))
    async with client:
        r = await client.post(
            "/v1/completions", json={"model": "up", "prompt": "x", "stream": True}
        )
    assert b'"code":"upstream_error"' in r.content and r.content.endswith(b"data: [DONE]\n\n")


async def test_upstream_4xx_are_relayed_with_status_and_openai_shape(tmp_path: Path) -> None:
    answers = iter(
        [
            httpx.Response(404, json={"error": {"message": "no such model", "type": "x"}}),
            httpx.Response(422, json={"detail": "prompt too long"}),
        ]
    )
    client, _ = gateway_client(lambda r: next(answers), Settings(home=tmp_path))
    async with client:
        r = await client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 404 and r.json() == {
            "error": {"message": "no such model", "type": "x"}
        }
        r = await client.post("/v1/embeddings", json={"model": "up", "input": "x"})
        assert r.status_code == 422
        assert r.json()["error"]["message"] == "upstream 'up': prompt too long"
        assert r.json()["error"]["type"] == "invalid_request_error"


async def test_every_url_down_is_a_502(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client, _ = gateway_client(refuse, Settings(home=tmp_path))
    async with client:
        r = await client.post("/v1/completions", json={"model": "up", "prompt": "x"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"


async def test_tokens_are_counted_with_the_tokenizer_when_the_upstream_reports_none(
    cached_home: Path, default_model_dir: Path
) -> None:
    from llmeco.modeling.load import load_tokenizer

    answer = {"id": "x", "choices": [{"index": 0, "message": {"content": "Hello, friend!"}}]}
    client, _ = gateway_client(
        lambda r: httpx.Response(200, json=answer), Settings(home=cached_home)
    )
    async with client:
        r = await client.post("/v1/chat/completions", json=CHAT)
        assert r.json() == answer  # relayed as is: no usage is invented in the body
        metrics = (await client.get("/metrics")).text
    tokenizer = load_tokenizer(default_model_dir)
    prompt = len(tokenizer.encode("Say hi", add_special_tokens=False))
    output = len(tokenizer.encode("Hello, friend!", add_special_tokens=False))
    assert f'llmeco_prompt_tokens_total{{model="up"}} {float(prompt)}' in metrics
    assert f'llmeco_generation_tokens_total{{model="up"}} {float(output)}' in metrics


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_stream_options_without_stream_is_refused_before_the_upstream(
    tmp_path: Path, path: str
) -> None:
    client, sent = gateway_client(lambda r: httpx.Response(200, json={}), Settings(home=tmp_path))
    body = CHAT if "chat" in path else {"model": "up", "prompt": "x"}
    async with client:
        r = await client.post(path, json={**body, "stream_options": {"include_usage": True}})
    assert r.status_code == 400 and sent == []


async def test_routes_that_need_a_local_engine_say_the_model_is_an_upstreams(
    tmp_path: Path,
) -> None:
    client, sent = gateway_client(lambda r: httpx.Response(200, json={}), Settings(home=tmp_path))
    async with client:
        r = await client.post("/tokenize", json={"model": "up", "prompt": "x"})
    assert r.status_code == 400 and "served by an upstream" in r.json()["error"]["message"]
    assert sent == []
