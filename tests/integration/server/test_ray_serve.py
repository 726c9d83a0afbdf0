"""Scale-out on Ray Serve (issue 16, must-show 4), through the real ``llmeco serve --ray``.

One local Ray cluster runs two replicas of ``tiny@production`` (a tiny random Llama in the
registry) that share one PostgreSQL database (keys, ledger, registry) and one Redis (limits).
In order, on that one cluster:

1. a key's RPM limit holds within 5% across both replicas under load (not twice the limit);
2. under load, one replica's process is killed with SIGKILL: every request that was answered
   200 has its entry in the one audit chain, ``llmeco audit verify`` passes, and Serve starts
   a new replica process;
3. a promote (``production`` → version 2) reaches both replicas.

Which replica served a request is read from Serve's own per-replica access logs (the
request's ``x-request-id``), so the test needs no hook in the server.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is in the `ray` extra (in the dev lock)")

pytestmark = pytest.mark.slow

RPM = 120
REPLICA = "ServeReplica:llmeco:llmeco"


@dataclass
class Cluster:
    url: str
    admin: str
    env: dict[str, str]
    ray_dir: Path
    driver: subprocess.Popen[str]

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin}"}

    def replica_pids(self) -> list[int]:
        pids = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if REPLICA in cmdline:
                pids.append(proc.info["pid"])
        return sorted(pids)

    def served_by(self) -> dict[str, str]:
        """request id → the replica whose access log has it (Serve's replica logs)."""
        found: dict[str, str] = {}
        pattern = re.compile(r" (\w+) ([0-9a-f-]{36}) -- [A-Z]+ /\S* \d{3} ")
        for log in self.ray_dir.glob("**/logs/serve/replica_llmeco_llmeco_*.log"):
            for line in log.read_text(errors="replace").splitlines():
                match = pattern.search(line)
                if match:
                    found[match.group(2)] = match.group(1)
        return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tiny_llama_dir: Path) -> Iterator[Cluster]:
    import psycopg
    import redis

    from llmeco.registry.registry import Registry
    from llmeco.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="llmeco-ray-", dir="/tmp"))  # short: Ray's sockets
    db = f"llmeco_ray_{uuid.uuid4().hex[:10]}"
    admin_url = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    redis_url = f"redis://127.0.0.1:6379/{1 + (os.getpid() + 7) % 15}"
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "LLMECO_HOME": str(work / "home"),
        "LLMECO_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
        "LLMECO_REDIS_URL": redis_url,
        "LLMECO_DEVICE": "cpu",
        "LLMECO_THREADS": "1",
        "LLMECO_MODEL_POLL_SECONDS": "0.5",
        "LLMECO_KV_CACHE_TOKENS": "4096",
        "LLMECO_KEY_CACHE_SECONDS": "0",
        "LLMECO_LOG_LEVEL": "WARNING",
        "RAY_TMPDIR": str(work / "r"),
    }
    settings = Settings(
        home=Path(env["LLMECO_HOME"]), database_url=env["LLMECO_DATABASE_URL"], redis_url=redis_url
    )
    registry = Registry.open(settings)
    registry.register(tiny_llama_dir, "tiny", actor="test")
    registry.register(tiny_llama_dir, "tiny", actor="test")
    registry.set_alias("tiny", 1, "production", actor="test")
    registry.store.close()
    port = _free_port()
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmeco.cli.serve",
            "--ray",
            "--replicas",
            "2",
            "--replica-cpus",
            "0.5",
            "--model",
            "tiny@production",
            "--no-embeddings",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # a signal to the test's group must not reach Ray's processes
    )
    admin = url = ""
    assert driver.stdout is not None
    deadline = time.monotonic() + 300
    for line in driver.stdout:
        key = re.search(r"^\s+(sk-llmeco-\S+)\s*$", line)
        if key and not admin:
            admin = key.group(1)
        found = re.search(r"at (http://\S+?)/ on Ray Serve", line)
        if found:
            url = found.group(1)
            break
        assert time.monotonic() < deadline, "Ray Serve did not start"
    assert url and admin, f"driver exited ({driver.poll()}) before serving"
    cluster = Cluster(url, admin, env, work / "r", driver)
    try:
        yield cluster
    finally:
        driver.send_signal(signal.SIGTERM)
        try:
            driver.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(10)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


def test_rpm_limit_is_shared_by_both_replicas(cluster: Cluster) -> None:
    created = httpx.post(
        f"{cluster.url}/admin/keys",
        json={"name": "rpm", "scopes": ["models"], "rpm": RPM},
        headers=cluster.headers(),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    async def load() -> tuple[Counter[int], list[str], float]:
        statuses: Counter[int] = Counter()
        ids: list[str] = []
        stop = time.monotonic() + 8.0
        async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:

            async def one_client() -> None:
                while time.monotonic() < stop:
                    r = await client.get("/v1/models", headers=cluster.headers(key))
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        (request_id,) = r.headers.get_list("x-request-id")  # once, not twice
                        ids.append(request_id)

            started = time.monotonic()
            await asyncio.gather(*(one_client() for _ in range(8)))
            return statuses, ids, time.monotonic() - started

    statuses, ids, elapsed = asyncio.run(load())
    # A bucket of RPM requests, refilled at RPM/60 per second during the burst.
    bound = RPM + RPM * elapsed / 60
    served = Counter(cluster.served_by().get(i) for i in ids)
    print({"statuses": dict(statuses), "bound": round(bound, 1), "replicas": dict(served)})
    assert set(statuses) == {200, 429}, statuses
    assert 0.95 * bound <= statuses[200] <= bound + 1, (statuses, bound)
    assert len([r for r in served if r]) == 2, served  # both replicas took a share


def test_killed_replica_loses_no_acknowledged_request(cluster: Cluster) -> None:
    before = cluster.replica_pids()
    assert len(before) == 2, before
    body = {"model": "tiny@production", "prompt": "Once upon", "max_tokens": 4}

    async def load() -> list[tuple[int | None, str]]:
        results: list[tuple[int | None, str]] = []
        stop = time.monotonic() + 20.0
        async with httpx.AsyncClient(base_url=cluster.url, timeout=60) as client:

            async def one_client() -> None:
                while time.monotonic() < stop:
                    try:
                        r = await client.post(
                            "/v1/completions", json=body, headers=cluster.headers()
                        )
                        results.append((r.status_code, r.headers.get("x-request-id", "")))
                    except httpx.HTTPError:
                        results.append((None, ""))

            async def kill() -> None:
                await asyncio.sleep(6.0)
                os.kill(before[0], signal.SIGKILL)

            await asyncio.gather(kill(), *(one_client() for _ in range(8)))
        return results

    results = asyncio.run(load())
    acknowledged = {rid for status, rid in results if status == 200}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        after = cluster.replica_pids()
        if len(after) == 2 and before[0] not in after:
            break
        time.sleep(1)
    print({"requests": len(results), "statuses": Counter(s for s, _ in results)})
    assert len(after) == 2 and before[0] not in after, (before, after)  # Serve replaced it
    assert len(acknowledged) > 20

    from sqlalchemy import select

    from llmeco.governance.audit.tables import AuditEntry
    from llmeco.settings import Settings
    from llmeco.store import Store

    store = Store.from_settings(Settings(database_url=cluster.env["LLMECO_DATABASE_URL"]))
    with store.session() as s:
        logged = set(s.execute(select(AuditEntry.request_id)).scalars())
    store.close()
    assert acknowledged <= logged, sorted(acknowledged - logged)[:5]
    verify = subprocess.run(
        [sys.executable, "-m", "llmeco", "audit", "verify"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_promote_reaches_both_replicas(cluster: Cluster) -> None:
    from llmeco.registry.registry import Registry
    from llmeco.settings import Settings

    env = cluster.env
    settings = Settings(
        home=Path(env["LLMECO_HOME"]),
        database_url=env["LLMECO_DATABASE_URL"],
        redis_url=env["LLMECO_REDIS_URL"],
    )
    registry = Registry.open(settings)
    registry.set_alias("tiny", 2, "production", actor="test", action="promote")
    registry.store.close()
    body = {"model": "tiny@production", "prompt": "Hello", "max_tokens": 2}
    on_new: dict[str, int] = {}
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=cluster.url, timeout=60, headers=cluster.headers()) as client:
        while time.monotonic() < deadline:
            r = client.post("/v1/completions", json=body)
            assert r.status_code == 200, r.text
            seen.append({"id": r.headers["x-request-id"], "fp": r.json()["system_fingerprint"]})
            served = cluster.served_by()
            replicas = {served.get(x["id"]) for x in seen[-10:]} - {None}
            recent = seen[-10:]
            if (
                len(recent) == 10
                and all(x["fp"] == "tiny:2" for x in recent)
                and len(replicas) == 2
            ):
                break
        else:
            raise AssertionError(f"promote did not reach both replicas: {seen[-10:]}")
    for x in seen[-10:]:
        on_new[served[x["id"]]] = on_new.get(served[x["id"]], 0) + 1
    print({"requests_until_both_on_v2": len(seen), "last_10_by_replica": on_new})
