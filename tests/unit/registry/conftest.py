"""A registry over SQLite and over PostgreSQL (the real local server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmeco.registry import AliasEvent, Registry
from llmeco.settings import Settings


class Recorder:
    """Collects alias moves the registry reports (what the CLI sends to the audit ledger)."""

    def __init__(self) -> None:
        self.events: list[AliasEvent] = []

    def __call__(self, event: AliasEvent) -> None:
        self.events.append(event)


@pytest.fixture
def moves() -> Recorder:
    return Recorder()


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request: pytest.FixtureRequest, tmp_path: Path, moves: Recorder) -> Iterator[Registry]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    reg = Registry.open(Settings(home=tmp_path / "home", database_url=url), moves)
    yield reg
    reg.store.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path, moves: Recorder) -> Iterator[Registry]:
    reg = Registry.open(Settings(home=tmp_path / "home"), moves)
    yield reg
    reg.store.close()
