"""Erasure: remove every stored record of one subject (a session, an API key, an end user).

:func:`forget` finds the subject's rows in every registered subject table
(:mod:`llmeco.governance.subjects`) and, in one transaction, deletes them — their sealed
values go with them — except the audit ledger's entries, which stay (they are hashed) while
their request/response bodies are nulled and ``bodies_redacted_at`` set; ``llmeco audit
verify`` still passes. The ledger's entries of a subject are those its key made and those
of the requests that wrote the subject's conversation rows (their request id). Today's usage
row of a key is kept (it is the counter that enforces the daily budget; retention ages it).

The erasure itself is recorded as a ``data.forget`` admin entry naming the subject's kind and
the SHA-256 of its id — never the id itself, which may be an e-mail address — with the
counts per table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from llmeco.errors import InvalidRequest
from llmeco.governance.subjects import (
    SUBJECT_KINDS,
    SubjectTable,
    format_time,
    subject_table,
    subject_tables,
    utc,
)
from llmeco.store import Store

if TYPE_CHECKING:
    from llmeco.governance.audit import AuditLedger

#: Seconds to wait for the ledger to commit the erasure's entry.
LEDGER_TIMEOUT = 30.0
#: Longest subject id accepted (the widest subject column).
MAX_SUBJECT_CHARS = 256


def subject_digest(value: str) -> str:
    """SHA-256 (hex) of a subject id: what the ledger keeps instead of the id."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class ForgetReport:
    """What :func:`forget` removed (or, dry, would remove), per table."""

    subject: str
    digest: str
    #: Table name → rows deleted (for the ledger: entries whose bodies were erased).
    counts: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def total(self) -> int:
        """Rows removed across all tables."""
        return sum(self.counts.values())

    def ledger_details(self) -> dict[str, Any]:
        """The ``data.forget`` entry's details (no raw subject id)."""
        return {"subject": self.subject, "subject_sha256": self.digest, "counts": self.counts}


def _check(kind: str, value: str) -> None:
    if kind not in SUBJECT_KINDS:
        raise InvalidRequest(f"subject kind must be one of {', '.join(SUBJECT_KINDS)}")
    if not value or len(value) > MAX_SUBJECT_CHARS:
        raise InvalidRequest(f"a {kind} id must be 1 to {MAX_SUBJECT_CHARS} characters")


def _direct(entry: SubjectTable, kind: str, value: str) -> sa.ColumnElement[bool] | None:
    column = entry.subjects.get(kind)
    return None if column is None else entry.table.c[column] == value


def _matches(entry: SubjectTable, kind: str, value: str) -> sa.ColumnElement[bool] | None:
    """The subject's rows of ``entry``: by its own column, or through its links."""
    conds = []
    direct = _direct(entry, kind, value)
    if direct is not None:
        conds.append(direct)
    for link in entry.links:
        target = subject_table(link.target)
        if target is None:
            continue
        via = _direct(target, kind, value)
        if via is None:
            continue
        col = target.table.c[link.target_column]
        conds.append(entry.table.c[link.column].in_(sa.select(col).where(via, col.is_not(None))))
    return sa.or_(*conds) if conds else None


def forget(
    store: Store,
    kind: str,
    value: str,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    ledger: AuditLedger | None = None,
    actor: str = "cli",
) -> ForgetReport:
    """Remove every stored record of subject ``kind`` = ``value`` in one transaction (see
    the module doc); ``dry_run`` counts the same rows and changes nothing. With ``ledger``
    and something removed, record a ``data.forget`` admin entry by ``actor``.

    Raises ``InvalidRequest`` for an unknown kind or an empty or over-long id.
    """
    _check(kind, value)
    moment = utc(now)
    report = ForgetReport(kind, subject_digest(value), dry_run=dry_run)
    with store.session() as s:
        # Linked tables come first: they read the rows the others are about to delete.
        for entry in subject_tables():
            cond = _matches(entry, kind, value)
            if cond is None:
                continue
            if entry.keep_current:
                cond = sa.and_(cond, entry.older_than(_start_of_day(moment)))
            if entry.erase_columns:
                present = [entry.table.c[c].is_not(None) for c in entry.erase_columns]
                cond = sa.and_(cond, sa.or_(*present))
            report.counts[entry.name] = _apply(s, entry, cond, moment, dry_run)
    if ledger is not None and report.total and not dry_run:
        ledger.record_admin(actor, "data.forget", report.ledger_details()).result(LEDGER_TIMEOUT)
    return report


def _start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _apply(
    s: Any, entry: SubjectTable, cond: sa.ColumnElement[bool], now: datetime, dry_run: bool
) -> int:
    if dry_run:
        query = sa.select(sa.func.count()).select_from(entry.table).where(cond)
        return int(s.scalar(query) or 0)
    stmt: sa.Delete | sa.Update
    if entry.erase_columns:
        values: dict[str, Any] = dict.fromkeys(entry.erase_columns)
        if entry.redacted_column is not None:
            values[entry.redacted_column] = format_time(now, "ledger")
        stmt = sa.update(entry.table).where(cond).values(values)
    else:
        stmt = sa.delete(entry.table).where(cond)
    return int(getattr(s.execute(stmt), "rowcount", 0) or 0)
