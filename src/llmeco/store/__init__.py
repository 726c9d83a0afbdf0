"""The project store: SQLAlchemy 2 tables with ordered Alembic migrations.

SQLite in WAL mode under ``LLMECO_HOME`` by default, PostgreSQL when ``LLMECO_DATABASE_URL``
says so. Every feature that persists (keys, usage, the audit ledger, the registry, knowledge
bases) declares its tables on :data:`Base` and ships its own migration under
``store/migrations/versions/``; :meth:`Store.migrate` applies all of them.
"""

from llmeco.store.db import Base, Store, database_url

__all__ = ["Base", "Store", "database_url"]
