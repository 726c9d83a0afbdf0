"""Which tables hold personal data, how old each row is, and whom each row is about.

Retention (:mod:`llmeco.governance.retention`) and erasure (:mod:`llmeco.governance.erasure`)
work only through this registry, so a table that holds subject data must be registered here
(as encrypted columns register with ``crypto.register_encrypted_column``): the apps register
their tables when their module is imported (so a command that purges or erases imports them
first), and governance's own (usage detail, ledger bodies) are registered below. A test
lists every table of the store and fails for one that is neither registered nor declared in
:data:`NO_SUBJECT_DATA`.

A subject is named by one of :data:`SUBJECT_KINDS`:

* ``session`` — the support session id (``x-session-id``, else the OpenAI ``user`` field);
* ``key`` — the API key id that made the request;
* ``user`` — the OpenAI ``user`` field (the client's own end-user id) as sent.

A table finds a subject's rows through its own columns (:attr:`SubjectTable.subjects`) or
through another table (:class:`Link`): the ledger's entries are reached through the request
id of the conversation rows those requests wrote.

Rows are deleted, except in tables whose rows may not go (the hashed audit ledger): there
only the :attr:`SubjectTable.erase_columns` are nulled and :attr:`SubjectTable.redacted_column`
records when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from llmeco.governance.audit import tables as audit_tables
from llmeco.governance.tables import ApiKeyUsageRow

SubjectKind = Literal["session", "key", "user"]
#: Every way a subject can be named, in display order.
SUBJECT_KINDS: tuple[SubjectKind, ...] = ("session", "key", "user")

#: How a table's time column is stored: a timestamp, a ``YYYY-MM-DD`` day string, or the
#: ledger's ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` string (both strings compare in time order).
TimeFormat = Literal["datetime", "day", "ledger"]

#: Tables of the store that hold no subject data, and why (the coverage test reads this).
NO_SUBJECT_DATA: dict[str, str] = {
    "store_meta": "the store's own bookkeeping",
    "api_keys": "credentials (hashes, scopes, limits) of API keys; kept for governance",
    "audit_head": "the ledger's tip and Merkle frontier",
    "audit_checkpoints": "signed tree sizes and roots",
    "audit_archives": "seq ranges and hashes of archived ledger prefixes",
    "kb_bases": "knowledge-base documents are the operator's content",
    "kb_documents": "knowledge-base documents are the operator's content",
    "kb_chunks": "knowledge-base documents are the operator's content",
    "kb_embeddings": "knowledge-base documents are the operator's content",
    "registry_models": "model registry",
    "registry_versions": "model registry",
    "registry_files": "model registry",
    "registry_aliases": "model registry",
    "registry_alias_events": "model registry",
    "registry_evals": "model registry",
    "support_gates": "calibrated answerability thresholds per knowledge base",
    # SQLite full-text index of kb_chunks (created by 0005_kb; its shadow tables too)
    "kb_chunks_fts": "knowledge-base documents are the operator's content",
}


@dataclass(frozen=True)
class Link:
    """Rows of a table found through another one: this table's ``column`` equals
    ``target_column`` of the subject's rows in table ``target``."""

    column: str
    target: str
    target_column: str


@dataclass(frozen=True)
class SubjectTable:
    """A table holding subject data, as retention and erasure see it."""

    table: sa.Table
    #: The retention kind its rows age under (``conversations``, ``usage`` …).
    kind: str
    #: The column telling when the row was written.
    time_column: str
    time_format: TimeFormat = "datetime"
    #: Subject kind → the column naming that subject.
    subjects: Mapping[str, str] = field(default_factory=dict)
    #: Further ways to reach a subject's rows through other registered tables.
    links: tuple[Link, ...] = ()
    #: Non-empty: rows are never deleted; these columns are nulled instead.
    erase_columns: tuple[str, ...] = ()
    #: Set (ledger time format) when :attr:`erase_columns` are nulled.
    redacted_column: str | None = None
    #: Erasure keeps rows of the current day (a live counter, e.g. today's usage that
    #: enforces the daily budget); retention still ages them out.
    keep_current: bool = False

    @property
    def name(self) -> str:
        """The table's name."""
        return self.table.name

    @property
    def time(self) -> sa.Column[Any]:
        """The time column."""
        return self.table.c[self.time_column]

    def older_than(self, before: datetime) -> sa.ColumnElement[bool]:
        """Rows written before ``before`` (an aware UTC datetime)."""
        cutoff: Any = format_time(before, self.time_format)
        return self.time < sa.literal(cutoff, self.time.type)

    def primary_key(self) -> list[sa.Column[Any]]:
        """The primary-key columns (batches are chosen by them)."""
        return list(self.table.primary_key.columns)


def format_time(moment: datetime, fmt: TimeFormat) -> Any:
    """``moment`` as the time column of format ``fmt`` stores it."""
    if fmt == "day":
        return moment.strftime("%Y-%m-%d")
    if fmt == "ledger":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment


def utc(moment: datetime | None) -> datetime:
    """``moment`` (default: now) as an aware UTC datetime."""
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_REGISTRY: dict[str, SubjectTable] = {}


def register_subject_table(
    table: sa.Table,
    *,
    kind: str,
    time_column: str,
    time_format: TimeFormat = "datetime",
    subjects: Mapping[str, str] | None = None,
    links: tuple[Link, ...] = (),
    erase_columns: tuple[str, ...] = (),
    redacted_column: str | None = None,
    keep_current: bool = False,
) -> SubjectTable:
    """Declare that ``table`` holds subject data, so retention ages it out and erasure finds
    it. Raises ``ValueError`` for a column the table does not have or an unknown subject kind
    (a mistake in code, caught at import)."""
    subjects = dict(subjects or {})
    unknown = set(subjects) - set(SUBJECT_KINDS)
    if unknown:
        raise ValueError(f"{table.name}: unknown subject kind(s) {sorted(unknown)}")
    named = [time_column, *subjects.values(), *(lk.column for lk in links), *erase_columns]
    if redacted_column is not None:
        named.append(redacted_column)
    missing = [c for c in named if c not in table.c]
    if missing:
        raise ValueError(f"{table.name} has no column(s) {missing}")
    entry = SubjectTable(
        table,
        kind,
        time_column,
        time_format,
        subjects,
        links,
        erase_columns,
        redacted_column,
        keep_current,
    )
    _REGISTRY[table.name] = entry
    return entry


def subject_tables() -> list[SubjectTable]:
    """Every registered table, those reached through links first (erasure must read the
    tables they link to before deleting from them)."""
    return sorted(_REGISTRY.values(), key=lambda e: (not e.links, e.name))


def subject_table(name: str) -> SubjectTable | None:
    """The registered table called ``name``, if any."""
    return _REGISTRY.get(name)


# ---- governance's own subject data --------------------------------------------------------

#: Per-key daily token and request counts ("usage detail").
register_subject_table(
    ApiKeyUsageRow.__table__,  # type: ignore[arg-type]
    kind="usage",
    time_column="day",
    time_format="day",
    subjects={"key": "key_id"},
    keep_current=True,
)

#: Request/response bodies of ledger entries (kept only with ``LLMECO_AUDIT_STORE_BODIES``):
#: outside the hashed payload, so they can be erased while the entry stays.
register_subject_table(
    audit_tables.entries,
    kind="ledger_bodies",
    time_column="ts",
    time_format="ledger",
    subjects={"key": "key_id"},
    links=(
        Link("request_id", "support_messages", "request_id"),
        Link("request_id", "support_handoffs", "request_id"),
        Link("request_id", "feedback", "request_id"),
    ),
    erase_columns=("request_body", "response_body"),
    redacted_column="bodies_redacted_at",
)
