"""Happy paths of every route, over the fake engine (ASGI transport, no network)."""

from __future__ import annotations

from typing import Any

import httpx
from fake_engine import FakeEngine
from fastapi import FastAPI
from server_helpers import sse_events

from llmeco.engine.request import ChatPrompt

REPLY = FakeEngine().reply
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "Hi"}]}


def chat_prompt_len(fake: FakeEngine, content: str = "Hi") -> int:
    return len(fake.encode(ChatPrompt([{"role": "user", "content": content}])))


async def test_models_list(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    (card,) = body["data"]
    assert card["id"] == "fake-model"
    assert card["object"] == "model"
    assert card["owned_by"] == "llmeco"
    assert card["max_model_len"] == 256
    assert isinstance(card["created"], int)
    r = await client.get("/v1/models/fake-model")
    assert r.json()["id"] == "fake-model"


async def test_chat_non_streaming_counts_usage_exactly(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    r = await client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "fake-model"
    assert body["id"].startswith("chatcmpl-")
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": REPLY, "refusal": None}
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    prompt = chat_prompt_len(fake)
    assert body["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": len(REPLY),
        "total_tokens": prompt + len(REPLY),
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    # No max_tokens: the rest of the context, as vLLM does for chat.
    assert fake.params[-1].max_tokens == 256 - prompt
    assert fake.running == 0 and not fake.aborted


async def test_chat_max_tokens_and_alias(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    r = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5})
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == REPLY[:5]
    assert choice["finish_reason"] == "length"
    assert r.json()["usage"]["completion_tokens"] == 5
    r = await client.post("/v1/chat/completions", json={**CHAT, "max_completion_tokens": 3})
    assert r.json()["choices"][0]["message"]["content"] == REPLY[:3]
    assert fake.params[-1].max_tokens == 3


async def test_chat_model_alias(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json={**CHAT, "model": "default"})
    assert r.status_code == 200
    assert r.json()["model"] == "fake-model"


async def test_chat_n2_and_sampling_fields(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    body: dict[str, Any] = {
        **CHAT,
        "n": 2,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 5,
        "min_p": 0.1,
        "repetition_penalty": 1.1,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "seed": 42,
        "user": "someone",
    }
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert all(c["message"]["content"] == REPLY for c in choices)
    assert r.json()["usage"]["completion_tokens"] == 2 * len(REPLY)
    p = fake.params[-1]
    assert (p.n, p.temperature, p.top_p, p.top_k, p.min_p) == (2, 0.7, 0.9, 5, 0.1)
    assert (p.repetition_penalty, p.presence_penalty, p.frequency_penalty) == (1.1, 0.5, -0.5)
    assert p.seed == 42


async def test_chat_stop(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    r = await client.post("/v1/chat/completions", json={**CHAT, "stop": "fake"})
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == REPLY[: REPLY.index("fake")]
    assert choice["finish_reason"] == "stop"
    await client.post("/v1/chat/completions", json={**CHAT, "stop": ["x", "y"]})
    assert fake.params[-1].stop == ["x", "y"]


async def test_chat_logprobs_shape(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    body = {**CHAT, "logprobs": True, "top_logprobs": 2, "max_tokens": 3}
    r = await client.post("/v1/chat/completions", json=body)
    lp = r.json()["choices"][0]["logprobs"]
    assert fake.params[-1].logprobs == 2
    assert len(lp["content"]) == 3
    first = lp["content"][0]
    assert first["token"] == REPLY[0]
    assert first["logprob"] == -0.25
    assert first["bytes"] == list(REPLY[0].encode())
    assert [t["token"] for t in first["top_logprobs"]] == [REPLY[0], "x"]
    assert set(first["top_logprobs"][0]) == {"token", "logprob", "bytes"}


async def test_chat_stream(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    r = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == REPLY
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert fake.running == 0 and not fake.aborted


async def test_chat_stream_n2_include_usage_logprobs(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    body = {
        **CHAT,
        "stream": True,
        "n": 2,
        "logprobs": True,
        "stream_options": {"include_usage": True},
    }
    r = await client.post("/v1/chat/completions", json=body)
    chunks = sse_events(r.text)[:-1]
    texts = {0: "", 1: ""}
    finish = {}
    for c in chunks[:-1]:
        assert c["usage"] is None
        (choice,) = c["choices"]
        texts[choice["index"]] += choice["delta"].get("content", "")
        if choice["delta"].get("content"):
            assert choice["logprobs"]["content"][0]["token"] == choice["delta"]["content"]
        if choice["finish_reason"]:
            finish[choice["index"]] = choice["finish_reason"]
    assert texts == {0: REPLY, 1: REPLY}
    assert finish == {0: "stop", 1: "stop"}
    last = chunks[-1]
    assert last["choices"] == []
    prompt = chat_prompt_len(fake)
    assert last["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 2 * len(REPLY),
        "total_tokens": prompt + 2 * len(REPLY),
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def test_streamed_equals_non_streamed(client: httpx.AsyncClient) -> None:
    body = {**CHAT, "temperature": 0, "max_tokens": 12}
    plain = (await client.post("/v1/chat/completions", json=body)).json()
    r = await client.post("/v1/chat/completions", json={**body, "stream": True})
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in sse_events(r.text)[:-1])
    assert streamed == plain["choices"][0]["message"]["content"]


async def test_mid_stream_failure_is_an_sse_error_event(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.fail_after = 3
    r = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    events = sse_events(r.text)
    error = events[-2]["error"]
    assert error["type"] == "server_error"
    assert "mid-generation" in error["message"]


async def test_response_format(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    r = await client.post(
        "/v1/chat/completions", json={**CHAT, "response_format": {"type": "json_object"}}
    )
    assert r.status_code == 200
    assert fake.params[-1].structured is not None
    assert fake.params[-1].structured.kind == "json_object"
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}
    r = await client.post("/v1/chat/completions", json={**CHAT, "response_format": fmt})
    assert r.status_code == 200, r.text
    structured = fake.params[-1].structured
    assert structured is not None and structured.kind == "json_schema"
    assert structured.schema == schema
    await client.post("/v1/chat/completions", json={**CHAT, "response_format": {"type": "text"}})
    assert fake.params[-1].structured is None


async def test_completions(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    r = await client.post("/v1/completions", json={"model": "fake-model", "prompt": "Once"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["choices"][0]["text"] == REPLY[:16]  # OpenAI's default max_tokens is 16
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 16,
        "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def test_completions_batch_n_echo_tokens(client: httpx.AsyncClient) -> None:
    body = {"model": "fake-model", "prompt": ["ab", "cde"], "n": 2, "max_tokens": 4}
    r = await client.post("/v1/completions", json=body)
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]
    assert all(c["text"] == REPLY[:4] for c in choices)
    assert r.json()["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 16,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    r = await client.post(
        "/v1/completions",
        json={"model": "fake-model", "prompt": [72, 105], "max_tokens": 2, "echo": True},
    )
    assert r.json()["choices"][0]["text"] == "Hi" + REPLY[:2]
    r = await client.post(
        "/v1/completions", json={"model": "fake-model", "prompt": [[72], [105]], "max_tokens": 1}
    )
    assert len(r.json()["choices"]) == 2


async def test_completions_logprobs_and_stream(client: httpx.AsyncClient) -> None:
    body = {"model": "fake-model", "prompt": "x", "max_tokens": 3, "logprobs": 2}
    lp = (await client.post("/v1/completions", json=body)).json()["choices"][0]["logprobs"]
    assert lp["tokens"] == list(REPLY[:3])
    assert lp["token_logprobs"] == [-0.25] * 3
    assert lp["text_offset"] == [0, 1, 2]
    assert lp["top_logprobs"][0] == {REPLY[0]: -0.25, "x": -1.0}
    body = {**body, "stream": True, "stream_options": {"include_usage": True}, "prompt": ["a", "b"]}
    r = await client.post("/v1/completions", json=body)
    chunks = sse_events(r.text)[:-1]
    texts = {0: "", 1: ""}
    for c in chunks[:-1]:
        (choice,) = c["choices"]
        texts[choice["index"]] += choice["text"]
    assert texts == {0: REPLY[:3], 1: REPLY[:3]}
    assert chunks[-1]["usage"]["completion_tokens"] == 6


async def test_tokenize_detokenize(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    r = await client.post("/tokenize", json={"model": "fake-model", "prompt": "Hey"})
    assert r.json() == {"count": 3, "max_model_len": 256, "tokens": [72, 101, 121]}
    r = await client.post("/tokenize", json={"model": "fake-model", "messages": CHAT["messages"]})
    assert r.json()["count"] == chat_prompt_len(fake)
    r = await client.post("/detokenize", json={"model": "fake-model", "tokens": [72, 101, 121]})
    assert r.json() == {"prompt": "Hey"}


async def test_health_ready(client: httpx.AsyncClient, fake: FakeEngine) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    r = await client.get("/ready")
    assert r.status_code == 200 and r.json()["models"] == ["fake-model"]
    fake.healthy = False
    r = await client.get("/ready")
    assert r.status_code == 503
    assert "fake-model" in r.json()["error"]["message"]
    assert (await client.get("/health")).status_code == 200


async def test_chat_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "/v1/chat/completions" in r.text and "/v1/models" in r.text


async def test_mcp_endpoint(client: httpx.AsyncClient, app: FastAPI, fake: FakeEngine) -> None:
    """``/mcp`` answers JSON-RPC while its session manager runs (ServerRuntime.serve runs it)."""

    def rpc(method: str, params: dict[str, Any], id_: int = 1) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}

    init = rpc(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    )
    headers = {"x-request-id": "mcp-1", "mcp-protocol-version": "2025-06-18"}
    async with app.state.mcp.running():
        r = await client.post("/mcp", json=init)
        assert r.status_code == 200, r.text
        assert r.json()["result"]["capabilities"]["tools"] is not None
        r = await client.post("/mcp", json=rpc("tools/list", {}, 2), headers=headers)
        assert r.headers["x-request-id"] == "mcp-1"
        names = [tool["name"] for tool in r.json()["result"]["tools"]]
        assert names[0] == "chat" and "summarize" in names  # no knowledge bases: no store
        call = rpc("tools/call", {"name": "chat", "arguments": {"prompt": "Hi"}}, 3)
        r = await client.post("/mcp", json=call, headers=headers)
        result = r.json()["result"]
        assert not result["isError"] and result["structuredContent"]["text"] == fake.reply
        r = await client.get("/mcp")  # stateless: no standalone stream to open
        assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert "/mcp" not in (await client.get("/openapi.json")).json()["paths"]
    text = (await client.get("/metrics")).text
    assert 'llmeco_requests_total{model="fake-model",route="/mcp",status="200"} 1.0' in text


async def test_request_ids(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "abc-1.2_3"})
    assert r.headers["x-request-id"] == "abc-1.2_3"
    assert r.json()["id"] == "chatcmpl-abc-1.2_3"
    r = await client.get("/health", headers={"x-request-id": "bad id!<script>" + "a" * 300})
    rid = r.headers["x-request-id"]
    assert rid.startswith("badidscript") and len(rid) == 128
    generated = (await client.get("/health")).headers["x-request-id"]
    assert len(generated) == 32
    assert generated != (await client.get("/health")).headers["x-request-id"]
    r = await client.get("/nope", headers={"x-request-id": "err-1"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "err-1"


async def test_metrics_after_requests(client: httpx.AsyncClient) -> None:
    await client.post("/v1/chat/completions", json=CHAT)
    await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
    text = (await client.get("/metrics")).text
    for name in (
        "llmeco_requests_total",
        "llmeco_http_request_duration_seconds_bucket",
        "llmeco_e2e_request_latency_seconds_bucket",
        "llmeco_time_to_first_token_seconds_bucket",
        "llmeco_inter_token_latency_seconds_bucket",
        "llmeco_request_queue_time_seconds_bucket",
        "llmeco_prompt_tokens_total",
        "llmeco_generation_tokens_total",
        "llmeco_num_requests_running",
        "llmeco_num_requests_waiting",
        "llmeco_kv_cache_usage_ratio",
        "llmeco_process_resident_memory_bytes",
    ):
        assert name in text, name
    ok = 'llmeco_requests_total{model="fake-model",route="/v1/chat/completions",status="200"} 2.0'
    assert ok in text
    assert 'model="",route="/v1/chat/completions",status="404"' in text
    assert f'llmeco_generation_tokens_total{{model="fake-model"}} {2.0 * len(REPLY)}' in text
    assert 'llmeco_num_requests_running{model="fake-model"} 0.0' in text


async def test_cached_prompt_tokens_are_reported_in_usage(
    client: httpx.AsyncClient, fake: FakeEngine
) -> None:
    fake.cached_tokens = 3
    r = await client.post("/v1/completions", json={"model": "fake-model", "prompt": ["abcd", "ef"]})
    assert r.json()["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}
    r = await client.post("/v1/chat/completions", json=CHAT)
    assert r.json()["usage"]["prompt_tokens_details"] == {"cached_tokens": 3}
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    r = await client.post("/v1/chat/completions", json=body)
    last = sse_events(r.text)[-2]
    assert last["usage"]["prompt_tokens_details"] == {"cached_tokens": 3}
