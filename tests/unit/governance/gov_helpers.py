"""Helpers and fixtures for the governance tests: an app with auth over the server tests'
fake engine, a fake embedder, and key-making shortcuts.

Both ``tests/unit/governance`` and ``tests/integration/governance`` import this module from
their conftest, which also puts ``tests/unit/server`` (the fake engine) on ``sys.path``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fake_engine import FakeEngine
from fastapi import FastAPI

from llmeco.governance.keys import ApiKey
from llmeco.governance.scopes import SCOPES, Grant
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings


class FakeEmbedder:
    """Just enough of :class:`llmeco.rag.embed.Embedder`: one token per word, 4 dims."""

    name = "fake-embed"
    aliases: tuple[str, ...] = ()
    dimensions = 4
    max_tokens = 128

    def check_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 4), dtype=np.float32)

    def close(self) -> None:
        pass


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def make_key(
    auth: Authenticator,
    scopes: Sequence[str] = SCOPES,
    *,
    models: Sequence[str] = (),
    rpm: int | None = None,
    tpm: int | None = None,
    daily_tokens: int | None = None,
    expires_at: datetime | None = None,
    name: str = "test",
    actor: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Create a key directly in the store (as the operator, or as ``actor``)."""
    grant = Grant(
        scopes=frozenset(scopes),
        models=frozenset(models),
        rpm=rpm,
        tpm=tpm,
        daily_tokens=daily_tokens,
        expires_at=expires_at,
    )
    return auth.keys.create(name, grant, actor=actor)


def governed_app(
    settings: Settings, auth: Authenticator, fake: FakeEngine | None = None
) -> FastAPI:
    """The real app with auth, over a fake engine and a fake embedder."""
    fake = fake or FakeEngine()
    return build_app(
        settings,
        {fake.name: fake},
        FakeEmbedder(),  # type: ignore[arg-type]
        aliases={"default": fake.name},
        auth=auth,
    )


@pytest.fixture
def gsettings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, secret_key="test-secret")  # type: ignore[arg-type]


@pytest.fixture
async def auth(gsettings: Settings) -> AsyncIterator[Authenticator]:
    a = Authenticator.open(gsettings)
    yield a
    await a.aclose()


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def gapp(gsettings: Settings, auth: Authenticator, fake: FakeEngine) -> FastAPI:
    return governed_app(gsettings, auth, fake)


@pytest.fixture
async def gclient(gapp: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gapp)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
def root(auth: Authenticator) -> tuple[ApiKey, str]:
    """An unlimited key with every scope (what `llmeco serve` creates first)."""
    return make_key(auth, name="root")


def chat_body(content: str = "hi", **extra: Any) -> dict[str, Any]:
    """A chat completion request for the fake model."""
    return {"model": "fake-model", "messages": [{"role": "user", "content": content}], **extra}
