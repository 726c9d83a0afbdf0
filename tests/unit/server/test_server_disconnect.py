"""Against a real uvicorn: client disconnects cancel generation; overload is 200 or 429."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fake_engine import FakeEngine
from server_helpers import LiveServer, sse_events

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "Hi"}]}


async def wait_until_idle(fake: FakeEngine, timeout: float = 1.0) -> float:
    start = time.monotonic()
    while fake.running:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{fake.running} requests still running after {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_streaming_clients_that_drop_abort_their_generations(
    live: LiveServer, fake: FakeEngine
) -> None:
    fake.reply = "word " * 400
    fake.max_model_len = 4096
    fake.delay = 0.01

    async def drop_after_two_chunks(client: httpx.AsyncClient) -> None:
        body = {**CHAT, "stream": True}
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            seen = 0
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    seen += 1
                if seen >= 3:
                    break  # leaving the block closes the connection mid-stream

    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        await asyncio.gather(*(drop_after_two_chunks(client) for _ in range(8)))
    await wait_until_idle(fake)
    assert len(fake.requests) == 8
    assert sorted(fake.aborted) == sorted(fake.requests)
    assert not fake.completed
    assert fake.stats().kv_usage == 0.0


async def test_non_streaming_client_that_leaves_aborts(live: LiveServer, fake: FakeEngine) -> None:
    fake.reply = "x" * 200
    fake.delay = 0.01
    async with httpx.AsyncClient(base_url=live.url, timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 200})
    await wait_until_idle(fake)
    assert fake.aborted == fake.requests and len(fake.requests) == 1


async def test_overload_is_200_or_429_and_accepted_requests_complete(
    live: LiveServer, fake: FakeEngine
) -> None:
    fake.max_running = 2
    fake.delay = 0.005
    fake.reply = "0123456789" * 3

    async def one(client: httpx.AsyncClient, stream: bool) -> httpx.Response:
        return await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})

    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        results = await asyncio.gather(*(one(client, i % 2 == 0) for i in range(8)))
    statuses = [r.status_code for r in results]
    assert set(statuses) <= {200, 429}, statuses
    assert 429 in statuses and 200 in statuses
    for r in results:
        if r.status_code == 429:
            assert r.headers["retry-after"] == "2"
        elif r.headers["content-type"].startswith("text/event-stream"):
            text = "".join(
                c["choices"][0]["delta"].get("content", "")
                for c in sse_events(r.text)[:-1]
                if c["choices"]
            )
            assert text == fake.reply
        else:
            assert r.json()["choices"][0]["message"]["content"] == fake.reply
    assert fake.running == 0 and not fake.aborted
    assert len(fake.completed) == statuses.count(200)


async def test_stream_that_leaves_before_its_first_token_aborts(
    live: LiveServer, fake: FakeEngine
) -> None:
    fake.delay = 0.5  # the first token takes longer than the client waits
    async with httpx.AsyncClient(base_url=live.url, timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    await wait_until_idle(fake)
    assert fake.aborted == fake.requests and len(fake.requests) == 1
