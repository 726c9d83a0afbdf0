"""The official ``openai`` package, unchanged, against a real uvicorn on a free port.

The generation model is the fake engine (the real one is in test_openai_real.py); the
embedding model is the real packaged all-MiniLM-L6-v2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from fake_engine import FakeEngine
from server_helpers import LiveServer

from llmeco.rag.embed import Embedder
from llmeco.server import build_app
from llmeco.settings import Settings

MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(tmp_path: Path, fake: FakeEngine, embedder: Embedder) -> Iterator[openai.OpenAI]:
    app = build_app(Settings(home=tmp_path), {fake.name: fake}, embedder)
    with LiveServer(app) as server:
        yield openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["fake-model", "all-minilm-l6-v2"]
    assert client.models.retrieve("fake-model").owned_by == "llmeco"


def test_chat_plain_and_streamed_agree(client: openai.OpenAI, fake: FakeEngine) -> None:
    plain = client.chat.completions.create(
        model="fake-model", messages=MESSAGES, temperature=0, max_tokens=20, n=2
    )
    assert [c.message.content for c in plain.choices] == [fake.reply[:20]] * 2
    assert plain.choices[0].finish_reason == "length"
    assert plain.usage is not None and plain.usage.completion_tokens == 40

    stream = client.chat.completions.create(
        model="fake-model",
        messages=MESSAGES,
        temperature=0,
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == plain.choices[0].message.content
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 20
    assert usage.prompt_tokens == plain.usage.prompt_tokens


def test_chat_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="fake-model", messages=MESSAGES, logprobs=True, top_logprobs=2, max_tokens=4
    )
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None
    assert len(lp.content) == 4 and len(lp.content[0].top_logprobs) == 2


def test_completions(client: openai.OpenAI, fake: FakeEngine) -> None:
    r = client.completions.create(model="fake-model", prompt="Once upon", max_tokens=8)
    assert r.choices[0].text == fake.reply[:8]
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="fake-model", prompt="Once upon", max_tokens=8, stream=True
        )
    )
    assert streamed == r.choices[0].text


def test_embeddings(client: openai.OpenAI, embedder: Embedder) -> None:
    texts = ["first text", "second text"]
    # The openai client asks for base64 by default and decodes it itself.
    r = client.embeddings.create(model="all-minilm-l6-v2", input=texts)
    got = np.array([d.embedding for d in r.data], dtype=np.float32)
    np.testing.assert_allclose(got, embedder.embed(texts), atol=1e-6)
    assert r.usage.prompt_tokens == sum(embedder.count_tokens(texts))
    floats = client.embeddings.create(
        model="all-minilm-l6-v2", input="first text", encoding_format="float"
    )
    np.testing.assert_allclose(floats.data[0].embedding, got[0], atol=1e-6)


def test_errors_map_to_openai_exceptions(client: openai.OpenAI, fake: FakeEngine) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="tool 'f': invalid JSON schema"):
        bad = {"type": "object", "required": "x"}
        client.chat.completions.create(
            model="fake-model",
            messages=MESSAGES,
            tools=[{"type": "function", "function": {"name": "f", "parameters": bad}}],
        )
    with pytest.raises(openai.BadRequestError, match="context length"):
        client.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=10_000)
    fake.max_running = 0
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-model", messages=MESSAGES)
    fake.max_running = None
    fake.dead = True
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    assert info.value.status_code == 503


def test_mid_stream_error_raises_in_the_client(client: openai.OpenAI, fake: FakeEngine) -> None:
    fake.fail_after = 2
    stream = client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="mid-generation"):
        for _ in stream:
            pass


def test_request_id_round_trip(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="fake-model", messages=MESSAGES, extra_headers={"x-request-id": "trace-42"}
    )
    assert raw.headers["x-request-id"] == "trace-42"
    assert raw.parse().id == "chatcmpl-trace-42"
