"""Erasure: every record of one subject goes (ledger bodies erased, entries kept), nobody
else's, on SQLite and PostgreSQL; the ledger still verifies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from data_helpers import (
    CIPHER,
    add_usage,
    admin_entries,
    bodies_ledger,
    converse,
    counts_by,
    ledger_bodies,
)

from llmeco.apps.conversations import ConversationLog
from llmeco.errors import InvalidRequest
from llmeco.governance.audit import AuditLedger, verify_ledger
from llmeco.governance.erasure import forget, subject_digest
from llmeco.governance.tables import ApiKeyUsageRow
from llmeco.store import Store

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
LONG_AGO = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d")
ALICE = {"session": "sess-alice", "key": "key-alice", "user": "alice@example.com"}
BOB = {"session": "sess-bob", "key": "key-bob", "user": "bob@example.com"}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'llmeco.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    s = Store(url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def world(
    store: Store, tmp_path: Path
) -> Iterator[tuple[Store, AuditLedger, dict[str, list[str]]]]:
    """Alice and Bob, each with conversations, a hand-off, feedback, ledger entries with
    bodies and usage (a past day and today)."""
    log = ConversationLog(store, CIPHER)
    ledger = bodies_ledger(store, tmp_path)
    rids = {}
    for who in (ALICE, BOB):
        rids[who["key"]] = converse(
            log, ledger, session=who["session"], key=who["key"], user=who["user"]
        )
        add_usage(store, who["key"], LONG_AGO)
        add_usage(store, who["key"], TODAY)
    with ledger:
        yield store, ledger, rids


def usage_days(store: Store, key: str) -> list[str]:
    with store.session() as s:
        return sorted(s.scalars(sa.select(ApiKeyUsageRow.day).where(ApiKeyUsageRow.key_id == key)))


@pytest.mark.parametrize("kind", ["session", "key", "user"])
def test_forget_removes_every_record_of_the_subject_and_nothing_else(
    world: tuple[Store, AuditLedger, dict[str, list[str]]], kind: str
) -> None:
    store, ledger, rids = world
    bob_before = counts_by(store, "key_id", BOB["key"])
    assert bob_before == {"support_messages": 4, "support_handoffs": 1, "feedback": 1}
    assert counts_by(store, "key_id", ALICE["key"]) == bob_before

    dry = forget(store, kind, ALICE[kind], dry_run=True)
    assert counts_by(store, "key_id", ALICE["key"]) == bob_before  # nothing gone
    report = forget(store, kind, ALICE[kind], ledger=ledger, actor="dpo")
    assert report.counts == dry.counts and not report.dry_run

    expected = {"support_messages": 4, "support_handoffs": 1, "feedback": 1, "audit_entries": 3}
    if kind == "key":
        expected["api_key_usage"] = 1  # the past day; today's row enforces the budget
    assert report.counts == {**dict.fromkeys(report.counts, 0), **expected}
    for column in ("session_id", "key_id", "end_user"):
        value = {"session_id": ALICE["session"], "key_id": ALICE["key"], "end_user": ALICE["user"]}
        assert sum(counts_by(store, column, value[column]).values()) == 0
    assert counts_by(store, "key_id", BOB["key"]) == bob_before

    bodies = ledger_bodies(store)
    assert all(not bodies[r][0] and bodies[r][1] for r in rids[ALICE["key"]])
    assert all(bodies[r] == (True, None) for r in rids[BOB["key"]])
    assert usage_days(store, BOB["key"]) == [LONG_AGO, TODAY]
    assert usage_days(store, ALICE["key"]) == ([TODAY] if kind == "key" else [LONG_AGO, TODAY])

    (entry,) = admin_entries(store, "data.forget")
    assert entry["actor"] == "dpo"
    assert entry["details"] == {
        "subject": kind,
        "subject_sha256": subject_digest(ALICE[kind]),
        "counts": report.counts,
    }
    assert ALICE[kind] not in str(entry)
    assert verify_ledger(store, ledger.signer.public_key).ok

    again = forget(store, kind, ALICE[kind], ledger=ledger)
    assert again.total == 0
    assert len(admin_entries(store, "data.forget")) == 1  # nothing removed: no entry


def test_bad_subjects_are_refused(store: Store) -> None:
    with pytest.raises(InvalidRequest):
        forget(store, "email", "x")
    with pytest.raises(InvalidRequest):
        forget(store, "session", "")
    with pytest.raises(InvalidRequest):
        forget(store, "user", "u" * 257)
