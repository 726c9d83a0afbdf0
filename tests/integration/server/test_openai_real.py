"""The issue's "must show" list against the real engine and the packaged default model.

Everything goes through a real uvicorn on a free port and (mostly) the official ``openai``
client. Slow: loads SmolLM2-135M twice (~5 s each once converted) and generates on CPU.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from server_helpers import LiveServer

from llmeco.engine.async_engine import AsyncEngine
from llmeco.rag.embed import Embedder
from llmeco.server import build_app
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "city": {"type": "string", "maxLength": 40},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine(cached_home: Path, default_model_dir: Path) -> Iterator[AsyncEngine]:
    e = AsyncEngine.from_ref("default", Settings(home=cached_home))
    yield e
    asyncio.run(e.shutdown(timeout=1))


@pytest.fixture(scope="module")
def server(engine: AsyncEngine, cached_home: Path) -> Iterator[LiveServer]:
    embedder = Embedder()
    app = build_app(Settings(home=cached_home), {engine.model_info.name: engine}, embedder)
    with LiveServer(app) as live:
        yield live
    embedder.close()


@pytest.fixture
def model(engine: AsyncEngine) -> str:
    return engine.model_info.name


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def aclient(server: LiveServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_models_and_embeddings(client: openai.OpenAI, model: str) -> None:
    assert [m.id for m in client.models.list()] == [model, "all-minilm-l6-v2"]
    r = client.embeddings.create(model="all-minilm-l6-v2", input=["a cat", "a dog"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 384


def test_greedy_streamed_equals_plain(client: openai.OpenAI, model: str) -> None:
    kwargs: Any = {"model": model, "messages": ask("Name three colours."), "max_tokens": 40}
    plain = client.chat.completions.create(temperature=0, **kwargs)
    text = plain.choices[0].message.content
    assert text
    stream = client.chat.completions.create(
        temperature=0, stream=True, stream_options={"include_usage": True}, **kwargs
    )
    pieces, usage = [], None
    for chunk in stream:
        usage = chunk.usage or usage
        pieces += [c.delta.content or "" for c in chunk.choices]
    assert "".join(pieces) == text
    assert usage is not None and plain.usage is not None
    assert usage.completion_tokens == plain.usage.completion_tokens
    assert usage.prompt_tokens == plain.usage.prompt_tokens


def test_completions_and_usage(client: openai.OpenAI, model: str) -> None:
    r = client.completions.create(
        model=model, prompt="Once upon a time", max_tokens=12, temperature=0, logprobs=2
    )
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 12
    assert r.choices[0].logprobs is not None
    assert len(r.choices[0].logprobs.tokens or []) == 12


@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
async def test_json_modes_always_parse(aclient: openai.AsyncOpenAI, model: str, kind: str) -> None:
    fmt: Any = (
        {"type": "json_object"}
        if kind == "json_object"
        else {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
    )

    async def one(i: int) -> str:
        r = await aclient.chat.completions.create(
            model=model,
            messages=ask(f"Describe person number {i} as JSON with name, age and city."),
            response_format=fmt,
            max_tokens=200,
            temperature=0,
        )
        assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
        return r.choices[0].message.content or ""

    for text in await asyncio.gather(*(one(i) for i in range(20))):
        value = json.loads(text)
        if kind == "json_object":
            assert isinstance(value, dict)
        else:
            jsonschema.validate(value, SCHEMA)


async def test_dropped_streams_free_running_and_kv(server: LiveServer, engine: AsyncEngine) -> None:
    body = {
        "model": engine.model_info.name,
        "messages": ask("Write a very long story."),
        "max_tokens": 1000,
        "ignore_eos": True,
        "stream": True,
    }

    async def drop(client: httpx.AsyncClient) -> None:
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            seen = 0
            async for line in r.aiter_lines():
                seen += line.startswith("data: ")
                if seen >= 4:
                    break

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        await asyncio.gather(*(drop(client) for _ in range(8)))
    start = time.monotonic()
    while True:
        s = engine.stats()
        if s.running == 0 and s.waiting == 0 and s.kv_blocks_used == 0:
            break
        assert time.monotonic() - start < 1.0, s
        await asyncio.sleep(0.02)


async def test_overload_200_or_429_and_accepted_complete(
    cached_home: Path, default_model_dir: Path
) -> None:
    settings = Settings(home=cached_home, max_queue=2, max_num_seqs=2)
    engine = AsyncEngine.from_ref("default", settings)
    try:
        app = build_app(settings, {engine.model_info.name: engine})
        with LiveServer(app) as live:
            client = openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0)

            async def one(i: int) -> int | str:
                try:
                    r = await client.chat.completions.create(
                        model=engine.model_info.name,
                        messages=ask(f"Count to {i}."),
                        max_tokens=24,
                        extra_body={"ignore_eos": True},
                    )
                except openai.RateLimitError as exc:
                    assert exc.response.headers.get("retry-after")
                    return 429
                assert r.usage is not None and r.usage.completion_tokens == 24
                assert r.choices[0].finish_reason == "length"
                return r.choices[0].message.content or ""

            results = await asyncio.gather(*(one(i) for i in range(8)))  # 4x the queue bound
        assert 429 in results
        assert any(isinstance(r, str) for r in results)
    finally:
        await engine.shutdown(timeout=1)
