"""Alembic environment: runs migrations on the engine :class:`llmeco.store.Store` hands over."""

from __future__ import annotations

from alembic import context

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if engine.dialect.name == "postgresql":
        # Two processes migrating at once take turns instead of racing on DDL.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(74656)")
    context.configure(connection=connection, render_as_batch=engine.dialect.name == "sqlite")
    context.run_migrations()
