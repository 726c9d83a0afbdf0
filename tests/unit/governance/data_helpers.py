"""Helpers for the retention and erasure tests: stored conversations of known subjects, a
ledger that keeps bodies, and readers of what is left."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from llmeco.apps.conversations import (
    ConversationLog,
    Origin,
    feedback_table,
    handoffs_table,
    messages_table,
)
from llmeco.governance.audit import AuditLedger, RequestRecord, utc_now
from llmeco.governance.audit import tables as audit_tables
from llmeco.governance.audit.checkpoint import Signer
from llmeco.governance.crypto import Cipher
from llmeco.governance.limits.usage import UsageLedger
from llmeco.store import Store

CIPHER = Cipher([b"k" * 32])
CONVERSATION_TABLES = (messages_table, handoffs_table, feedback_table)


def bodies_ledger(store: Store, home: Path) -> AuditLedger:
    """A ledger on ``store`` that keeps (sealed) bodies, signing with a key under ``home``."""
    signer = Signer.from_settings(_settings(home))
    return AuditLedger(store, signer, cipher=CIPHER, store_bodies=True)


def _settings(home: Path) -> Any:
    from llmeco.settings import Settings

    return Settings(home=home)


def request(ledger: AuditLedger, request_id: str, key_id: str | None, body: str) -> int:
    """Record one request with bodies; returns its seq."""
    record = RequestRecord(
        request_id=request_id,
        method="POST",
        path="/v1/chat/completions",
        route="/v1/chat/completions",
        status=200,
        latency_ms=1.0,
        request_sha256="0" * 64,
        response_sha256="0" * 64,
        request_bytes=len(body),
        response_bytes=len(body),
        started=utc_now(),
        key_id=key_id,
        request_body=body.encode(),
        response_body=f"answer to {body}".encode(),
    )
    return ledger.record_request(record).result(10)


def converse(
    log: ConversationLog,
    ledger: AuditLedger | None,
    *,
    session: str,
    key: str,
    user: str,
    turns: int = 2,
    tag: str = "",
) -> list[str]:
    """``turns`` stored turns of one subject (plus a hand-off and a feedback on the first
    answer), each with its ledger entry when a ledger is given; returns the request ids."""
    rids = []
    for i in range(turns):
        rid = f"{tag or session}-r{i}"
        origin = Origin(key, user, rid)
        log.record_turn(
            session, "kb", f"question {i} of {session}", f"answer {i}", f"chatcmpl-{rid}", origin
        )
        if ledger is not None:
            request(ledger, rid, key, f"question {i} of {session}")
        rids.append(rid)
    log.record_handoff(
        "kb", session, f"chatcmpl-{rids[0]}", "a question", "low", Origin(key, user, rids[0])
    )
    fb = f"{tag or session}-fb"
    log.record_feedback(f"chatcmpl-{rids[0]}", -1, "a fix", None, Origin(key, None, fb))
    if ledger is not None:
        request(ledger, fb, key, "feedback with a fix")
    return [*rids, fb]


def add_usage(store: Store, key: str, day: str, tokens: int = 5) -> None:
    """One usage row (key, day)."""
    UsageLedger(store).add({(key, day): [tokens, tokens, 1]})


def counts_by(store: Store, column: str, value: str) -> dict[str, int]:
    """Rows per conversation table whose ``column`` is ``value``."""
    out = {}
    with store.session() as s:
        for t in CONVERSATION_TABLES:
            out[t.name] = int(
                s.scalar(sa.select(sa.func.count()).select_from(t).where(t.c[column] == value)) or 0
            )
    return out


def set_created(store: Store, table: sa.Table, moment: datetime, where: Any = None) -> None:
    """Move rows of ``table`` (all, or those ``where``) to ``moment``."""
    stmt = sa.update(table).values(created_at=moment)
    if where is not None:
        stmt = stmt.where(where)
    with store.session() as s:
        s.execute(stmt)


def ledger_bodies(store: Store) -> dict[str, tuple[bool, str | None]]:
    """request id → (has bodies, bodies_redacted_at) of every request entry."""
    e = audit_tables.entries.c
    with store.session() as s:
        rows = s.execute(
            sa.select(e.request_id, e.request_body, e.response_body, e.bodies_redacted_at).where(
                e.kind == "request"
            )
        ).all()
    return {
        r.request_id: (
            r.request_body is not None or r.response_body is not None,
            r.bodies_redacted_at,
        )
        for r in rows
    }


def admin_entries(store: Store, action: str) -> list[dict[str, Any]]:
    """Payloads of the ledger's admin entries of ``action``, oldest first."""
    e = audit_tables.entries.c
    with store.session() as s:
        rows = s.execute(
            sa.select(e.payload).where(e.kind == "admin", e.route == action).order_by(e.seq)
        ).all()
    return [json.loads(r.payload) for r in rows]
