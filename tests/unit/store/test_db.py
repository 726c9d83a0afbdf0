"""The store opens, migrates idempotently, and runs on SQLite (WAL) and the local PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from llmeco.settings import Settings
from llmeco.store import Store, database_url


def test_default_url_is_sqlite_under_home(tmp_path: Path) -> None:
    url = database_url(Settings(home=tmp_path))
    assert url == f"sqlite:///{tmp_path / 'llmeco.db'}"


def test_postgres_url_gets_the_psycopg_driver(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, database_url="postgresql://u@h:5432/db")
    assert database_url(s) == "postgresql+psycopg://u@h:5432/db"


def test_sqlite_store_migrates_twice_and_uses_wal(tmp_path: Path) -> None:
    store = Store.from_settings(Settings(home=tmp_path))
    Store.from_settings(Settings(home=tmp_path)).migrate()  # a second process: nothing to do
    with store.session() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("SELECT count(*) FROM store_meta")).scalar() == 0
    store.close()


def test_broken_url_is_a_config_error(tmp_path: Path) -> None:
    from llmeco.errors import ConfigError

    store = Store("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigError, match="cannot migrate"):
        store.migrate()


def test_postgres_store_migrates(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.migrate()
    with store.session() as s:
        assert s.execute(text("SELECT count(*) FROM store_meta")).scalar() == 0
    store.close()
