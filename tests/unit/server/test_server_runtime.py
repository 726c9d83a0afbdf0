"""``ServerRuntime``: what ``llmeco serve`` opens, it closes — also when start-up fails."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from llmeco.errors import ConfigError
from llmeco.server.runtime import ServerRuntime
from llmeco.settings import Settings


def _engine_threads() -> int:
    return sum(t.name == "llmeco-engine" and t.is_alive() for t in threading.enumerate())


async def test_open_builds_the_app_and_closes_everything(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    said: list[str] = []
    before = _engine_threads()
    async with ServerRuntime.open(
        Settings(home=tmp_path), [str(tiny_llama_dir)], embeddings=False, announce=said.append
    ) as runtime:
        state = runtime.state
        assert list(state.engines) == [tiny_llama_dir.name]
        assert state.auth is not None and state.ledger is not None
        assert state.follower is not None and state.support is None
        assert any("sk-llmeco-" in line for line in said)  # the first admin key, once
        token = next(w for line in said for w in line.split() if w.startswith("sk-llmeco-"))
        transport = httpx.ASGITransport(app=runtime.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
            served = [m["id"] for m in r.json()["data"]]  # speech models load on first use
            assert served == [tiny_llama_dir.name, "whisper-tiny.en", "espeak-ng"]
            assert (await client.get("/v1/models")).status_code == 401
        assert _engine_threads() == before + 1
    assert _engine_threads() == before


async def test_a_failed_start_closes_what_was_already_open(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    before = _engine_threads()
    with pytest.raises(ConfigError, match="already served"):
        async with ServerRuntime.open(
            Settings(home=tmp_path),
            [str(tiny_llama_dir), str(tiny_llama_dir)],  # two refs, one served name
            auth=False,
            embeddings=False,
            announce=lambda _: None,
        ):
            pytest.fail("a runtime with a clashing model must not start")
    assert _engine_threads() == before
