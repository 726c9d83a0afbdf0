"""Faults between the gateway and its upstreams, with real processes.

Two ``llmeco serve`` upstreams (a tiny random-weight model, for speed) behind one gateway:
one is killed with SIGKILL while 16 clients run (no accepted non-streamed request fails, a
broken stream ends with an error event, the URL's breaker opens and the metric shows it),
a model whose only URL is down is answered by its fallback, the killed upstream is
restarted on the same port and re-admitted; and an upstream that accepts connections and
never answers hits the gateway's own timeout (504).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from gateway_helpers import Served, serve, served_model, write_config
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

BODY = {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 24}


class HangingServer:
    """Accepts TCP connections, reads nothing back, never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@dataclass
class Cluster:
    home: Path
    tiny: Path
    u1: Served
    u2: Served
    gateway: Served
    extra: list[Served] = field(default_factory=list)

    def metric(self, name: str, **labels: str) -> float | None:
        text = httpx.get(self.gateway.url + "/metrics", timeout=30).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return None


def start_upstream(home: Path, tiny: Path, port: int | None = None) -> Served:
    return serve(home, "--no-auth", "--no-embeddings", "--model", str(tiny), port=port)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("faults")
    hang = HangingServer()
    procs: list[Served] = []
    try:
        procs.append(start_upstream(home / "u1", tiny_llama_dir))
        procs.append(start_upstream(home / "u2", tiny_llama_dir))
        u1, u2 = procs
        model = served_model(u1.url)
        quick = {"model": model, "cooldown": 2, "failure_threshold": 2, "backoff": 0.05}
        config = write_config(
            home / "models.yaml",
            [
                {"name": "primary", "urls": [u1.url, u2.url], **quick},
                {"name": "solo", "urls": [u1.url], "fallbacks": ["spare"], **quick},
                {"name": "spare", "urls": [u2.url], **quick},
                {"name": "hang", "urls": [hang.url], "timeout": 1.5, "retries": 0},
            ],
        )
        gateway = serve(home / "gw", "--no-auth", "--models-config", str(config))
        procs.append(gateway)
        cluster = Cluster(home, tiny_llama_dir, u1, u2, gateway)
        yield cluster
        procs += cluster.extra
    finally:
        for p in procs:
            p.stop()
        hang.close()


@dataclass
class Outcomes:
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    streams_done: int = 0
    streams_errored: list[str] = field(default_factory=list)
    streams_truncated: list[str] = field(default_factory=list)


async def one_stream(http: httpx.AsyncClient, url: str, out: Outcomes) -> None:
    events: list[str] = []
    try:
        async with http.stream(
            "POST", url, json={"model": "primary", "stream": True, **BODY}
        ) as response:
            if response.status_code != 200:
                out.failed.append(f"stream {response.status_code}: {await response.aread()!r}")
                return
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
    except httpx.HTTPError as exc:
        out.streams_truncated.append(f"transport: {exc!r}")
        return
    if not events or events[-1] != "[DONE]":
        out.streams_truncated.append(f"no [DONE]: {events[-2:]}")
    elif len(events) > 1 and '"error"' in events[-2]:
        error = json.loads(events[-2])["error"]
        out.streams_errored.append(f"{error['code']}: {error['message']}")
    else:
        out.streams_done += 1


async def run_clients(base: str, out: Outcomes, stop: asyncio.Event) -> None:
    async def client(i: int) -> None:
        async with httpx.AsyncClient(timeout=120) as http:
            while not stop.is_set():
                if i % 2:
                    await one_stream(http, base + "/v1/chat/completions", out)
                    continue
                r = await http.post(
                    base + "/v1/chat/completions", json={"model": "primary", **BODY}
                )
                if r.status_code == 200 and r.json()["choices"]:
                    out.ok += 1
                else:
                    out.failed.append(f"{r.status_code}: {r.text[:300]}")

    await asyncio.gather(*(client(i) for i in range(16)))


def wait_for(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.25)
    return False


async def test_sigkill_under_load_then_fallback_then_readmission(cluster: Cluster) -> None:
    u1_url = cluster.u1.url + "/v1"
    out = Outcomes()
    stop = asyncio.Event()
    clients = asyncio.create_task(run_clients(cluster.gateway.url, out, stop))
    await asyncio.sleep(4)
    before_kill = out.ok
    cluster.u1.proc.kill()  # SIGKILL: connections drop mid-response
    cluster.u1.proc.wait()
    await asyncio.sleep(4)
    stop.set()
    await clients
    assert before_kill > 0 and out.ok > before_kill  # served before and after the kill
    assert out.failed == []  # no accepted non-streamed request failed
    assert out.streams_truncated == []  # never a silent truncation
    assert out.streams_done > 0
    assert out.streams_errored, "no stream was cut by the kill"
    assert all(e.startswith("upstream_error") for e in out.streams_errored)

    def ejected() -> bool:
        return cluster.metric("llmeco_upstream_breaker_state", upstream="primary", url=u1_url) == 1

    assert wait_for(ejected, 10)
    errors = cluster.metric("llmeco_upstream_errors_total", upstream="primary", url=u1_url)
    assert errors is not None and errors >= 2

    async with httpx.AsyncClient(timeout=120) as http:  # every URL of `solo` is down
        r = await http.post(
            cluster.gateway.url + "/v1/chat/completions", json={"model": "solo", **BODY}
        )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None
    spare = cluster.metric(
        "llmeco_upstream_requests_total",
        upstream="spare",
        url=cluster.u2.url + "/v1",
        outcome="200",
    )
    assert spare == 1

    served_before = (
        cluster.metric(
            "llmeco_upstream_requests_total", upstream="primary", url=u1_url, outcome="200"
        )
        or 0
    )
    cluster.extra.append(start_upstream(cluster.home / "u1", cluster.tiny, port=cluster.u1.port))

    def readmitted() -> bool:
        return cluster.metric("llmeco_upstream_breaker_state", upstream="primary", url=u1_url) == 0

    assert wait_for(readmitted, 20)
    async with httpx.AsyncClient(timeout=120) as http:
        replies = await asyncio.gather(
            *(
                http.post(
                    cluster.gateway.url + "/v1/chat/completions", json={"model": "primary", **BODY}
                )
                for _ in range(8)
            )
        )
    assert [r.status_code for r in replies] == [200] * 8
    served_after = cluster.metric(
        "llmeco_upstream_requests_total", upstream="primary", url=u1_url, outcome="200"
    )
    assert served_after is not None and served_after > served_before  # u1 takes requests again


@pytest.mark.parametrize("stream", [False, True])
def test_a_hanging_upstream_hits_our_timeout(cluster: Cluster, stream: bool) -> None:
    start = time.monotonic()
    r = httpx.post(
        cluster.gateway.url + "/v1/chat/completions",
        json={"model": "hang", "stream": stream, **BODY},
        timeout=60,
    )
    elapsed = time.monotonic() - start
    assert r.status_code == 504
    error = r.json()["error"]
    assert error["code"] == "upstream_timeout" and "1.5 s" in error["message"]
    assert 1.4 <= elapsed < 10
