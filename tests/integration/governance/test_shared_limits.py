"""Must-show 3: two server processes sharing Redis enforce one RPM limit between them.

Each replica is a real process serving the real app (auth on, Redis limits) through the
``ServerRuntime`` that ``llmeco serve`` uses, over the fake engine (the engine is not the subject).
2 × RPM requests are sent as fast as possible, alternating between the replicas: the number
accepted must be within 5% of the limit, not limit × replicas. (RPM is a token bucket of
``rpm`` refilled at ``rpm/60`` per second, so a burst gets ``rpm`` plus the refill during the
burst; the test also checks that bound.)
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from gov_helpers import bearer, chat_body

from llmeco.governance.keys import KeyStore
from llmeco.governance.limits import today
from llmeco.governance.scopes import Grant
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

UNIT_SERVER = Path(__file__).resolve().parents[2] / "unit" / "server"
RPM = 100

REPLICA = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {unit!r})
    from fake_engine import FakeEngine
    from llmeco.server.runtime import ServerRuntime
    from llmeco.server import build_app
    from llmeco.server.auth import Authenticator
    from llmeco.settings import Settings

    settings = Settings()
    fake = FakeEngine(reply="ok")
    app = build_app(settings, {{fake.name: fake}}, auth=Authenticator.open(settings))
    asyncio.run(ServerRuntime(app).run("127.0.0.1", 0, shutdown_timeout=1.0))
    """
)


def start_replica(env: dict[str, str]) -> subprocess.Popen[str]:
    code = REPLICA.format(unit=str(UNIT_SERVER))
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def wait_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if match:
            return match.group(1)
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"replica did not start (exit code {proc.poll()})")


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[tuple[list[str], str]]:
    env = {
        **os.environ,
        "LLMECO_HOME": str(tmp_path),
        "LLMECO_REDIS_URL": redis_url,
        "LLMECO_SECRET_KEY": "shared-secret",
        "LLMECO_LOG_LEVEL": "WARNING",
    }
    settings = Settings(home=tmp_path, redis_url=redis_url, secret_key="shared-secret")  # type: ignore[arg-type]
    keys = KeyStore.from_settings(settings)
    _key, token = keys.create("shared", Grant(scopes=frozenset({"chat"}), rpm=RPM))
    keys.store.close()
    procs = [start_replica(env) for _ in range(2)]
    try:
        urls = [wait_url(p) for p in procs]
        yield urls, token
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


async def test_two_replicas_share_one_rpm_limit(
    replicas: tuple[list[str], str], redis_url: str
) -> None:
    urls, token = replicas
    sent = 2 * RPM
    statuses: list[tuple[int, int]] = []
    sem = asyncio.Semaphore(16)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        async with sem:
            r = await client.post(
                f"{urls[i % 2]}/v1/chat/completions",
                json=chat_body(max_tokens=2),
                headers=bearer(token),
            )
            if r.status_code == 429:
                assert "requests per minute (rpm)" in r.json()["error"]["message"]
                assert int(r.headers["retry-after"]) >= 1
            statuses.append((i % 2, r.status_code))

    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one(client, i) for i in range(sent)))
        elapsed = time.perf_counter() - start
    accepted = sum(1 for _, s in statuses if s == 200)
    refused = sum(1 for _, s in statuses if s == 429)
    per_replica = [sum(1 for r, s in statuses if r == i and s == 200) for i in (0, 1)]
    print(f"\n{sent} requests in {elapsed:.2f} s: {accepted} accepted {per_replica}, {refused} 429")
    assert accepted + refused == sent
    assert min(per_replica) > 0  # both replicas served their share
    assert abs(accepted - RPM) <= 0.05 * RPM  # one limit, not RPM × replicas
    assert accepted <= RPM + elapsed * RPM / 60 + 1  # bucket + refill during the burst
    stored = redis.Redis.from_url(redis_url).hgetall(f"llmeco:usage:{_key_id(token)}:{today()}")
    assert int(stored[b"requests"]) == accepted  # the enforcing counter = the reported one


def _key_id(token: str) -> str:
    return token.split("-")[2]
