"""Fixtures for the server's tests: a fake engine, an app over it, clients, a live server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fake_engine import FakeEngine
from fastapi import FastAPI
from server_helpers import LiveServer

from llmeco.server import build_app
from llmeco.settings import Settings

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, max_body_bytes=64 * 1024)


@pytest.fixture
def app(settings: Settings, fake: FakeEngine) -> FastAPI:
    return build_app(settings, {fake.name: fake}, aliases={"default": fake.name})


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
def live(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


@pytest.fixture
async def emb_client(
    settings: Settings, fake: FakeEngine, embedder: Embedder
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings, {fake.name: fake}, embedder)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c
