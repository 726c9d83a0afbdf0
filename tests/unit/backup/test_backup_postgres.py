"""A PostgreSQL store: pg_dump of one snapshot, restored only into an empty database (or
with --force), the ledger intact afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from backup_helpers import cli

from llmeco.backup.manifest import Manifest
from llmeco.governance.audit import AuditLedger
from llmeco.governance.audit.checkpoint import Signer
from llmeco.governance.audit.verify import verify_ledger
from llmeco.settings import Settings
from llmeco.store import Store

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def target_url() -> Iterator[str]:
    """A second fresh database to restore into (dropped afterwards)."""
    import psycopg

    name = f"llmeco_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgres_backup_restores_into_an_empty_database_only(
    postgres_url: str, target_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=postgres_url)
    with AuditLedger.open(settings) as ledger:
        for f in [ledger.record_admin("cli", "pg.event", {"i": i}) for i in range(7)]:
            f.result(10)
    env = {"LLMECO_DATABASE_URL": postgres_url, "BK_PASS": "pg passphrase"}
    backup = tmp_path / "backup"
    code, out = cli(
        "backup", "create", str(backup), "--include-keys", "--passphrase-env", "BK_PASS",
        home=home, **env,
    )  # fmt: skip
    assert code == 0, out
    m = Manifest.read(backup)
    assert m.store["kind"] == "postgresql" and m.store["file"] == "store/llmeco.pgdump"
    assert m.ledger["head_seq"] == 7 and m.store["tables"]["audit_entries"] == 7

    restored = tmp_path / "restored"
    args = ["backup", "restore", str(backup), "--home", str(restored), "--passphrase-env"]
    code, out = cli(*args, "BK_PASS", BK_PASS="pg passphrase")
    assert code == 2 and "--database-url" in out, out  # a PG backup needs a target

    code, out = cli(*args, "BK_PASS", "--database-url", postgres_url, BK_PASS="pg passphrase")
    assert code == 2 and "target database is not empty" in out, out  # the source: not empty

    code, out = cli(*args, "BK_PASS", "--database-url", target_url, BK_PASS="pg passphrase")
    assert code == 0, out
    store = Store.from_settings(Settings(home=restored, database_url=target_url))
    key = Signer.from_settings(Settings(home=home)).public_key
    report = verify_ledger(store, key)
    assert report.ok and report.entries == 7, report.to_dict()
    store.close()

    again = tmp_path / "again"
    args = ["backup", "restore", str(backup), "--home", str(again), "--passphrase-env", "BK_PASS"]
    code, out = cli(*args, "--database-url", target_url, BK_PASS="pg passphrase")
    assert code == 2 and "not empty" in out, out
    code, out = cli(*args, "--database-url", target_url, "--force", BK_PASS="pg passphrase")
    assert code == 0, out  # --clean --if-exists: the objects are replaced
    store = Store.from_settings(Settings(home=again, database_url=target_url))
    assert verify_ledger(store, key).entries == 7
    store.close()
