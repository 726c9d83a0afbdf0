"""Hot swap through the HTTP API over fake engines: a request stays on the version it
started on, new requests get the new one at once, the old engine is freed when its last
request ends, and a failed load leaves the serving version in place."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fake_engine import FakeEngine
from server_helpers import LiveServer, assert_openai_error, sse_events

from llmeco.engine.protocol import EngineClient
from llmeco.engine.swap import ModelSlot
from llmeco.server import build_app
from llmeco.server.hotswap import ModelFollower
from llmeco.settings import Settings

NAME = "fake-model"


class Versions:
    """Loader handing out a new fake engine (reply ``"<letter>" * 30``) per load."""

    def __init__(self) -> None:
        self.loaded: list[FakeEngine] = []
        self.fail = False

    def make(self) -> FakeEngine:
        n = len(self.loaded)
        delay = 0.05 if n == 0 else 0.01  # version 1 streams for 1.5 s
        engine = FakeEngine(reply=chr(ord("a") + n) * 30, delay=delay, version=f"fake:{n + 1}")
        self.loaded.append(engine)
        return engine

    def load(self, ref: str, name: str) -> EngineClient:
        if self.fail:
            raise RuntimeError("out of memory (simulated)")
        return self.make()


@pytest.fixture
def versions() -> Versions:
    return Versions()


@pytest.fixture
def live_swap(tmp_path: Path, versions: Versions) -> Iterator[LiveServer]:
    slot = ModelSlot(versions.make(), "/models/fake", drain_timeout=30)
    follower = ModelFollower({NAME: slot}, versions.load, None, poll_seconds=0)
    app = build_app(Settings(home=tmp_path), {NAME: slot}, follower=follower)
    with LiveServer(app) as server:
        yield server


def chat(stream: bool) -> dict[str, object]:
    return {
        "model": NAME,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 30,
        "stream": stream,
    }


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Yield to the event loop until ``cond`` holds (a loaded machine may take a while)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_running_stream_finishes_on_its_version(
    live_swap: LiveServer, versions: Versions
) -> None:
    async with httpx.AsyncClient(base_url=live_swap.url, timeout=30) as c:

        async def stream() -> list[dict[str, object]]:
            r = await c.post("/v1/chat/completions", json=chat(True))
            assert r.status_code == 200
            return [e for e in sse_events(r.text) if e != "[DONE]"]

        old = asyncio.create_task(stream())
        await until(lambda: versions.loaded[0].running == 1)  # streaming on version 1
        r = await c.post(f"/admin/models/{NAME}/reload", params={"force": "true"})
        assert r.status_code == 200, r.text
        assert r.json()["previous_version"] == "fake:1" and r.json()["version"] == "fake:2"
        assert r.json()["swapped"] is True
        new = (await c.post("/v1/chat/completions", json=chat(False))).json()
        assert new["choices"][0]["message"]["content"] == "b" * 30
        assert new["system_fingerprint"] == "fake:2"
        status = (await c.get("/admin/models")).json()
        assert status[0]["version"] == "fake:2"
        assert [d["version"] for d in status[0]["draining"]] == ["fake:1"]
        assert versions.loaded[0].dead is False  # still finishing the old stream
        events = await old
        text = "".join(
            ch["delta"].get("content", "")  # type: ignore[index,union-attr]
            for e in events
            for ch in e["choices"]  # type: ignore[attr-defined]
        )
        assert text == "a" * 30
        assert {e["system_fingerprint"] for e in events} == {"fake:1"}
        assert versions.loaded[0].aborted == []
        wait_for(lambda: versions.loaded[0].dead)  # freed once its last request ended
        status = (await c.get("/admin/models")).json()
        assert status[0]["draining"] == []
        models = (await c.get("/v1/models")).json()["data"]
        assert models[0]["id"] == NAME and models[0]["version"] == "fake:2"


async def test_failed_request_releases_its_lease(live_swap: LiveServer, versions: Versions) -> None:
    async with httpx.AsyncClient(base_url=live_swap.url, timeout=30) as c:
        too_long = {**chat(False), "max_tokens": 10_000}
        assert_openai_error(await c.post("/v1/chat/completions", json=too_long), 400)
        r = await c.post(f"/admin/models/{NAME}/reload", params={"force": "true"})
        assert r.status_code == 200
        wait_for(lambda: versions.loaded[0].dead, timeout=2)


async def test_failed_load_keeps_serving(live_swap: LiveServer, versions: Versions) -> None:
    versions.fail = True
    async with httpx.AsyncClient(base_url=live_swap.url, timeout=30) as c:
        r = await c.post(f"/admin/models/{NAME}/reload", params={"force": "true"})
        error = assert_openai_error(r, 400)
        assert "out of memory" in error["message"] and "keeps serving" in error["message"]
        ok = (await c.post("/v1/chat/completions", json=chat(False))).json()
        assert ok["choices"][0]["message"]["content"] == "a" * 30
        assert versions.loaded[0].dead is False


async def test_unchanged_plain_reference_needs_force(live_swap: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_swap.url, timeout=30) as c:
        r = await c.post(f"/admin/models/{NAME}/reload")
        assert r.status_code == 200
        # A plain reference has no version to compare, so a reload reloads it.
        assert r.json()["swapped"] is True
        assert_openai_error(await c.post("/admin/models/nope/reload"), 404)


async def test_no_admin_model_routes_without_follower(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"/admin/models/{NAME}/reload")).status_code == 404


class AliasRegistry:
    """The reads the follower makes of a registry (one model's alias), and its close."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.epoch = 1
        self.store = type("Store", (), {"close": lambda self: None})()

    def move(self, version: int) -> None:
        self.version, self.epoch = version, self.epoch + 1

    def alias_epoch(self, name: str) -> int:
        return self.epoch

    def resolve(self, name: str, alias: str) -> object:
        return type("Resolved", (), {"ref": f"fake:{self.version}"})()


async def follow(versions: Versions, registry: AliasRegistry) -> tuple[ModelSlot, ModelFollower]:
    slot = ModelSlot(versions.make(), "fake@production", drain_timeout=5)
    follower = ModelFollower(
        {NAME: slot},
        versions.load,
        lambda: registry,  # type: ignore[arg-type,return-value]
        poll_seconds=0.01,
    )
    follower.start()
    return slot, follower


async def test_alias_moved_before_the_first_poll_is_followed(versions: Versions) -> None:
    # A replica that loaded version 1, then saw the promote land before its poller's first
    # look, must still move to version 2.
    registry = AliasRegistry(version=2)
    slot, follower = await follow(versions, registry)
    try:
        await until(lambda: slot.model_info.version == "fake:2")
        registry.move(3)
        await until(lambda: slot.model_info.version == "fake:3")
        assert len(versions.loaded) == 3
    finally:
        await follower.aclose()


async def test_unmoved_alias_loads_nothing(versions: Versions) -> None:
    slot, follower = await follow(versions, AliasRegistry(version=1))
    try:
        await asyncio.sleep(0.2)  # many polls
        assert slot.model_info.version == "fake:1" and len(versions.loaded) == 1
    finally:
        await follower.aclose()
