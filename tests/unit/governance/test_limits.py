"""Limits: RPM and TPM buckets, the daily budget, refunds and persistence — the same
behaviour in process memory and in Redis (atomic across limiter instances)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis
from gov_helpers import bearer, governed_app, make_key

from llmeco.errors import EngineDead, LimitExceeded, LimitsUnavailable, ServiceUnavailable
from llmeco.governance.keys import ApiKey, utc_now
from llmeco.governance.limits import Limiter, MemoryLimiter, UsageLedger, open_limiter, today
from llmeco.governance.limits.redis import RedisLimiter, read_usage
from llmeco.server.auth import Authenticator
from llmeco.server.errors import describe
from llmeco.settings import Settings
from llmeco.store import Store

#: Nothing listens on port 1: a Redis that is down. The password must never be shown.
DOWN_REDIS = "redis://limits:s3cret@127.0.0.1:1/0"


def key(**limits: int | None) -> ApiKey:
    return ApiKey(id="k" * 12, name="t", created_at=utc_now(), scopes=frozenset({"chat"}), **limits)


@pytest.fixture
def ledger(tmp_path: Path) -> UsageLedger:
    return UsageLedger(Store.from_settings(Settings(home=tmp_path)))


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, ledger: UsageLedger) -> AsyncIterator[Limiter]:
    if request.param == "memory":
        lim: Limiter = MemoryLimiter(ledger)
    else:
        lim = RedisLimiter(request.getfixturevalue("redis_url"), ledger)
    yield lim
    await lim.aclose()


async def test_rpm_bucket_refuses_then_refills(limiter: Limiter) -> None:
    k = key(rpm=120)  # 2 per second
    for _ in range(120):
        await limiter.admit(k)
    with pytest.raises(LimitExceeded, match=r"120 requests per minute \(rpm\)") as info:
        await limiter.admit(k)
    assert 0 < info.value.retry_after <= 1
    await asyncio.sleep(0.6)
    await limiter.admit(k)
    assert (await limiter.usage(k.id)).requests == 121


async def test_daily_budget_counts_prompt_and_output(limiter: Limiter) -> None:
    k = key(daily_tokens=100)
    assert await limiter.reserve(k, 60) == 40
    with pytest.raises(LimitExceeded, match="daily_tokens") as info:
        await limiter.reserve(k, 40)  # no room left for a single output token
    assert info.value.retry_after >= 1
    assert await limiter.reserve(k, 30) == 10
    assert await limiter.consume(k, 15) == -5  # output is charged even past the budget
    await limiter.refund(k, 30)
    u = await limiter.usage(k.id)
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (60, 15, 75)
    assert await limiter.reserve(k, 5, room=0) == 20  # embeddings need no room


async def test_tpm_bucket_allows_debt_then_waits(limiter: Limiter) -> None:
    k = key(tpm=600)  # 10 tokens per second
    assert await limiter.reserve(k, 500) is None
    await limiter.consume(k, 200)  # the bucket is now at -100
    with pytest.raises(LimitExceeded, match=r"600 tokens per minute \(tpm\)") as info:
        await limiter.reserve(k, 1)
    assert 9 <= info.value.retry_after <= 12
    await limiter.refund(k, 500)  # gives the tokens back to the bucket too
    assert await limiter.reserve(k, 1) is None


async def test_unlimited_keys_are_only_counted(limiter: Limiter) -> None:
    k = key()
    for _ in range(3):
        await limiter.admit(k)
        assert await limiter.reserve(k, 1000) is None
        assert await limiter.consume(k, 1000) is None
    u = await limiter.usage(k.id)
    assert (u.requests, u.total_tokens) == (3, 6000)


async def test_usage_survives_a_restart(limiter: Limiter, ledger: UsageLedger) -> None:
    k = key(daily_tokens=100)
    await limiter.admit(k)
    await limiter.reserve(k, 50)
    await limiter.consume(k, 30)
    limiter.flush()
    stored = ledger.read(k.id, today())
    assert (stored.prompt_tokens, stored.completion_tokens, stored.requests) == (50, 30, 1)
    if isinstance(limiter, RedisLimiter):  # Redis lost its data: reseeded from the store
        redis.Redis.from_url(limiter.url).flushdb()
        fresh: Limiter = RedisLimiter(limiter.url, ledger)
    else:
        fresh = MemoryLimiter(ledger)
    try:
        assert (await fresh.usage(k.id)).total_tokens == 80
        with pytest.raises(LimitExceeded):
            await fresh.reserve(k, 20)
        assert await fresh.reserve(k, 10) == 10
    finally:
        await fresh.aclose()


async def test_redis_limits_are_atomic_across_instances(
    redis_url: str, ledger: UsageLedger
) -> None:
    a, b = RedisLimiter(redis_url, ledger), RedisLimiter(redis_url, ledger)
    k = key(rpm=30, daily_tokens=1000)

    async def hit(lim: Limiter) -> bool:
        try:
            await lim.admit(k)
        except LimitExceeded:
            return False
        return True

    results = await asyncio.gather(*(hit(a if i % 2 else b) for i in range(90)))
    assert 30 <= sum(results) <= 31  # one refill at most during the burst

    async def spend(lim: Limiter) -> bool:
        try:
            await lim.reserve(k, 30)
        except LimitExceeded:
            return False
        return True

    spent = await asyncio.gather(*(spend(a if i % 2 else b) for i in range(60)))
    assert sum(spent) == 33  # 33 × 30 = 990; a 34th would leave no room
    assert (await a.usage(k.id)).prompt_tokens == (await b.usage(k.id)).prompt_tokens == 990
    await a.aclose()
    await b.aclose()


async def test_memory_buckets_follow_the_clock(ledger: UsageLedger) -> None:
    now = [0.0]
    lim = MemoryLimiter(ledger, clock=lambda: now[0])
    k = key(rpm=2)
    await lim.admit(k)
    await lim.admit(k)
    with pytest.raises(LimitExceeded) as info:
        await lim.admit(k)
    assert info.value.retry_after == 30
    now[0] = 30.0
    await lim.admit(k)


def test_open_limiter_picks_the_backend_from_settings(tmp_path: Path) -> None:
    memory = open_limiter(Settings(home=tmp_path), None)
    shared = open_limiter(Settings(home=tmp_path, redis_url=DOWN_REDIS), None)
    assert isinstance(memory, MemoryLimiter) and memory.ledger is None
    assert isinstance(shared, RedisLimiter) and shared.url == DOWN_REDIS


async def test_redis_outage_is_limits_unavailable_503(ledger: UsageLedger) -> None:
    lim = RedisLimiter(DOWN_REDIS, ledger)
    k = key(rpm=10, daily_tokens=100)
    try:
        for call in (lim.admit(k), lim.reserve(k, 5), lim.consume(k, 5), lim.usage(k.id)):
            with pytest.raises(LimitsUnavailable) as info:
                await call
            exc = info.value
            assert isinstance(exc, ServiceUnavailable) and not isinstance(exc, EngineDead)
            assert "redis://127.0.0.1:1/0" in exc.message
            assert "s3cret" not in exc.message and "limits:" not in exc.message
            status, body, headers = describe(exc)
            assert status == 503 and headers == {}
            assert body["error"]["type"] == "service_unavailable_error"
            assert body["error"]["code"] == "limits_unavailable"
    finally:
        await lim.aclose()
    with pytest.raises(LimitsUnavailable, match=r"redis://127\.0\.0\.1:1/0"):
        read_usage(DOWN_REDIS, k.id, today())  # what `llmeco keys usage` reads


async def test_redis_outage_answers_503_limits_unavailable(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, secret_key="s", redis_url=DOWN_REDIS)  # type: ignore[arg-type]
    auth = Authenticator.open(settings)
    _, token = make_key(auth, name="root")
    transport = httpx.ASGITransport(app=governed_app(settings, auth))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.get("/v1/models", headers=bearer(token))
    finally:
        await auth.aclose()
    assert r.status_code == 503
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("service_unavailable_error", "limits_unavailable")
    assert "Redis at redis://127.0.0.1:1/0" in error["message"]
    assert "s3cret" not in r.text
