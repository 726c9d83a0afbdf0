"""Connecting to the store and bringing its schema up to date.

One :class:`Store` per process (the server, a CLI command): it owns the SQLAlchemy engine
and the session factory. SQLite gets WAL, foreign keys and a busy timeout on every connection,
so concurrent readers never block the writer and a second process waits instead of failing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from llmeco.errors import ConfigError
from llmeco.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base of every table in the store."""


def database_url(settings: Settings) -> str:
    """The store's SQLAlchemy URL: ``LLMECO_DATABASE_URL`` or SQLite at ``HOME/llmeco.db``."""
    if settings.database_url:
        url = settings.database_url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url
    return f"sqlite:///{settings.home / 'llmeco.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Store:
    """The project's database: an engine, a session factory and the migration runner."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._migrated = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Store:
        """Open the store the settings name, migrated to the latest schema unless told not to."""
        store = cls(database_url(settings))
        if migrate:
            store.migrate()
        return store

    def migrate(self) -> None:
        """Apply every pending migration (all heads); safe to call from several processes."""
        from alembic import command
        from alembic.config import Config

        with self._lock:
            if self._migrated:
                return
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["engine"] = self.engine
            try:
                command.upgrade(cfg, "heads")
            except Exception as exc:  # a broken URL or unreachable server: say which
                raise ConfigError(f"cannot migrate the store at {self.safe_url}: {exc}") from exc
            self._migrated = True

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on any error."""
        with self.sessions() as s, s.begin():
            yield s

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
