"""Retention: delete what is past its age, in short batches, and record each purge.

A policy gives each kind of record (:data:`KINDS`) a number of days (0 = keep forever), from
settings (``LLMECO_RETENTION_<KIND>_DAYS``) or a YAML file overriding them::

    conversations: 30
    feedback: 365
    handoffs: 90
    usage: 400
    ledger_bodies: 7
    batch: 500

:func:`purge` walks the registered subject tables (:mod:`llmeco.governance.subjects`) of
every kind with a retention and removes the rows written before ``now - days``: each batch
of at most ``batch`` rows, picked by primary key, is its own transaction, so the server's
writers wait at most one short batch. Ledger entries are never deleted (they are hashed):
their bodies are nulled and ``bodies_redacted_at`` set, which ``llmeco audit verify``
accepts because bodies are outside the hash. Each kind that lost rows gets one admin entry
in the audit ledger (``data.purge`` with kind, count and the cutoff). ``llmeco data purge``
runs it once; ``llmeco serve`` every ``LLMECO_RETENTION_INTERVAL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from llmeco.errors import ConfigError, NotFound
from llmeco.governance.subjects import SubjectTable, format_time, subject_tables, utc
from llmeco.settings import Settings
from llmeco.store import Store

if TYPE_CHECKING:
    from llmeco.governance.audit import AuditLedger

#: Kinds of records with a retention, in display order.
KINDS: tuple[str, ...] = ("conversations", "feedback", "handoffs", "usage", "ledger_bodies")
#: Seconds to wait for the ledger to commit a purge's entry.
LEDGER_TIMEOUT = 30.0


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep each kind of record (0 or absent: forever) and the batch size."""

    days: Mapping[str, int] = field(default_factory=dict)
    batch: int = 500

    def __post_init__(self) -> None:
        unknown = sorted(set(self.days) - set(KINDS))
        if unknown:
            raise ConfigError(
                f"unknown retention kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}"
            )
        bad = {k: d for k, d in self.days.items() if not isinstance(d, int) or d < 0}
        if bad:
            raise ConfigError(f"retention days must be whole numbers ≥ 0: {bad}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise ConfigError(f"the retention batch must be a whole number ≥ 1, not {self.batch}")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The policy of ``LLMECO_RETENTION_*``."""
        return cls(
            {kind: int(getattr(settings, f"retention_{kind}_days")) for kind in KINDS},
            settings.retention_batch,
        )

    def with_file(self, path: Path) -> RetentionPolicy:
        """This policy overridden by a YAML file of ``kind: days`` (and ``batch: n``)."""
        import yaml

        if not path.is_file():
            raise NotFound(f"retention policy file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must map kinds to days (e.g. `conversations: 30`)")
        overrides: dict[str, Any] = dict(data)
        batch = overrides.pop("batch", self.batch)
        try:
            return replace(self, days={**self.days, **overrides}, batch=batch)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}") from None

    @property
    def configured(self) -> bool:
        """Whether any kind has a retention (else nothing is ever purged)."""
        return any(d > 0 for d in self.days.values())

    def cutoff(self, kind: str, now: datetime) -> datetime | None:
        """Rows of ``kind`` written before this are past their age (None: kept forever)."""
        days = self.days.get(kind, 0)
        return now - timedelta(days=days) if days > 0 else None


@dataclass
class PurgeResult:
    """What a purge did (or, dry, would do) to one table."""

    kind: str
    table: str
    before: datetime
    #: Rows deleted (bodies erased, for the ledger); for a dry run, rows past their age.
    count: int = 0
    #: Rows of each transaction, in order (empty for a dry run).
    batches: list[int] = field(default_factory=list)
    dry_run: bool = False

    def ledger_details(self) -> dict[str, Any]:
        """The ``data.purge`` entry's details."""
        return {
            "kind": self.kind,
            "table": self.table,
            "count": self.count,
            "before": format_time(self.before, "ledger"),
        }


def purge(
    store: Store,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    ledger: AuditLedger | None = None,
    actor: str = "retention",
    on_batch: Callable[[str, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[PurgeResult]:
    """Delete (or, for ledger entries, erase the bodies of) every registered row past its
    age under ``policy`` at ``now`` (default: the current time); one result per table.

    Each batch is its own transaction; ``on_batch(table, rows)`` is called after each, and
    ``should_stop()`` (checked between batches) ends the purge early (a stopping server).
    With ``ledger``, each table that lost rows is recorded as a ``data.purge`` admin entry by
    ``actor``. ``dry_run`` counts what would go and changes nothing.
    """
    moment = utc(now)
    results: list[PurgeResult] = []
    for entry in subject_tables():
        before = policy.cutoff(entry.kind, moment)
        if before is None:
            continue
        result = PurgeResult(entry.kind, entry.name, before, dry_run=dry_run)
        results.append(result)
        if dry_run:
            result.count = _count_expired(store, entry, before)
            continue
        while should_stop is None or not should_stop():
            done = _purge_batch(store, entry, before, policy.batch, moment)
            result.batches.append(done)
            result.count += done
            if on_batch is not None:
                on_batch(entry.name, done)
            if done < policy.batch:
                break
        if ledger is not None and result.count:
            ledger.record_admin(actor, "data.purge", result.ledger_details()).result(LEDGER_TIMEOUT)
    return results


def _expired(entry: SubjectTable, before: datetime) -> sa.ColumnElement[bool]:
    cond = entry.older_than(before)
    if entry.erase_columns:  # only entries that still have something to erase
        cond = sa.and_(cond, sa.or_(*(entry.table.c[c].is_not(None) for c in entry.erase_columns)))
    return cond


def _count_expired(store: Store, entry: SubjectTable, before: datetime) -> int:
    query = sa.select(sa.func.count()).select_from(entry.table).where(_expired(entry, before))
    with store.session() as s:
        return int(s.scalar(query) or 0)


def _purge_batch(
    store: Store, entry: SubjectTable, before: datetime, batch: int, now: datetime
) -> int:
    """One transaction: up to ``batch`` expired rows (oldest keys first) deleted or erased."""
    pk = entry.primary_key()
    chosen = sa.select(*pk).where(_expired(entry, before)).order_by(*pk).limit(batch)
    # A LIMIT subquery inside IN: PostgreSQL and SQLite both take it (MySQL would not).
    target = pk[0].in_(chosen) if len(pk) == 1 else sa.tuple_(*pk).in_(chosen)
    stmt: sa.Delete | sa.Update
    if entry.erase_columns:
        values: dict[str, Any] = dict.fromkeys(entry.erase_columns)
        if entry.redacted_column is not None:
            values[entry.redacted_column] = format_time(now, "ledger")
        stmt = sa.update(entry.table).where(target).values(values)
    else:
        stmt = sa.delete(entry.table).where(target)
    with store.session() as s:
        result = s.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)
