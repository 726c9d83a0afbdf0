"""Must-show 4: a 500-token daily budget is cut off at 500 (± one chunk per live stream), the
usage /admin/usage reports equals what was enforced and what clients were billed, it covers
every route that spends tokens, and it survives a restart. In process memory and in Redis.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_engine import FakeEngine
from gov_helpers import bearer, chat_body, governed_app, make_key

from llmeco.server.auth import Authenticator
from llmeco.settings import Settings

BUDGET = 500


@pytest.fixture(params=["memory", "redis"])
def bsettings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    return Settings(home=tmp_path, secret_key="s", redis_url=redis_url)  # type: ignore[arg-type]


@pytest.fixture
async def bauth(bsettings: Settings) -> AsyncIterator[Authenticator]:
    a = Authenticator.open(bsettings)
    yield a
    await a.aclose()


async def stream_chat(client: httpx.AsyncClient, token: str, **extra: Any) -> dict[str, Any]:
    """One streamed chat; its status, finish reasons, billed usage and any error event."""
    body = chat_body("hi", stream=True, stream_options={"include_usage": True}, **extra)
    out: dict[str, Any] = {"finish": [], "usage": None, "error": None}
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=bearer(token)) as r:
        out["status"] = r.status_code
        if r.status_code != 200:
            out["body"] = json.loads(await r.aread())
            out["retry_after"] = r.headers.get("retry-after")
            return out
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if "error" in event:
                out["error"] = event["error"]
            if event.get("usage"):
                out["usage"] = event["usage"]
            for choice in event.get("choices", []):
                if choice["finish_reason"]:
                    out["finish"].append(choice["finish_reason"])
    return out


async def usage_of(client: httpx.AsyncClient, admin: str, key_id: str) -> dict[str, Any]:
    r = await client.get(f"/admin/usage?key_id={key_id}", headers=bearer(admin))
    assert r.status_code == 200
    data: dict[str, Any] = r.json()["data"][0]
    return data


async def test_sequential_streams_stop_exactly_at_the_budget(
    bsettings: Settings, bauth: Authenticator
) -> None:
    fake = FakeEngine(reply="x" * 90)
    app = governed_app(bsettings, bauth, fake)
    _, admin = make_key(bauth, name="root")
    key, token = make_key(bauth, ["chat"], daily_tokens=BUDGET)
    billed = 0
    results = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for _ in range(20):
            res = await stream_chat(c, token)
            results.append(res)
            if res["status"] != 200:
                break
            billed += res["usage"]["total_tokens"]
        refused = results[-1]
        assert refused["status"] == 429
        assert "Daily token budget" in refused["body"]["error"]["message"]
        assert "daily_tokens" in refused["body"]["error"]["message"]
        assert int(refused["retry_after"]) >= 1
        last = results[-2]
        assert last["finish"] == ["length"]  # capped at what was left of the budget
        assert billed == BUDGET  # a lone stream ends exactly on the budget
        reported = await usage_of(c, admin, key.id)
        assert reported["total_tokens"] == billed == BUDGET
        assert reported["remaining_tokens"] == 0
        assert reported["requests"] == len(results)  # the refused request is still counted
        own = (await c.get("/v1/usage", headers=bearer(token))).json()
        assert own["total_tokens"] == BUDGET
        # Every other token-spending route is refused too.
        for path, body in (
            ("/v1/completions", {"model": "fake-model", "prompt": "a", "max_tokens": 1}),
            ("/v1/tasks/translate", {"text": "hola", "target_language": "en"}),
        ):
            r = await c.post(path, json=body, headers=bearer(token))
            assert r.status_code in (403, 429)
        assert (await usage_of(c, admin, key.id))["total_tokens"] == BUDGET


async def test_concurrent_streams_overshoot_by_at_most_one_chunk_each(
    bsettings: Settings, bauth: Authenticator
) -> None:
    fake = FakeEngine(reply="y" * 200, delay=0.002)
    app = governed_app(bsettings, bauth, fake)
    _, admin = make_key(bauth, name="root")
    key, token = make_key(bauth, ["chat"], daily_tokens=BUDGET)
    streams = 8
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        results = await asyncio.gather(*(stream_chat(c, token) for _ in range(streams)))
        assert all(r["status"] == 200 and r["error"] is None for r in results)
        assert all(r["finish"] == ["length"] for r in results)  # every one was cut
        billed = sum(r["usage"]["total_tokens"] for r in results)
        reported = await usage_of(c, admin, key.id)
    assert reported["total_tokens"] == billed  # the counter that enforced is the one reported
    assert BUDGET <= billed <= BUDGET + streams  # each live stream's final chunk: 1 token here
    assert not fake.running  # the cut streams were aborted in the engine


async def test_budget_covers_embeddings_and_survives_a_restart(
    bsettings: Settings, bauth: Authenticator
) -> None:
    app = governed_app(bsettings, bauth)
    _, admin = make_key(bauth, name="root")
    key, token = make_key(bauth, ["embeddings", "completions"], daily_tokens=20)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        body = {"model": "fake-embed", "input": ["one two three four five"] * 3}
        assert (await c.post("/v1/embeddings", json=body, headers=bearer(token))).status_code == 200
        r = await c.post(
            "/v1/completions",
            json={"model": "fake-model", "prompt": "abc", "max_tokens": 50},
            headers=bearer(token),
        )
        assert r.status_code == 200
        assert (
            r.json()["usage"]["total_tokens"] == 5
            and r.json()["choices"][0]["finish_reason"] == "length"
        )
        assert (await usage_of(c, admin, key.id))["total_tokens"] == 20
    await bauth.aclose()  # a restart: usage was written to the store
    if bsettings.redis_url:
        import redis

        redis.Redis.from_url(bsettings.redis_url).flushdb()  # and even Redis forgot it
    again = Authenticator.open(bsettings)
    try:
        app = governed_app(bsettings, again)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            body = {"model": "fake-embed", "input": "one"}
            r = await c.post("/v1/embeddings", json=body, headers=bearer(token))
            assert r.status_code == 429 and "Daily token budget" in r.json()["error"]["message"]
            assert (await c.get("/v1/usage", headers=bearer(token))).json()["total_tokens"] == 20
    finally:
        await again.aclose()
