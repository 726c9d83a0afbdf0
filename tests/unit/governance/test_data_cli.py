"""``llmeco data purge`` and ``llmeco data forget`` against a real store, checked afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from data_helpers import CIPHER, admin_entries, converse, counts_by, set_created
from typer.testing import CliRunner

from llmeco.apps.conversations import ConversationLog, messages_table
from llmeco.cli.main import app
from llmeco.governance.audit import verify_ledger
from llmeco.governance.audit.checkpoint import Signer
from llmeco.governance.crypto import generate_key
from llmeco.settings import Settings
from llmeco.store import Store

runner = CliRunner()
KEY = generate_key()


def env(home: Path, **extra: str) -> dict[str, str]:
    return {"LLMECO_HOME": str(home), "LLMECO_ENCRYPTION_KEYS": KEY, "COLUMNS": "200", **extra}


def populate(home: Path) -> Store:
    store = Store.from_settings(Settings(home=home))
    log = ConversationLog(store, CIPHER)
    converse(log, None, session="old", key="k1", user="ann", turns=2)
    converse(log, None, session="new", key="k2", user="bob", turns=1)
    old = datetime.now(UTC) - timedelta(days=100)
    set_created(store, messages_table, old, messages_table.c.session_id == "old")
    return store


def test_purge_dry_run_then_for_real(tmp_path: Path) -> None:
    store = populate(tmp_path)
    e = env(tmp_path, LLMECO_RETENTION_CONVERSATIONS_DAYS="30")
    result = runner.invoke(app, ["data", "purge", "--dry-run"], env=e)
    assert result.exit_code == 0, result.output
    assert "would purge" in result.output and "support_messages" in result.output
    assert counts_by(store, "session_id", "old")["support_messages"] == 4

    result = runner.invoke(app, ["data", "purge"], env=e)
    assert result.exit_code == 0, result.output
    assert counts_by(store, "session_id", "old")["support_messages"] == 0
    assert counts_by(store, "session_id", "new")["support_messages"] == 2
    (entry,) = admin_entries(store, "data.purge")
    assert entry["details"]["count"] == 4 and entry["details"]["kind"] == "conversations"
    assert verify_ledger(store, Signer.from_settings(Settings(home=tmp_path)).public_key).ok
    store.close()


def test_purge_with_a_policy_file_and_without_retention(tmp_path: Path) -> None:
    store = populate(tmp_path)
    result = runner.invoke(app, ["data", "purge"], env=env(tmp_path))
    assert result.exit_code == 0 and "no retention is set" in result.output
    policy = tmp_path / "policy.yaml"
    policy.write_text("conversations: 50\nbatch: 1\n")
    result = runner.invoke(app, ["data", "purge", "--policy", str(policy)], env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert counts_by(store, "session_id", "old")["support_messages"] == 0
    policy.write_text("chats: 3\n")
    result = runner.invoke(app, ["data", "purge", "--policy", str(policy)], env=env(tmp_path))
    assert result.exit_code == 2 and "unknown retention kind" in result.output
    store.close()


def test_forget_prints_counts_and_removes_the_subject(tmp_path: Path) -> None:
    store = populate(tmp_path)
    result = runner.invoke(app, ["data", "forget", "--user", "ann", "--dry-run"], env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "would remove" in result.output and "support_messages" in result.output
    assert counts_by(store, "end_user", "ann")["support_messages"] == 4

    result = runner.invoke(app, ["data", "forget", "--user", "ann"], env=env(tmp_path))
    assert result.exit_code == 0, result.output
    lines = {
        ln.split("│")[1].strip(): ln.split("│")[2].strip()
        for ln in result.output.splitlines()
        if ln.count("│") == 3
    }
    assert lines["support_messages"] == "4" and lines["feedback"] == "1"
    assert lines["support_handoffs"] == "1" and lines["total"] == "6"
    assert "ann" not in result.output  # the subject is shown only as its hash
    assert counts_by(store, "end_user", "ann") == {
        "support_messages": 0,
        "support_handoffs": 0,
        "feedback": 0,
    }
    assert counts_by(store, "end_user", "bob")["support_messages"] == 2
    (entry,) = admin_entries(store, "data.forget")
    assert entry["details"]["counts"]["support_messages"] == 4

    for args in ([], ["--session", "a", "--key", "b"]):
        result = runner.invoke(app, ["data", "forget", *args], env=env(tmp_path))
        assert result.exit_code == 2 and "exactly one subject" in result.output
    store.close()
