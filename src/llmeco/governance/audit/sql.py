"""The ledger writer's SQL, built once per dialect and run on a raw DBAPI connection.

Every request waits for its entry's commit, so the append transaction is on the latency
path of the whole server: through SQLAlchemy's execution layer one commit cost ~0.22 ms of
CPU, straight on the driver ~0.06 ms. These four statements are plain SQL strings in the
driver's own parameter style (``:name`` for sqlite3, ``%(name)s`` for psycopg), run by
:class:`WriterConnection` on a pooled DBAPI connection the writer thread keeps:

1. ``lock_head`` — ``UPDATE audit_head … RETURNING`` the head: takes the row lock
   (PostgreSQL) / the database write lock (SQLite) *and* reads the head in one statement;
2. ``insert_entries`` — executemany of the new rows;
3. ``insert_checkpoint`` — when one is due;
4. ``move_head`` — the new tip, frontier and checkpoint bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Engine

ENTRY_COLUMNS = (
    "seq",
    "ts",
    "kind",
    "request_id",
    "key_id",
    "route",
    "status",
    "payload",
    "prev_hash",
    "entry_hash",
    "leaf_hash",
    "request_body",
    "response_body",
)
CHECKPOINT_COLUMNS = ("size", "root_hash", "ts", "public_key", "signature")
HEAD_COLUMNS = ("seq", "entry_hash", "frontier", "checkpoint_size", "checkpoint_time")


@dataclass(frozen=True)
class LedgerSQL:
    """The writer's statements for one database."""

    lock_head: str
    insert_entries: str
    insert_checkpoint: str
    move_head: str

    @classmethod
    def for_engine(cls, engine: Engine) -> LedgerSQL:
        """Statements in ``engine``'s driver parameter style."""
        if engine.dialect.name == "sqlite":

            def p(name: str) -> str:
                return f":{name}"
        else:

            def p(name: str) -> str:
                return f"%({name})s"

        def insert(table: str, columns: tuple[str, ...]) -> str:
            return (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join(p(c) for c in columns)})"
            )

        return cls(
            lock_head="UPDATE audit_head SET writes = writes + 1 WHERE id = 1 "
            f"RETURNING {', '.join(HEAD_COLUMNS)}",
            insert_entries=insert("audit_entries", ENTRY_COLUMNS),
            insert_checkpoint=insert("audit_checkpoints", CHECKPOINT_COLUMNS),
            move_head="UPDATE audit_head SET "
            + ", ".join(f"{c} = {p(c)}" for c in HEAD_COLUMNS)
            + " WHERE id = 1",
        )


class Head(NamedTuple):
    """The chain's tip as ``lock_head`` returns it."""

    seq: int
    entry_hash: str
    frontier: str
    checkpoint_size: int
    checkpoint_time: float


class WriterConnection:
    """One DBAPI connection from the store's pool, used by the writer thread only.

    The driver opens the transaction implicitly at ``lock_head`` (sqlite3 before the first
    UPDATE, psycopg at the first statement); :meth:`commit` / :meth:`rollback` end it.
    """

    def __init__(self, engine: Engine, sql: LedgerSQL) -> None:
        self._raw = engine.raw_connection()
        self._sql = sql

    def lock_head(self) -> Head:
        """Lock the head row (the database, on SQLite) and read it."""
        cur = self._raw.cursor()
        cur.execute(self._sql.lock_head)
        row = cur.fetchone()
        cur.close()
        if row is None:
            raise RuntimeError("audit_head has no row 1: the 0003_audit migration did not run")
        return Head(int(row[0]), str(row[1]), str(row[2]), int(row[3]), float(row[4]))

    def insert_entries(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append entry rows."""
        cur = self._raw.cursor()
        cur.executemany(self._sql.insert_entries, rows)
        cur.close()

    def insert_checkpoint(self, values: Mapping[str, Any]) -> None:
        """Store a signed checkpoint."""
        cur = self._raw.cursor()
        cur.execute(self._sql.insert_checkpoint, values)
        cur.close()

    def move_head(self, values: Mapping[str, Any]) -> None:
        """Point the head at the new tip."""
        cur = self._raw.cursor()
        cur.execute(self._sql.move_head, values)
        cur.close()

    def commit(self) -> None:
        """Make the transaction durable."""
        self._raw.commit()

    def rollback(self) -> None:
        """Abandon the transaction."""
        self._raw.rollback()

    def discard(self) -> None:
        """Drop a connection that failed (it is not returned to the pool)."""
        try:
            self._raw.invalidate()
        finally:
            self._raw.close()

    def close(self) -> None:
        """Give the connection back to the pool."""
        self._raw.close()
