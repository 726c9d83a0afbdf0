"""The support chat stores whom each row is about; ``DELETE /admin/sessions/{id}`` erases a
session (admin only, 404 when nothing is stored) and records it in the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from data_helpers import admin_entries, counts_by
from fake_engine import FakeEngine
from gov_helpers import bearer, make_key

from llmeco.apps.conversations import ConversationLog, feedback_table, messages_table
from llmeco.apps.support.desk import SupportDesk
from llmeco.governance.audit import AuditLedger, verify_ledger
from llmeco.governance.crypto import Cipher
from llmeco.governance.keys import ApiKey
from llmeco.rag.embed import Embedder
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings
from llmeco.store import Store


@pytest.fixture
async def sclient(
    gsettings: Settings,
    auth: Authenticator,
    fake: FakeEngine,
    embedder: Embedder,
    acme_handbook: str,
) -> AsyncIterator[tuple[httpx.AsyncClient, Store, AuditLedger]]:
    store = Store.from_settings(gsettings)
    kb = KnowledgeBase.create(store, "acme", embedder)
    kb.add_text("handbook.md", acme_handbook)
    desk = SupportDesk(store, embedder, ConversationLog(store, Cipher.from_settings(gsettings)))
    fake.max_model_len = 8192
    ledger = AuditLedger.open(gsettings, store)
    app = build_app(gsettings, {fake.name: fake}, support=desk, auth=auth, ledger=ledger)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c, store, ledger
    ledger.close()
    store.close()


async def test_support_rows_name_their_subject_and_a_session_can_be_erased(
    sclient: tuple[httpx.AsyncClient, Store, AuditLedger],
    auth: Authenticator,
    root: tuple[ApiKey, str],
    fake: FakeEngine,
) -> None:
    client, store, ledger = sclient
    chat_key, chat_token = make_key(auth, ["chat"], name="app")
    fake.reply = "Refunds reach your card within five business days."
    ask = {
        "model": "support:acme",
        "messages": [{"role": "user", "content": "How long do refunds take?"}],
        "user": "carol@example.com",
    }
    headers = {**bearer(chat_token), "x-session-id": "s-carol"}
    r = await client.post("/v1/chat/completions", json=ask, headers=headers)
    assert r.status_code == 200, r.text
    rid = r.json()["id"]
    r = await client.post(
        "/v1/chat/completions",
        json={**ask, "user": None},
        headers={**headers, "x-session-id": "s-dan"},
    )
    assert r.status_code == 200, r.text
    fb = await client.post(
        "/v1/feedback", json={"response_id": rid, "rating": "up"}, headers=bearer(chat_token)
    )
    assert fb.status_code == 200, fb.text

    m = messages_table.c
    with store.session() as s:
        rows = s.execute(
            sa.select(m.role, m.key_id, m.end_user, m.request_id).where(m.session_id == "s-carol")
        ).all()
        feedback = s.execute(sa.select(feedback_table)).one()
    assert {(r.key_id, r.end_user, r.request_id) for r in rows} == {
        (chat_key.id, "carol@example.com", rid.removeprefix("chatcmpl-"))
    }
    assert (feedback.session_id, feedback.key_id, feedback.end_user) == (
        "s-carol",
        chat_key.id,
        "carol@example.com",
    )
    assert feedback.request_id == fb.headers["x-request-id"]

    path = "/admin/sessions/s-carol"
    r = await client.delete(path, headers=bearer(chat_token))
    assert r.status_code == 403, r.text
    r = await client.delete(path, headers=bearer(root[1]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"]["support_messages"] == 2 and body["counts"]["feedback"] == 1
    assert body["subject"] == "session" and body["total"] == sum(body["counts"].values())
    assert counts_by(store, "session_id", "s-carol") == dict.fromkeys(
        ("support_messages", "support_handoffs", "feedback"), 0
    )
    assert counts_by(store, "session_id", "s-dan")["support_messages"] == 2
    for unknown in (path, "/admin/sessions/never-seen"):
        r = await client.delete(unknown, headers=bearer(root[1]))
        assert r.status_code == 404, r.text
        assert r.json()["error"]["param"] == "session_id"
    ledger.flush()
    (entry,) = admin_entries(store, "data.forget")
    assert entry["actor"] == root[0].id and entry["details"]["counts"] == body["counts"]
    assert "s-carol" not in str(entry)
    assert verify_ledger(store, ledger.signer.public_key).ok


async def test_a_user_field_too_long_to_store_is_refused(
    sclient: tuple[httpx.AsyncClient, Store, AuditLedger], root: tuple[ApiKey, str]
) -> None:
    client, _, _ = sclient
    r = await client.post(
        "/v1/chat/completions",
        json={
            "model": "support:acme",
            "messages": [{"role": "user", "content": "hi"}],
            "user": "u" * 257,
        },
        headers={**bearer(root[1]), "x-session-id": "s"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "user"
