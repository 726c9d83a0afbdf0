"""The store in a backup, per dialect: a consistent snapshot, and loading it back.

SQLite
    Python's ``sqlite3.Connection.backup`` (SQLite's online backup API) copies the database in
    one step, inside one read transaction: the copy is the database as of one commit,
    including what is still in the WAL. In WAL mode readers never block the writer, so the
    server keeps committing while it runs. The copy is switched to a rollback journal (one
    self-contained file) and ``PRAGMA quick_check``-ed. Restore copies it to
    ``HOME/llmeco.db``; the server turns WAL back on when it opens it.

PostgreSQL
    ``pg_dump --format=custom`` (restorable with ``pg_restore``). The dump runs in a snapshot
    llmeco exports first (``pg_export_snapshot()`` in a REPEATABLE READ transaction, passed as
    ``pg_dump --snapshot``), and the manifest's facts (schema revisions, row counts, ledger
    head and checkpoint) are read in that same transaction, so they describe exactly the
    dumped data. Restore runs ``pg_restore --single-transaction --exit-on-error --no-owner
    --no-privileges`` into a target database that must exist and be empty (``--force``:
    ``--clean --if-exists`` replaces the objects the dump holds). The connection settings go
    to the client tools as ``PG*`` environment variables, so no password is on a command line.

Either way the manifest records the facts read from the snapshot itself, and a restore
checks the restored ledger head against them.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from llmeco.errors import ConfigError, NotFound, ServiceUnavailable, UnsafeFile
from llmeco.governance.audit import tables as audit_tables
from llmeco.governance.audit.checkpoint import Checkpoint
from llmeco.store.db import MIGRATIONS

SQLITE_FILE = "store/llmeco.db"
PG_FILE = "store/llmeco.pgdump"


@dataclass(frozen=True)
class StoreFacts:
    """What the manifest says about the snapshot of the store."""

    kind: str
    file: str
    schema_revisions: list[str]
    tables: dict[str, int]
    ledger: dict[str, Any]

    def store_dict(self) -> dict[str, Any]:
        """The manifest's ``store`` object."""
        return {
            "kind": self.kind,
            "file": self.file,
            "schema_revisions": self.schema_revisions,
            "tables": self.tables,
        }


def describe(conn: sa.Connection) -> tuple[list[str], dict[str, int], dict[str, Any]]:
    """Schema revisions (alembic heads), row count per table and the ledger's head and latest
    checkpoint, read on ``conn`` (inside the snapshot's transaction)."""
    names = sorted(n for n in sa.inspect(conn).get_table_names() if not n.startswith("sqlite_"))
    revisions: list[str] = []
    if "alembic_version" in names:
        revisions = sorted(
            conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        )
    preparer = conn.dialect.identifier_preparer
    tables = {
        n: int(conn.execute(sa.text(f"SELECT count(*) FROM {preparer.quote(n)}")).scalar_one())
        for n in names
    }
    ledger: dict[str, Any] = {"head_seq": 0, "head_hash": None, "checkpoint": None}
    if audit_tables.head.name in names:
        h = audit_tables.head.c
        row = conn.execute(sa.select(h.seq, h.entry_hash).where(h.id == 1)).first()
        if row is not None:
            ledger["head_seq"], ledger["head_hash"] = int(row.seq), row.entry_hash
        c = audit_tables.checkpoints.c
        query = sa.select(audit_tables.checkpoints).order_by(c.size.desc(), c.id.desc()).limit(1)
        cp = conn.execute(query).first()
        if cp is not None:
            ledger["checkpoint"] = Checkpoint(
                cp.size, cp.root_hash, cp.ts, cp.public_key, cp.signature
            ).to_dict()
    return revisions, tables, ledger


def read_ledger_head(url: str) -> int:
    """The ledger's head seq in the store at ``url`` (0 when it is empty)."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return int(describe(conn)[2]["head_seq"])
    finally:
        engine.dispose()


def check_revisions(revisions: list[str]) -> None:
    """Refuse a schema this llmeco does not know (a backup from a newer version).

    Raises:
        ConfigError: a revision is not among this llmeco's migrations.
    """
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(MIGRATIONS))
    known = {rev.revision for rev in scripts.walk_revisions()}
    unknown = [r for r in revisions if r not in known]
    if unknown:
        raise ConfigError(
            f"the backup's store is at schema revision(s) {', '.join(unknown)}, which this "
            "llmeco does not know: restore it with the llmeco version that made it or newer"
        )


def _engine(url: str) -> sa.Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url)


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///`` URL."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ConfigError(f"cannot back up the SQLite store {url!r}: it is not a file")
    return Path(database)


def snapshot_sqlite(url: str, dest: Path) -> StoreFacts:
    """Copy the SQLite store at ``url`` to ``dest`` as one consistent snapshot.

    Raises:
        NotFound: there is no store file yet.
        UnsafeFile: the copy fails SQLite's ``quick_check``.
    """
    source = sqlite_path(url)
    if not source.is_file():
        raise NotFound(f"there is no store at {source} to back up")
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # pages=-1: the whole database in one step, one read transaction
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            dst.commit()
        finally:
            dst.close()
    finally:
        src.close()
    if check != "ok":
        raise UnsafeFile(f"the snapshot of {source} fails SQLite's quick_check: {check}")
    engine = sa.create_engine(f"sqlite:///{dest}")
    try:
        with engine.connect() as conn:
            revisions, tables, ledger = describe(conn)
    finally:
        engine.dispose()
    return StoreFacts("sqlite", SQLITE_FILE, revisions, tables, ledger)


def load_sqlite(source: Path, home: Path) -> Path:
    """Put the snapshot ``source`` in place as ``home/llmeco.db`` (replacing any store there,
    its WAL and shared-memory files included); return its path."""
    target = home / "llmeco.db"
    for suffix in ("-wal", "-shm", "-journal"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    tmp = home / f".llmeco.db.restore-{os.getpid()}"
    shutil.copyfile(source, tmp)
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(
            f"PostgreSQL backups need {name} on PATH (the postgresql-client package, the same "
            "major version as the server or newer)"
        )
    return path


def _pg_env(url: str) -> dict[str, str]:
    """``PG*`` variables for the client tools: the URL's host, port, user, password, database."""
    u: URL = make_url(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for var, value in (
        ("PGHOST", u.host),
        ("PGPORT", u.port),
        ("PGUSER", u.username),
        ("PGPASSWORD", u.password),
        ("PGDATABASE", u.database),
        ("PGSSLMODE", u.query.get("sslmode")),
    ):
        if value:
            env[var] = str(value)
    return env


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise ServiceUnavailable(f"{what} failed (exit {done.returncode}): {tail}")


def snapshot_postgres(url: str, dest: Path) -> StoreFacts:
    """``pg_dump`` the store at ``url`` to ``dest`` from one exported snapshot.

    Raises:
        ConfigError: ``pg_dump`` is not installed.
        ServiceUnavailable: the database cannot be reached or ``pg_dump`` fails.
    """
    pg_dump = _pg_tool("pg_dump")
    dest.parent.mkdir(parents=True, exist_ok=True)
    engine = _engine(url)
    try:
        conn = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with conn, conn.begin():
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            revisions, tables, ledger = describe(conn)
            # The exporting transaction stays open until pg_dump has attached to it.
            _run(
                [
                    pg_dump,
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot}",
                    f"--file={dest}",
                ],
                _pg_env(url),
                "pg_dump",
            )
    except sa.exc.OperationalError as exc:
        raise ServiceUnavailable(f"cannot reach the store at {_safe(url)}: {exc.orig}") from None
    finally:
        engine.dispose()
    return StoreFacts("postgresql", PG_FILE, revisions, tables, ledger)


def postgres_tables(url: str) -> int:
    """How many tables the database at ``url`` holds outside the system schemas.

    Raises:
        ServiceUnavailable: it cannot be reached (it must exist: create it first).
    """
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            query = (
                "SELECT count(*) FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )
            return int(conn.execute(sa.text(query)).scalar_one())
    except sa.exc.OperationalError as exc:
        raise ServiceUnavailable(
            f"cannot reach the target database {_safe(url)} (it must exist): {exc.orig}"
        ) from None
    finally:
        engine.dispose()


def load_postgres(dump: Path, url: str, *, clean: bool) -> None:
    """``pg_restore`` ``dump`` into the database at ``url`` in one transaction.

    Raises:
        ConfigError: ``pg_restore`` is not installed.
        ServiceUnavailable: ``pg_restore`` fails (nothing was restored: one transaction).
    """
    args = [
        _pg_tool("pg_restore"),
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
    ]
    if clean:
        args += ["--clean", "--if-exists"]
    env = _pg_env(url)
    _run([*args, f"--dbname={env.get('PGDATABASE', '')}", str(dump)], env, "pg_restore")


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
