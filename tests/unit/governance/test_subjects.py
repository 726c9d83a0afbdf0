"""Every table of the store is either registered as holding subject data or declared to hold
none, so a new table cannot be forgotten by retention and erasure; the registry matches the
migrated schema."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import llmeco
from llmeco.governance.subjects import (
    NO_SUBJECT_DATA,
    Link,
    register_subject_table,
    subject_table,
    subject_tables,
)
from llmeco.settings import Settings
from llmeco.store import Base, Store

SRC = Path(llmeco.__file__).parent
_DEFINES_TABLE = re.compile(r"__tablename__\s*=|sa\.Table\(|__table__\s*=")


def import_table_modules() -> list[str]:
    """Import every module of the package that defines a table (found by its source)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts or not _DEFINES_TABLE.search(path.read_text()):
            continue
        module = ".".join(("llmeco", *path.relative_to(SRC).with_suffix("").parts))
        importlib.import_module(module)
        found.append(module)
    return found


def unaccounted(names: set[str]) -> set[str]:
    """Tables neither registered nor declared subject-free (FTS shadow tables belong to
    their declared index)."""
    registered = {e.name for e in subject_tables()}
    declared = set(NO_SUBJECT_DATA)
    return {
        n
        for n in names
        if n not in registered
        and n not in declared
        and not any(n.startswith(f"{d}_") for d in declared if d.endswith("_fts"))
    }


def test_every_table_is_registered_or_declared_subject_free(tmp_path: Path) -> None:
    modules = import_table_modules()
    assert "llmeco.apps.conversations" in modules and "llmeco.governance.tables" in modules
    assert unaccounted(set(Base.metadata.tables)) == set()
    # tables created by migrations alone (not in the metadata) count too
    store = Store.from_settings(Settings(home=tmp_path))
    on_disk = set(sa.inspect(store.engine).get_table_names()) - {"alembic_version"}
    store.close()
    assert unaccounted(on_disk) == set()
    # and the check is not vacuous: a new table would be caught
    extra = sa.Table("chat_transcripts", sa.MetaData(), sa.Column("id", sa.Integer))
    assert unaccounted({*Base.metadata.tables, extra.name}) == {"chat_transcripts"}
    assert not set(NO_SUBJECT_DATA) & {e.name for e in subject_tables()}


def test_registered_tables_match_the_migrated_schema(tmp_path: Path) -> None:
    import_table_modules()
    store = Store.from_settings(Settings(home=tmp_path))
    names = {e.name for e in subject_tables()}
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    store.close()

    assert [d for d in diff if _table_of(d) in names] == []
    for entry in subject_tables():
        leading = {idx.columns[0].name for idx in entry.table.indexes}
        leading.add(entry.primary_key()[0].name)
        for column in (entry.time_column, *entry.subjects.values()):
            assert column in leading, f"{entry.name}.{column} is not indexed"


def _table_of(item: Any) -> str | None:
    """The table an alembic ``compare_metadata`` difference is about."""
    op = item[0] if isinstance(item, list) else item
    for part in op[1:]:
        if isinstance(part, sa.Index):
            return str(part.table.name) if part.table is not None else None
        if isinstance(part, sa.Table):
            return str(part.name)
    return op[2] if len(op) > 2 and isinstance(op[2], str) else None


def test_registration_checks_its_columns() -> None:
    table = sa.Table("t_check", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    with pytest.raises(ValueError, match="no column"):
        register_subject_table(table, kind="conversations", time_column="created_at")
    with pytest.raises(ValueError, match="subject kind"):
        register_subject_table(table, kind="x", time_column="id", subjects={"email": "id"})
    ledger = subject_table("audit_entries")
    assert ledger is not None and Link("request_id", "feedback", "request_id") in ledger.links
    assert subject_table("t_check") is None
