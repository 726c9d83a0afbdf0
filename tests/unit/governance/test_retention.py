"""Retention: exactly what is past its age goes, in bounded batches, each purge in the ledger;
ledger entries keep their hash (and verify) and lose only their bodies."""

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
    ledger_bodies,
    set_created,
)

from llmeco.apps.conversations import ConversationLog, feedback_table, messages_table
from llmeco.errors import ConfigError, NotFound
from llmeco.governance.audit import tables as audit_tables
from llmeco.governance.audit import verify_ledger
from llmeco.governance.audit.ledger import AuditLedger
from llmeco.governance.retention import RetentionPolicy, purge
from llmeco.governance.tables import ApiKeyUsageRow
from llmeco.settings import Settings
from llmeco.store import Store

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.from_settings(Settings(home=tmp_path))
    yield s
    s.close()


@pytest.fixture
def log(store: Store) -> ConversationLog:
    return ConversationLog(store, CIPHER)


def message_ids(store: Store) -> list[int]:
    with store.session() as s:
        return list(s.scalars(sa.select(messages_table.c.id).order_by(messages_table.c.id)))


def test_purge_removes_exactly_what_is_past_its_age(store: Store, log: ConversationLog) -> None:
    for i in range(4):
        converse(log, None, session=f"s{i}", key="k1", user="u", turns=1)
    ids = message_ids(store)  # 8 messages: two per session
    cutoff = NOW - timedelta(days=30)
    ages = [
        cutoff - timedelta(days=5),
        cutoff - timedelta(microseconds=1),  # just past its age
        cutoff,  # exactly 30 days old: kept
        cutoff + timedelta(seconds=1),
    ]
    for i, moment in enumerate(ages):
        set_created(store, messages_table, moment, messages_table.c.id.in_(ids[2 * i : 2 * i + 2]))
    set_created(store, feedback_table, cutoff - timedelta(days=400))  # no feedback retention
    for day in ("2025-05-20", "2025-05-21", "2025-05-22", "2025-06-01"):
        add_usage(store, "k1", day)

    policy = RetentionPolicy({"conversations": 30, "usage": 10}, batch=100)
    results = {r.table: r for r in purge(store, policy, now=NOW)}

    assert set(results) == {"support_messages", "api_key_usage"}
    assert results["support_messages"].count == 4
    assert message_ids(store) == ids[4:]
    with store.session() as s:
        days = list(s.scalars(sa.select(ApiKeyUsageRow.day).order_by(ApiKeyUsageRow.day)))
        feedback = s.scalar(sa.select(sa.func.count()).select_from(feedback_table))
    # cutoff is 2025-05-22 12:00: only whole days before it are past their age
    assert days == ["2025-05-22", "2025-06-01"] and results["api_key_usage"].count == 2
    assert feedback == 4
    assert results["support_messages"].before == cutoff


@pytest.mark.parametrize(("rows", "batches"), [(10, [3, 3, 3, 1]), (9, [3, 3, 3, 0]), (2, [2])])
def test_batches_are_bounded_and_each_is_a_transaction(
    store: Store, log: ConversationLog, rows: int, batches: list[int]
) -> None:
    for i in range(rows):
        log.record_turn(f"s{i}", "kb", "q", "a", f"chatcmpl-{i}")
    with store.session() as s:  # keep exactly `rows` messages: drop the user halves
        s.execute(sa.delete(messages_table).where(messages_table.c.role == "user"))
    set_created(store, messages_table, NOW - timedelta(days=2))
    commits: list[int] = []
    sa.event.listen(store.engine, "commit", lambda conn: commits.append(1))
    seen: list[int] = []
    results = purge(
        store,
        RetentionPolicy({"conversations": 1}, batch=3),
        now=NOW,
        on_batch=lambda table, n: seen.append(n),
    )
    assert results[0].batches == batches == seen
    assert results[0].count == rows
    assert len(commits) == len(batches)
    assert message_ids(store) == []


def test_dry_run_counts_and_deletes_nothing(store: Store, log: ConversationLog) -> None:
    converse(log, None, session="a", key="k", user="u", turns=3)
    set_created(store, messages_table, NOW - timedelta(days=40))
    policy = RetentionPolicy({"conversations": 30, "feedback": 30}, batch=2)
    dry = purge(store, policy, now=NOW, dry_run=True)
    assert {r.table: (r.count, r.batches) for r in dry} == {
        "support_messages": (6, []),
        "feedback": (0, []),  # written just now (real clock): not past its age
    }
    assert len(message_ids(store)) == 6
    real = purge(store, policy, now=NOW)
    assert {r.table: r.count for r in real} == {"support_messages": 6, "feedback": 0}


def test_each_purge_is_recorded_in_the_ledger(
    store: Store, log: ConversationLog, tmp_path: Path
) -> None:
    converse(log, None, session="a", key="k", user="u", turns=2)
    set_created(store, messages_table, NOW - timedelta(days=10))
    add_usage(store, "k", "2025-01-01")
    with AuditLedger.open(Settings(home=tmp_path), store) as ledger:
        policy = RetentionPolicy({"conversations": 5, "usage": 5, "handoffs": 5}, batch=3)
        purge(store, policy, now=NOW, ledger=ledger, actor="tester")
        purge(store, policy, now=NOW, ledger=ledger, actor="tester")  # nothing left: no entry
    entries = admin_entries(store, "data.purge")
    details = sorted((e["details"] for e in entries), key=lambda d: d["kind"])
    assert [e["actor"] for e in entries] == ["tester", "tester"]
    assert details == [
        {
            "kind": "conversations",
            "table": "support_messages",
            "count": 4,
            "before": "2025-05-27T12:00:00.000000Z",
        },
        {
            "kind": "usage",
            "table": "api_key_usage",
            "count": 1,
            "before": "2025-05-27T12:00:00.000000Z",
        },
    ]


def test_ledger_bodies_are_erased_and_the_ledger_still_verifies(
    store: Store, log: ConversationLog, tmp_path: Path
) -> None:
    ledger = bodies_ledger(store, tmp_path)
    with ledger:
        rids = converse(log, ledger, session="a", key="k", user="u", turns=4)
        ledger.checkpoint_now()
        e = audit_tables.entries.c
        with store.session() as s:
            ts = dict(s.execute(sa.select(e.request_id, e.ts).where(e.kind == "request")).all())
        # the cutoff is exactly the third request's time: the two before it lose their bodies
        cut = datetime.strptime(ts[rids[2]], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        now = cut + timedelta(days=7)
        results = purge(
            store, RetentionPolicy({"ledger_bodies": 7}, batch=1), now=now, ledger=ledger
        )
    assert [(r.table, r.count, r.batches) for r in results] == [("audit_entries", 2, [1, 1, 0])]
    bodies = ledger_bodies(store)
    marked = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert [bodies[r] for r in rids] == [
        (False, marked),
        (False, marked),
        (True, None),
        (True, None),
        (True, None),  # the feedback request
    ]
    with store.session() as s:  # every entry is still there
        assert s.scalar(sa.select(sa.func.count()).select_from(audit_tables.entries)) == 6
    report = verify_ledger(store, ledger.signer.public_key)
    assert report.ok, report.problems
    assert admin_entries(store, "data.purge")[0]["details"]["count"] == 2


def test_policy_from_settings_and_yaml(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, retention_feedback_days=90, retention_batch=7)
    policy = RetentionPolicy.from_settings(settings)
    assert policy.days["feedback"] == 90 and policy.days["conversations"] == 0
    assert policy.batch == 7 and policy.configured
    assert not RetentionPolicy.from_settings(Settings(home=tmp_path)).configured
    assert policy.cutoff("conversations", NOW) is None
    assert policy.cutoff("feedback", NOW) == NOW - timedelta(days=90)

    path = tmp_path / "policy.yaml"
    path.write_text("conversations: 30\nfeedback: 0\nbatch: 50\n")
    merged = policy.with_file(path)
    assert merged.days["conversations"] == 30 and merged.days["feedback"] == 0
    assert merged.batch == 50
    for text, message in (
        ("chats: 3\n", "unknown retention kind"),
        ("conversations: -1\n", "whole numbers"),
        ("batch: 0\n", "batch"),
        ("- 1\n", "must map"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            policy.with_file(path)
    with pytest.raises(NotFound):
        policy.with_file(tmp_path / "missing.yaml")
