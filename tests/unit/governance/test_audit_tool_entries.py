"""MCP tool-call entries in the audit ledger: recorded, indexed and verified like the others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmeco.governance.audit import AuditLedger, indexed_columns, verify_ledger
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.ledger import ToolRecord
from llmeco.settings import Settings


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[AuditLedger]:
    with AuditLedger.open(Settings(home=tmp_path, audit_checkpoint_entries=3)) as ledger:
        yield ledger


def tool_record(i: int, actor: str | None = "k1") -> ToolRecord:
    return ToolRecord(
        tool="search_knowledge_base",
        actor=actor,
        request_id=f"req-{i}",
        arguments_sha256="a" * 64,
        result_sha256="b" * 64,
        duration_ms=1.25,
        status=200 if i % 2 == 0 else 404,
        transport="http",
    )


def ok(ledger: AuditLedger) -> bool:
    return verify_ledger(ledger.store, ledger.signer.public_key).ok


async def test_tool_entries_are_indexed_and_verify(ledger: AuditLedger) -> None:
    ledger.record_admin("cli", "key.create", {"n": 1}).result(10)
    seqs = [await ledger.arecord_tool(tool_record(i)) for i in range(3)]
    seqs.append(ledger.record_tool(tool_record(3, actor="stdio")).result(10))
    assert seqs == [2, 3, 4, 5]
    with ledger.store.session() as s:
        rows = s.execute(sa.select(t.entries).where(t.entries.c.kind == "tool")).all()
    assert [(r.key_id, r.route, r.status, r.request_id) for r in rows] == [
        ("k1", "search_knowledge_base", 200, "req-0"),
        ("k1", "search_knowledge_base", 404, "req-1"),
        ("k1", "search_knowledge_base", 200, "req-2"),
        ("stdio", "search_knowledge_base", 404, "req-3"),
    ]
    payload = json.loads(rows[0].payload)
    assert payload == {
        **tool_record(0).fields(),
        "kind": "tool",
        "seq": 2,
        "ts": payload["ts"],
    }
    assert indexed_columns(payload)["key_id"] == "k1"
    assert ok(ledger)


def test_an_edited_tool_entry_is_caught(ledger: AuditLedger) -> None:
    for i in range(4):
        ledger.record_tool(tool_record(i)).result(10)
    with ledger.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_entries SET key_id = 'someone-else' WHERE seq = 2"))
    report = verify_ledger(ledger.store, ledger.signer.public_key)
    assert not report.ok and report.to_dict()["first_bad_seq"] == 2
