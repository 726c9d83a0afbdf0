"""The purge ``llmeco serve`` runs: only when retention is set, recorded in the server's ledger,
and a failing purge is logged, never raised."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from data_helpers import CIPHER, admin_entries, converse, counts_by, set_created

from llmeco.apps.conversations import ConversationLog, messages_table
from llmeco.governance.audit import AuditLedger
from llmeco.server.retention import retention_running
from llmeco.server.state import ServerState
from llmeco.settings import Settings
from llmeco.store import Store


async def test_job_purges_while_serving_and_records_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, retention_conversations_days=7, retention_batch=3)
    store = Store.from_settings(settings)
    converse(ConversationLog(store, CIPHER), None, session="s", key="k", user="u", turns=2)
    set_created(store, messages_table, datetime.now(UTC) - timedelta(days=8))
    with AuditLedger.open(settings, store) as ledger:
        state = ServerState(settings=settings, engines={}, ledger=ledger)
        async with retention_running(state) as job:
            assert job is not None
            for _ in range(200):
                if job.runs:
                    break
                await asyncio.sleep(0.05)
        assert job.runs == 1
    assert counts_by(store, "session_id", "s")["support_messages"] == 0
    (entry,) = admin_entries(store, "data.purge")
    assert entry["actor"] == "retention" and entry["details"]["count"] == 4
    store.close()


async def test_no_job_without_retention(tmp_path: Path) -> None:
    state = ServerState(settings=Settings(home=tmp_path), engines={})
    async with retention_running(state) as job:
        assert job is None


async def test_a_failing_purge_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        home=tmp_path,
        retention_usage_days=1,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
    )
    state = ServerState(settings=settings, engines={})
    with caplog.at_level(logging.ERROR, logger="llmeco.retention"):
        async with retention_running(state) as job:
            assert job is not None
            assert await job.run_once() == []
    assert "retention purge failed" in caplog.text
