"""The bad-input table: every case gets its status and an OpenAI-shaped error, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fake_engine import FakeEngine
from fastapi import FastAPI
from server_helpers import assert_openai_error

from llmeco.server.state import ServerState

MSG = [{"role": "user", "content": "Hi"}]
CHAT = {"model": "fake-model", "messages": MSG}
CMPL = {"model": "fake-model", "prompt": "Hi"}

# (id, path, json body, status, param, code)
TABLE: list[tuple[str, str, Any, int, str | None, str | None]] = [
    ("not-an-object", "/v1/chat/completions", [1, 2], 400, None, "invalid_value"),
    ("missing-messages", "/v1/chat/completions", {"model": "fake-model"}, 400, "messages", None),
    ("missing-model", "/v1/chat/completions", {"messages": MSG}, 400, "model", None),
    ("empty-messages", "/v1/chat/completions", {**CHAT, "messages": []}, 400, "messages", None),
    ("temperature-type", "/v1/chat/completions", {**CHAT, "temperature": "hot"}, 400,
     "temperature", None),
    ("temperature-range", "/v1/chat/completions", {**CHAT, "temperature": 5}, 400,
     "temperature", None),
    ("n-as-string", "/v1/chat/completions", {**CHAT, "n": "2"}, 400, "n", None),
    ("n-zero", "/v1/chat/completions", {**CHAT, "n": 0}, 400, "n", None),
    ("max-tokens-zero", "/v1/chat/completions", {**CHAT, "max_tokens": 0}, 400, "max_tokens",
     None),
    ("seed-float", "/v1/chat/completions", {**CHAT, "seed": 1.5}, 400, "seed", None),
    ("bad-role", "/v1/chat/completions",
     {**CHAT, "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role", None),
    ("image-part", "/v1/chat/completions",
     {**CHAT, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     400, None, None),
    ("unknown-model", "/v1/chat/completions", {**CHAT, "model": "gpt-9"}, 404, "model",
     "model_not_found"),
    ("tool-without-function", "/v1/chat/completions", {**CHAT, "tools": [{"type": "function"}]},
     400, "tools[0].function", None),
    ("tool-choice-without-tools", "/v1/chat/completions", {**CHAT, "tool_choice": "required"},
     400, "tool_choice", None),
    ("unknown-field", "/v1/chat/completions", {**CHAT, "foo": 1}, 400, "foo",
     "unsupported_parameter"),
    ("logit-bias", "/v1/chat/completions", {**CHAT, "logit_bias": {"5": 1}}, 400, "logit_bias",
     None),
    ("stream-options-no-stream", "/v1/chat/completions",
     {**CHAT, "stream_options": {"include_usage": True}}, 400, "stream_options", None),
    ("top-logprobs-no-logprobs", "/v1/chat/completions", {**CHAT, "top_logprobs": 2}, 400,
     "top_logprobs", None),
    ("top-logprobs-range", "/v1/chat/completions",
     {**CHAT, "logprobs": True, "top_logprobs": 21}, 400, "top_logprobs", None),
    ("max-tokens-disagree", "/v1/chat/completions",
     {**CHAT, "max_tokens": 3, "max_completion_tokens": 4}, 400, "max_completion_tokens", None),
    ("schema-missing", "/v1/chat/completions",
     {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, 400,
     "response_format.json_schema.schema", None),
    ("format-unknown", "/v1/chat/completions", {**CHAT, "response_format": {"type": "yaml"}},
     400, "response_format", None),
    ("too-many-stops", "/v1/chat/completions", {**CHAT, "stop": [str(i) for i in range(17)]},
     400, "stop", None),
    ("stop-token-out-of-vocab", "/v1/chat/completions", {**CHAT, "stop_token_ids": [10**9]}, 400,
     "stop_token_ids", None),
    ("cmpl-suffix", "/v1/completions", {**CMPL, "suffix": "x"}, 400, "suffix", None),
    ("cmpl-best-of", "/v1/completions", {**CMPL, "best_of": 3}, 400, "best_of", None),
    ("cmpl-echo-logprobs-stream", "/v1/completions",
     {**CMPL, "echo": True, "logprobs": 1, "stream": True}, 400, "stream", None),
    ("cmpl-prompt-logprobs-range", "/v1/completions", {**CMPL, "prompt_logprobs": 21}, 400,
     "prompt_logprobs", None),
    ("cmpl-empty-batch", "/v1/completions", {**CMPL, "prompt": []}, 400, "prompt", None),
    ("cmpl-bad-token", "/v1/completions", {**CMPL, "prompt": [-1]}, 400, "prompt", None),
    ("cmpl-empty-tokens", "/v1/completions", {**CMPL, "prompt": [[]]}, 400, "prompt", None),
    ("cmpl-prompt-type", "/v1/completions", {**CMPL, "prompt": {"a": 1}}, 400, "prompt", None),
    ("detokenize-bad-id", "/detokenize", {"model": "fake-model", "tokens": [-5]}, 400, "tokens",
     None),
    ("tokenize-unknown-model", "/tokenize", {"model": "x", "prompt": "a"}, 404, "model",
     "model_not_found"),
    ("embeddings-without-embedder", "/v1/embeddings", {"model": "x", "input": "a"}, 404, "model",
     None),
    ("embeddings-chat-model", "/v1/embeddings", {"model": "fake-model", "input": "a"}, 400,
     "model", None),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "status", "param", "code"),
                         [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])  # fmt: skip
async def test_bad_input_table(
    client: httpx.AsyncClient,
    fake: FakeEngine,
    path: str,
    body: Any,
    status: int,
    param: str | None,
    code: str | None,
) -> None:
    r = await client.post(path, json=body)
    error = assert_openai_error(r, status)
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    assert fake.running == 0


@pytest.mark.parametrize(
    "raw", [b'{"model": ', b"", b"not json", b'{"model": "fake-model", "messages": [}', b"\xff\xfe"]
)
async def test_malformed_json(client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert assert_openai_error(r, 400)["type"] == "invalid_request_error"


async def test_context_length_names_both_numbers(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 1000})
    error = assert_openai_error(r, 400)
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "max_tokens"
    assert "256" in error["message"] and "1000" in error["message"]
    # A prompt longer than the whole context, with max_tokens left to its default.
    long = {**CHAT, "messages": [{"role": "user", "content": "x" * 300}]}
    error = assert_openai_error(await client.post("/v1/chat/completions", json=long), 400)
    assert error["code"] == "context_length_exceeded" and "256" in error["message"]
    long_cmpl = {**CMPL, "prompt": "y" * 250, "max_tokens": 10}
    error = assert_openai_error(await client.post("/v1/completions", json=long_cmpl), 400)
    assert "250" in error["message"] and "10" in error["message"]


async def test_body_too_large_content_length(client: httpx.AsyncClient) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}
    r = await client.post("/v1/chat/completions", json=big)
    assert "limit is 65536 bytes" in assert_openai_error(r, 413)["message"]


async def test_body_too_large_streamed_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "fake-model", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}]}'

    r = await client.post(
        "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    assert_openai_error(r, 413)


async def test_queue_full_is_429_with_retry_after(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.max_running = 0
    for stream in (False, True):
        r = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        error = assert_openai_error(r, 429)
        assert error["type"] == "rate_limit_error"
        assert r.headers["retry-after"] == "2"


async def test_engine_dead_is_503(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    fake.dead = True
    r = await client.post("/v1/chat/completions", json=CHAT)
    assert assert_openai_error(r, 503)["type"] == "service_unavailable_error"
    assert (await client.get("/ready")).status_code == 503


async def test_draining_is_503(client: httpx.AsyncClient, app: FastAPI) -> None:
    state: ServerState = app.state.llmeco
    state.draining = True
    assert_openai_error(await client.post("/v1/chat/completions", json=CHAT), 503)
    assert (await client.get("/ready")).status_code == 503
    assert (await client.get("/health")).status_code == 200


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert_openai_error(await client.get("/v1/nothing"), 404)
    assert_openai_error(await client.get("/v1/chat/completions"), 405)
    assert_openai_error(await client.get("/v1/models/nope"), 404)


async def test_unexpected_bug_is_500_with_request_id(
    client: httpx.AsyncClient, fake: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(prompt: object) -> list[int]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fake, "encode", boom)
    r = await client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "bug-1"})
    error = assert_openai_error(r, 500)
    assert error["type"] == "server_error"
    assert "a bug" not in error["message"]  # internals stay in the log
    assert r.headers["x-request-id"] == "bug-1"


JUNK: list[Any] = [
    None,
    0,
    "x",
    {"model": None},
    {**CHAT, "messages": [None]},
    {**CHAT, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
    {**CHAT, "messages": "hello"},
    {**CHAT, "n": 10**30},
    {**CHAT, "max_tokens": 10**30},
    {**CHAT, "seed": 10**30},
    {**CHAT, "seed": -1},
    {**CHAT, "top_p": 0},
    {**CHAT, "stop": [""]},
    {**CHAT, "stop": 5},
    {**CHAT, "top_k": -5},
    {**CHAT, "stream": "yes"},
    {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"schema": 5}}},
    {**CMPL, "prompt": [[1, "a"]]},
    {**CMPL, "prompt": [10**30]},
    {**CMPL, "prompt": ""},
]


@pytest.mark.parametrize("body", JUNK, ids=[json.dumps(j)[:40] for j in JUNK])
async def test_junk_never_500(client: httpx.AsyncClient, body: Any) -> None:
    for path in ("/v1/chat/completions", "/v1/completions", "/tokenize", "/v1/embeddings"):
        r = await client.post(path, json=body)
        assert r.status_code < 500, (path, r.text)
