"""``/admin/audit/*``: the ledger over HTTP — entries, verify, checkpoints, inclusion proofs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from kb_helpers import Served, bearer, key, serve

from llmeco.governance.audit import tables as t
from llmeco.governance.audit import verify_proof
from llmeco.settings import Settings

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, secret_key="test-secret", audit_store_bodies=True)  # type: ignore[arg-type]


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    s = serve(settings, kb=False)
    yield s
    s.ledger.close()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=served.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers=bearer(served.root)
    ) as c:
        yield c


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()["error"]
    return body


async def traffic(client: httpx.AsyncClient, served: Served) -> str:
    """Two chats by a chat key, one admin action by root; the chat key's id."""
    chatter, token = key(served, ["chat"], name="chatter")
    for _ in range(2):
        r = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(token))
        assert r.status_code == 200
    r = await client.post("/admin/keys", json={"name": "made", "scopes": ["chat"]})
    assert r.status_code == 201
    return chatter.id


async def test_entries_filters_and_pages(client: httpx.AsyncClient, served: Served) -> None:
    chatter = await traffic(client, served)
    page = (await client.get("/admin/audit/entries")).json()
    seqs = [e["seq"] for e in page["data"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 4 and not page["has_more"]
    mine = (await client.get("/admin/audit/entries", params={"key_id": chatter})).json()["data"]
    assert [e["route"] for e in mine] == ["/v1/chat/completions"] * 2
    assert all(e["payload"]["key_id"] == chatter and e["status"] == 200 for e in mine)
    assert "request_body" not in mine[0] or mine[0]["request_body"] is None
    admin = (await client.get("/admin/audit/entries", params={"kind": "admin"})).json()["data"]
    assert [e["route"] for e in admin] == ["key.create"]
    by_route = await client.get("/admin/audit/entries", params={"route": "/v1/chat/*"})
    assert len(by_route.json()["data"]) == 2
    assert (await client.get("/admin/audit/entries", params={"route": "/v1/chat"})).json()[
        "data"
    ] == []
    # cursor paging, oldest first, one at a time (each read is itself recorded, so the
    # ledger keeps growing: page through the entries of the first listing)
    seen: list[int] = []
    after: int | None = None
    while len(seen) < len(seqs):
        params: dict[str, Any] = {"order": "asc", "limit": 1}
        if after is not None:
            params["after"] = after
        page = (await client.get("/admin/audit/entries", params=params)).json()
        assert len(page["data"]) == 1 and page["has_more"]
        seen += [e["seq"] for e in page["data"]]
        after = page["last_seq"]
    assert seen == sorted(seqs)
    # time window
    first = min(mine, key=lambda e: e["seq"])["ts"]
    newer = (await client.get("/admin/audit/entries", params={"since": first})).json()["data"]
    older = (await client.get("/admin/audit/entries", params={"until": first})).json()["data"]
    assert {e["seq"] for e in newer}.isdisjoint({e["seq"] for e in older})
    assert all(e["ts"] >= first for e in newer) and all(e["ts"] < first for e in older)
    r = await client.get("/admin/audit/entries", params={"since": "yesterday"})
    assert error(r, 400)["param"] == "since"


async def test_bodies_only_when_asked_and_redacted(
    client: httpx.AsyncClient, served: Served
) -> None:
    _, token = key(served, ["chat"])
    msg = {**CHAT, "messages": [{"role": "user", "content": "mail me at ann@example.com"}]}
    assert (await client.post("/v1/chat/completions", json=msg, headers=bearer(token))).is_success
    r = await client.get(
        "/admin/audit/entries", params={"route": "/v1/chat/completions", "bodies": "true"}
    )
    body = r.json()["data"][0]["request_body"]
    assert "mail me at" in body and "ann@example.com" not in body
    assert r.json()["data"][0]["response_body"]


async def test_bodies_need_a_ledger_that_keeps_them(tmp_path: Path) -> None:
    served = serve(Settings(home=tmp_path, secret_key="s"), kb=False)  # type: ignore[arg-type]
    try:
        transport = httpx.ASGITransport(app=served.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=bearer(served.root)
        ) as c:
            r = await c.get("/admin/audit/entries", params={"bodies": "true"})
            assert error(r, 400)["param"] == "bodies"
    finally:
        served.ledger.close()


async def test_verify_reports_intact_then_the_tampered_entry(
    client: httpx.AsyncClient, served: Served
) -> None:
    await traffic(client, served)
    report = (await client.get("/admin/audit/verify")).json()
    assert report["ok"] is True and report["entries"] >= 4 and report["problems"] == []
    assert report["public_key"] == served.ledger.signer.public_key
    with served.store.session() as s:
        s.execute(sa.update(t.entries).where(t.entries.c.seq == 2).values(status=500))
    report = (await client.get("/admin/audit/verify")).json()
    assert report["ok"] is False and report["first_bad_seq"] == 2, report


async def test_checkpoints_and_inclusion_proofs(client: httpx.AsyncClient, served: Served) -> None:
    await traffic(client, served)
    r = await client.get("/admin/audit/entries/2/proof")
    assert "POST /admin/audit/checkpoints" in error(r, 404)["message"]
    r = await client.post("/admin/audit/checkpoints")
    assert r.status_code == 201, r.text
    signed = r.json()
    assert signed["size"] >= 4 and signed["public_key"] == served.ledger.signer.public_key
    listed = (await client.get("/admin/audit/checkpoints")).json()["data"]
    assert listed[0]["size"] == signed["size"] and listed[0]["signature"] == signed["signature"]
    assert isinstance(listed[0]["id"], int)
    proof = (await client.get("/admin/audit/entries/2/proof")).json()
    assert proof["seq"] == 2 and proof["tree_size"] == signed["size"]
    ok, why = verify_proof(proof, served.ledger.signer.public_key)
    assert ok, why
    forged = {**proof, "entry": proof["entry"].replace('"status":200', '"status":201')}
    assert forged["entry"] != proof["entry"]
    assert not verify_proof(forged, served.ledger.signer.public_key)[0]
    r = await client.get(f"/admin/audit/entries/{signed['size'] + 50}/proof")
    assert r.status_code in (400, 404), r.text
    assert (await client.get("/admin/audit/entries/0/proof")).status_code == 400


async def test_sequence_numbers_beyond_the_store_column_are_a_400(
    client: httpx.AsyncClient,
) -> None:
    too_big = str(2**63)  # found by schemathesis: SQLite overflowed into a 500
    r = await client.get("/admin/audit/entries", params={"after": too_big})
    assert "after" in str(error(r, 400)["param"])
    r = await client.get(f"/admin/audit/entries/{too_big}/proof")
    assert error(r, 400)


async def test_admin_scope_only(client: httpx.AsyncClient, served: Served) -> None:
    _, token = key(served, ["chat", "embeddings", "models", "audio", "completions"])
    for path in ("entries", "verify", "checkpoints", "entries/1/proof"):
        r = await client.get(f"/admin/audit/{path}", headers=bearer(token))
        assert "admin" in error(r, 403)["message"]
    r = await client.post("/admin/audit/checkpoints", headers=bearer(token))
    assert error(r, 403)


async def test_without_a_ledger_404(tmp_path: Path) -> None:
    from fake_engine import FakeEngine

    from llmeco.governance.scopes import SCOPES, Grant
    from llmeco.server import build_app
    from llmeco.server.auth import Authenticator

    settings = Settings(home=tmp_path, secret_key="s")  # type: ignore[arg-type]
    auth = Authenticator.open(settings)
    fake = FakeEngine()
    app = build_app(settings, {fake.name: fake}, auth=auth)
    _, root = auth.keys.create("root", Grant(scopes=frozenset(SCOPES), models=frozenset()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=bearer(root)
    ) as c:
        for path in ("entries", "verify", "checkpoints", "entries/1/proof"):
            assert "LLMECO_AUDIT" in error(await c.get(f"/admin/audit/{path}"), 404)["message"]
        assert error(await c.post("/admin/audit/checkpoints"), 404)
    await auth.aclose()
