"""Archiving the oldest audit entries to a file and dropping them from the store.

The file format and its checks are :mod:`~llmeco.governance.audit.archive_file`.

How it is made (:func:`archive_ledger`)
    Write the file (``OUT.partial``, fsynced, renamed, directory fsynced), re-read it and walk
    it from the store's boundary with the same checks ``verify`` applies — chain, leaves, end
    state, the checkpoint's signature and root. Only then record the archive as an
    ``audit.archive`` admin entry (first/last seq, count, sha256), insert its row in
    ``audit_archives`` (the new boundary: last seq, entry hash, frontier), and delete the rows
    in bounded batches, each its own transaction. A run that dies while deleting leaves rows
    at or below the boundary; ``verify`` skips and counts them, and the next ``archive`` run
    deletes them first. Checkpoint rows are kept (they are small and anchor the past).

What still works afterwards
    The writer appends from the head row's tip and frontier and never reads old entries.
    ``verify`` walks the live chain from the boundary (the first live entry's ``prev_hash``
    must be the boundary's hash; the tree continues from its frontier, so every later
    checkpoint still checks) and, given the archives, the whole history.
    Inclusion proofs of live entries need only the store; proofs of archived entries need the
    archive that holds them (see ``audit/partial.py`` for which leaves each proof needs).
    Sealed bodies in an archive stay encrypted under the key of the day: ``rotate-keys`` does
    not reach them, so keep old keys in ``LLMECO_ENCRYPTION_KEYS`` while their archives matter.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from llmeco.errors import InvalidRequest
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.archive_file import (
    FORMAT,
    VERSION,
    ArchiveFile,
    binary_columns,
    boundary,
    check_archive,
)
from llmeco.governance.audit.checkpoint import Checkpoint, canonical_json
from llmeco.governance.audit.ledger import utc_now
from llmeco.governance.audit.walk import ARCHIVE_ACTION, ChainState, ChainWalker, Problem
from llmeco.store import Store
from llmeco.store.files import fsync_dir

if TYPE_CHECKING:
    from llmeco.governance.audit.ledger import AuditLedger

#: Rows deleted per transaction (keeps locks short while the ledger keeps appending).
DELETE_BATCH = 1000


@dataclass(frozen=True)
class TableSize:
    """How big ``audit_entries`` is: rows, bytes of the table and its indexes, and (SQLite)
    the database file with its WAL."""

    rows: int
    table_bytes: int
    file_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"rows": self.rows, "table_bytes": self.table_bytes, "file_bytes": self.file_bytes}


def table_size(store: Store) -> TableSize:
    """Measure ``audit_entries`` (SQLite: ``dbstat`` pages; PostgreSQL:
    ``pg_total_relation_size``)."""
    with store.engine.connect() as conn:
        rows = int(conn.execute(sa.select(sa.func.count()).select_from(t.entries)).scalar_one())
        if store.engine.dialect.name == "sqlite":
            size = conn.exec_driver_sql(
                "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN "
                "(SELECT name FROM sqlite_master WHERE tbl_name = 'audit_entries')"
            ).scalar_one()
            path = store.engine.url.database
            files = [Path(f"{path}{suffix}") for suffix in ("", "-wal")] if path else []
            file_bytes = sum(f.stat().st_size for f in files if f.exists())
            return TableSize(rows, int(size), file_bytes)
        size = conn.exec_driver_sql("SELECT pg_total_relation_size('audit_entries')").scalar_one()
    return TableSize(rows, int(size))


def vacuum(store: Store) -> None:
    """Give the deleted rows' space back to the file system: SQLite ``VACUUM`` (rewrites the
    database), PostgreSQL ``VACUUM FULL audit_entries`` (rewrites the table). Both lock out
    writers while they run, so the ledger waits; without it the space is reused by new rows."""
    sqlite = store.engine.dialect.name == "sqlite"
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM" if sqlite else "VACUUM FULL audit_entries")
        if sqlite:  # VACUUM went through the WAL: fold it back into the file
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


# ---- archiving ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveResult:
    """What :func:`archive_ledger` did."""

    path: Path
    first_seq: int
    last_seq: int
    count: int
    sha256: str
    record_seq: int
    deleted: int
    leftovers_deleted: int
    checkpoint: Checkpoint

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``llmeco audit archive --json``)."""
        return {
            "path": str(self.path),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "count": self.count,
            "sha256": self.sha256,
            "record_seq": self.record_seq,
            "deleted": self.deleted,
            "leftovers_deleted": self.leftovers_deleted,
            "checkpoint": self.checkpoint.to_dict(),
        }


def _signed_checkpoints(store: Store, public_key: str, above: int) -> list[Checkpoint]:
    c = t.checkpoints.c
    with store.session() as s:
        rows = s.execute(sa.select(t.checkpoints).where(c.size > above).order_by(c.size)).all()
    cps = [Checkpoint(r.size, r.root_hash, r.ts, r.public_key, r.signature) for r in rows]
    return [cp for cp in cps if cp.public_key == public_key and cp.signature_ok(public_key)]


def choose_checkpoint(
    store: Store, public_key: str, before_checkpoint: int | None, keep: int = 0
) -> tuple[ChainState, Checkpoint]:
    """The boundary archiving starts from and the checkpoint it ends at.

    ``before_checkpoint``: the size of a stored signed checkpoint (None: the newest), which
    must lie beyond the current boundary and leave at least ``keep`` entries live.
    """
    start = boundary(store)
    with store.session() as s:
        head_seq = int(s.execute(sa.select(t.head.c.seq).where(t.head.c.id == 1)).scalar_one())
    limit = head_seq - max(keep, 0)
    cps = _signed_checkpoints(store, public_key, start.seq)
    if before_checkpoint is not None:
        match = [cp for cp in cps if cp.size == before_checkpoint]
        if not match:
            sizes = ", ".join(str(cp.size) for cp in cps[-10:]) or "none"
            raise InvalidRequest(
                f"no signed checkpoint of size {before_checkpoint} after the archived boundary "
                f"({start.seq}); sizes available: {sizes}"
            )
        if before_checkpoint > limit:
            raise InvalidRequest(
                f"archiving up to {before_checkpoint} would keep {head_seq - before_checkpoint} "
                f"entries live, fewer than --keep {keep}"
            )
        return start, match[-1]
    fitting = [cp for cp in cps if cp.size <= limit]
    if not fitting:
        raise InvalidRequest(
            f"nothing to archive: no signed checkpoint lies between the archived boundary "
            f"({start.seq}) and entry {limit} (the head is {head_seq}, keeping {keep}); "
            "`llmeco audit checkpoint --now` signs one"
        )
    return start, fitting[-1]


def write_archive(
    store: Store,
    out: Path,
    start: ChainState,
    checkpoint: Checkpoint,
    progress: Callable[[int], None] | None = None,
) -> ArchiveFile:
    """Write entries ``start.seq + 1 .. checkpoint.size`` to ``out`` (fsynced; never
    overwrites) and return it opened. Not checked yet: see :func:`archive_ledger`."""
    if out.exists():
        raise InvalidRequest(f"{out} exists; archives are never overwritten")
    out.parent.mkdir(parents=True, exist_ok=True)
    body = out.with_name(out.name + ".entries.partial")
    partial = out.with_name(out.name + ".partial")
    binary = binary_columns()
    digest = hashlib.sha256()
    frontier, prev, count = start.tree(), start.entry_hash, 0
    c = t.entries.c
    query = sa.select(t.entries).where(c.seq > start.seq, c.seq <= checkpoint.size).order_by(c.seq)
    try:
        with body.open("wb") as f, store.engine.connect() as conn:
            for row in conn.execution_options(yield_per=2000).execute(query):
                data = dict(row._mapping)
                for name in binary:
                    if data[name] is not None:
                        data[name] = base64.b64encode(data[name]).decode()
                line = canonical_json(data) + b"\n"
                f.write(line)
                digest.update(line)
                frontier.append(bytes.fromhex(str(row.leaf_hash)))
                prev, count = str(row.entry_hash), count + 1
                if progress is not None and count % 1000 == 0:
                    progress(1000)
        if progress is not None:
            progress(count % 1000)
        if count != checkpoint.size - start.seq:
            raise InvalidRequest(
                f"the store holds {count} of entries {start.seq + 1}..{checkpoint.size}: "
                "`llmeco audit verify` says what is missing; nothing was archived"
            )
        header = {
            "format": FORMAT,
            "version": VERSION,
            "first_seq": start.seq + 1,
            "last_seq": checkpoint.size,
            "count": count,
            "start": start.to_dict(),
            "end": {"seq": checkpoint.size, "entry_hash": prev, "frontier": frontier.to_hex()},
            "checkpoint": checkpoint.to_dict(),
            "entries_sha256": digest.hexdigest(),
            "binary_columns": binary,
            "created": utc_now(),
        }
        with partial.open("wb") as f:
            f.write(canonical_json(header) + b"\n")
            with body.open("rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, out)
        fsync_dir(out.parent)
    finally:
        body.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return ArchiveFile.open(out)


def delete_archived(
    store: Store,
    up_to: int,
    batch: int = DELETE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete the entries with seq ≤ ``up_to`` (archived), ``batch`` rows per transaction,
    oldest first; returns how many went."""
    c = t.entries.c
    with store.session() as s:
        low = s.scalar(sa.select(sa.func.min(c.seq)))
    if low is None or int(low) > up_to:
        return 0
    deleted, lo = 0, int(low) - 1
    while lo < up_to:
        hi = min(lo + batch, up_to)
        with store.engine.begin() as conn:
            n = conn.execute(sa.delete(t.entries).where(c.seq > lo, c.seq <= hi)).rowcount
        deleted += max(int(n or 0), 0)
        if progress is not None:
            progress(hi - lo)
        lo = hi
    return deleted


def archive_ledger(
    ledger: AuditLedger,
    out: Path,
    *,
    before_checkpoint: int | None = None,
    keep: int = 0,
    actor: str = "cli",
    batch: int = DELETE_BATCH,
    progress: Callable[[str, int, int], None] | None = None,
) -> ArchiveResult:
    """Archive the entries after the current boundary up to a signed checkpoint into
    ``out``, then drop them from the store (see the module doc for the order of steps).

    ``progress(stage, done, total)`` is called with stage ``"write"`` then ``"delete"``.
    Raises ``InvalidRequest`` (and deletes nothing) if no checkpoint fits or the written file
    does not check.
    """
    store, key = ledger.store, ledger.signer.public_key
    leftovers = delete_archived(store, boundary(store).seq, batch)
    start, cp = choose_checkpoint(store, key, before_checkpoint, keep)
    total = cp.size - start.seq
    done = {"write": 0, "delete": 0}

    def step(stage: str) -> Callable[[int], None]:
        def advance(n: int) -> None:
            done[stage] += n
            if progress is not None:
                progress(stage, done[stage], total)

        return advance

    archive = write_archive(store, out, start, cp, step("write"))
    problems: list[Problem] = []

    def collect(seq: int | None, message: str, exact: bool = True) -> None:
        problems.append(Problem(seq, message, exact))

    walker = ChainWalker(start, collect)
    check_archive(archive, walker, key)
    if problems:
        raise InvalidRequest(
            f"the archive {out} does not check, so nothing was deleted: {problems[0].message}"
            + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")
        )
    details = {
        "first_seq": archive.first_seq,
        "last_seq": archive.last_seq,
        "entries": archive.count,
        "sha256": archive.sha256,
        "root_hash": cp.root_hash,
        "file": out.name,
    }
    record_seq = ledger.record_admin(actor, ARCHIVE_ACTION, details).result(60)
    with store.engine.begin() as conn:
        # Take the ledger's head lock: no other archive run can move the boundary meanwhile.
        conn.execute(sa.update(t.head).where(t.head.c.id == 1).values(writes=t.head.c.writes))
        current = conn.execute(sa.select(sa.func.max(t.archives.c.last_seq))).scalar()
        if int(current or 0) != start.seq:
            raise InvalidRequest(
                f"another archive run moved the boundary to {current} meanwhile; "
                "nothing was deleted"
            )
        conn.execute(
            sa.insert(t.archives).values(
                first_seq=archive.first_seq,
                last_seq=archive.last_seq,
                entry_hash=archive.end.entry_hash,
                frontier=json.dumps(list(archive.end.frontier)),
                root_hash=cp.root_hash,
                sha256=archive.sha256,
                file_name=out.name,
                record_seq=record_seq,
                ts=utc_now(),
            )
        )
    deleted = delete_archived(store, archive.last_seq, batch, step("delete"))
    return ArchiveResult(
        out,
        archive.first_seq,
        archive.last_seq,
        archive.count,
        archive.sha256,
        record_seq,
        deleted,
        leftovers,
        cp,
    )
