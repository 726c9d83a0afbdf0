"""``/v1/kb``: knowledge bases over HTTP, through the whole app (auth, scopes, the ledger).

A real store and the library's own ingestion; a bag-of-words embedder stands in for the
packaged model so the tests take a second.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from kb_helpers import Served, bearer, key, serve

from llmeco.apps.answerability import default_gate
from llmeco.apps.support.calibration import GateStore
from llmeco.governance.audit import tables as t
from llmeco.settings import Settings

FAQ = b"# FAQ\n\n## Shipping\n\nParcels ship from Lyon with a tracking number by email.\n"
PAGE = (
    b"<html><body><h2>Returns</h2><p>Bring the receipt to any shop.</p>"
    b"<table><tr><th>Day</th><th>Doors</th></tr><tr><td>Monday</td><td>09:00</td></tr>"
    b"</table></body></html>"
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, secret_key="test-secret", max_body_bytes=64 * 1024)  # type: ignore[arg-type]


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    s = serve(settings)
    yield s
    s.ledger.close()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=served.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers=bearer(served.root)
    ) as c:
        yield c


def upload(name: str, data: bytes, **form: str) -> dict[str, Any]:
    return {"files": {"file": (name, data, "application/octet-stream")}, "data": form}


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()["error"]
    return body


async def test_create_fill_search_remove_delete(client: httpx.AsyncClient, served: Served) -> None:
    r = await client.post("/v1/kb", json={"name": "shop"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "shop" and r.json()["documents"] == 0
    r = await client.post("/v1/kb/shop/documents", **upload("faq.md", FAQ))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "added" and r.json()["chunks"] >= 1
    r = await client.post(
        "/v1/kb/shop/documents", **upload("returns.html", PAGE, document="policies/returns")
    )
    assert r.json()["document"] == "policies/returns", r.text
    r = await client.post("/v1/kb/shop/documents", **upload("faq.md", FAQ))
    assert r.json()["status"] == "unchanged"
    r = await client.post(
        "/v1/kb/shop/documents/text", json={"name": "notes", "text": "## Gift cards\n\nNo expiry."}
    )
    assert r.status_code == 201 and r.json()["status"] == "added", r.text

    listed = {kb["name"]: kb for kb in (await client.get("/v1/kb")).json()["data"]}
    assert set(listed) == {"acme", "shop"}
    assert listed["shop"]["documents"] == 3 and listed["shop"]["chunks"] >= 3
    details = (await client.get("/v1/kb/shop")).json()
    docs = {d["name"]: d for d in details["document_list"]}
    assert set(docs) == {"faq.md", "notes", "policies/returns"}
    assert docs["faq.md"]["source"] == "upload:faq.md"
    assert len(docs["faq.md"]["content_hash"]) == 64

    r = await client.post("/v1/kb/shop/search", json={"query": "tracking number parcels", "k": 2})
    hits = r.json()["data"]
    assert r.status_code == 200 and 1 <= len(hits) <= 2
    assert hits[0]["anchor"] == "faq.md#Shipping" and "Lyon" in hits[0]["text"]
    assert hits[0]["rank"] == 1 and hits[0]["score"] > 0
    r = await client.post("/v1/kb/shop/search", json={"query": "Monday doors"})
    assert any("Monday" in h["text"] and h["doc"] == "policies/returns" for h in r.json()["data"])

    r = await client.delete("/v1/kb/shop/documents/policies/returns")
    assert r.status_code == 200 and r.json()["chunks"] >= 1, r.text
    r = await client.delete("/v1/kb/shop/documents/policies%2Freturns")
    assert "no document" in error(r, 404)["message"]
    gates = GateStore(served.store)
    gates.put("shop", default_gate())
    r = await client.delete("/v1/kb/shop")
    assert gates.get("shop") is None  # its calibrated hand-off gate goes with it
    assert r.json() == {
        "object": "knowledge_base.deleted",
        "name": "shop",
        "deleted": True,
        "documents": 2,
        "chunks": r.json()["chunks"],
    }
    assert "shop" in error(await client.get("/v1/kb/shop"), 404)["message"]
    # the same name again is a new, empty knowledge base (no stale cached index)
    assert (await client.post("/v1/kb", json={"name": "shop"})).status_code == 201
    r = await client.post("/v1/kb/shop/search", json={"query": "tracking"})
    assert r.status_code == 200 and r.json()["data"] == []


async def test_writes_are_audited_admin_actions(client: httpx.AsyncClient, served: Served) -> None:
    await client.post("/v1/kb", json={"name": "shop"})
    await client.post("/v1/kb/shop/documents", **upload("faq.md", FAQ))
    await client.post("/v1/kb/shop/documents/text", json={"name": "n", "text": "hello there"})
    await client.delete("/v1/kb/shop/documents/n")
    await client.delete("/v1/kb/shop")
    await client.post("/v1/kb/acme/search", json={"query": "refunds"})
    served.ledger.flush()
    with served.store.session() as s:
        rows = s.execute(
            sa.select(t.entries.c.route, t.entries.c.key_id, t.entries.c.payload).where(
                t.entries.c.kind == "admin"
            )
        ).all()
    actions = [r.route for r in rows]
    assert actions == ["kb.create", "kb.add", "kb.add", "kb.remove", "kb.delete"]
    assert {r.key_id for r in rows} == {served.root_id}
    details = json.loads(rows[1].payload)["details"]
    assert details == {"kb": "shop", "document": "faq.md", "status": "added", "file": "faq.md"}


#: (file name, form fields) of uploads whose names could walk out of a folder.
ESCAPES: list[tuple[str, dict[str, str]]] = [
    ("../../escape.md", {}),
    ("/etc/passwd.md", {}),
    ("..\\..\\win.md", {}),
    ("a/./b.md", {}),
    ("ok.md", {"document": "../up.md"}),
    ("ok.md", {"document": "guides/../../x"}),
    ("ok.md", {"document": "tab\there"}),
    ("", {}),
]


async def test_upload_names_cannot_escape(client: httpx.AsyncClient, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    for filename, form in ESCAPES:
        r = await client.post("/v1/kb/acme/documents", **upload(filename, FAQ, **form))
        # an empty file name already fails FastAPI's own check of the form
        assert r.status_code in (400, 422), (filename, form, r.text)
        if r.status_code == 400:
            assert error(r, 400)["param"] in ("file", "document"), (filename, form)
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    docs = (await client.get("/v1/kb/acme")).json()["document_list"]
    assert [d["name"] for d in docs] == ["handbook.md"]


async def test_text_document_names_are_checked(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/kb/acme/documents/text", json={"name": "../x", "text": "hi"})
    assert error(r, 400)["param"] == "name"
    r = await client.post("/v1/kb/acme/documents/text", json={"name": "x", "text": "   "})
    assert error(r, 400)["param"] == "text"


async def test_oversize_upload_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/kb/acme/documents", **upload("big.txt", b"word " * 20_000))
    assert r.status_code == 413, r.text
    assert len((await client.get("/v1/kb/acme")).json()["document_list"]) == 1


@pytest.mark.parametrize(
    ("filename", "data", "says"),
    [
        ("tool.exe", b"MZ\x90\x00", "unsupported format"),
        ("scan.pdf", b"%PDF-1.4 this is not a pdf", "scan.pdf"),
        ("report.docx", b"PK\x03\x04 broken zip", "report.docx"),
        ("latin.txt", "café".encode("latin-1"), "not UTF-8"),
        ("blank.md", b"   \n\n", "no text"),
        ("headings.md", b"# Only\n## Headings\n", "headings.md"),
    ],
)
async def test_bad_files_are_400_naming_the_file_and_index_nothing(
    client: httpx.AsyncClient, filename: str, data: bytes, says: str
) -> None:
    r = await client.post("/v1/kb/acme/documents", **upload(filename, data))
    err = error(r, 400)
    assert filename in err["message"] and says in err["message"], err
    assert "/tmp" not in err["message"] and "upload" not in err["message"].split(":")[0]
    details = (await client.get("/v1/kb/acme")).json()
    assert details["documents"] == 1 and [d["name"] for d in details["document_list"]] == [
        "handbook.md"
    ]


async def test_bad_names_and_queries(client: httpx.AsyncClient) -> None:
    assert (
        "already exists"
        in error(await client.post("/v1/kb", json={"name": "acme"}), 400)["message"]
    )
    assert error(await client.post("/v1/kb", json={"name": "   "}), 400)
    r = await client.post("/v1/kb/acme/search", json={"query": "   "})
    assert error(r, 400)["param"] == "query"
    r = await client.post("/v1/kb/acme/search", json={"query": "x", "k": 0})
    assert r.status_code == 400, r.text


async def test_unknown_kb_is_404(client: httpx.AsyncClient) -> None:
    for r in (
        await client.get("/v1/kb/nope"),
        await client.post("/v1/kb/nope/search", json={"query": "refunds"}),
        await client.post("/v1/kb/nope/documents", **upload("faq.md", FAQ)),
        await client.post("/v1/kb/nope/documents/text", json={"name": "a", "text": "b"}),
        await client.delete("/v1/kb/nope/documents/handbook.md"),
        await client.delete("/v1/kb/nope"),
    ):
        err = error(r, 404)
        assert "nope" in err["message"] and "acme" in err["message"]
    assert "no document" in error(await client.delete("/v1/kb/acme/documents/x.md"), 404)["message"]


async def test_scopes_and_model_allow_lists(client: httpx.AsyncClient, served: Served) -> None:
    _, reader = key(served, ["chat"])
    _, other = key(served, ["chat"], models=["support:other", "fake-model"])
    _, embed_only = key(served, ["embeddings"])
    h = bearer(reader)
    assert (await client.get("/v1/kb", headers=h)).status_code == 200
    assert (await client.get("/v1/kb/acme", headers=h)).status_code == 200
    r = await client.post("/v1/kb/acme/search", json={"query": "refunds"}, headers=h)
    assert r.status_code == 200 and r.json()["data"][0]["anchor"] == "handbook.md#Refunds"
    for r in (
        await client.post("/v1/kb", json={"name": "mine"}, headers=h),
        await client.post("/v1/kb/acme/documents", **upload("faq.md", FAQ), headers=h),
        await client.post("/v1/kb/acme/documents/text", json={"name": "a", "text": "b"}, headers=h),
        await client.delete("/v1/kb/acme/documents/handbook.md", headers=h),
        await client.delete("/v1/kb/acme", headers=h),
    ):
        assert "admin" in error(r, 403)["message"]
    # a key limited to support:other sees no acme and may not read it (403 before 404)
    h = bearer(other)
    assert (await client.get("/v1/kb", headers=h)).json()["data"] == []
    assert error(await client.get("/v1/kb/acme", headers=h), 403)
    assert error(await client.post("/v1/kb/acme/search", json={"query": "x"}, headers=h), 403)
    assert error(await client.get("/v1/kb/missing", headers=h), 403)
    assert error(await client.get("/v1/kb", headers=bearer(embed_only)), 403)
    assert error(await client.get("/v1/kb", headers=bearer("sk-wrong")), 401)


async def test_without_an_embedder_there_are_no_knowledge_bases(settings: Settings) -> None:
    served = serve(settings, kb=False)
    try:
        transport = httpx.ASGITransport(app=served.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=bearer(served.root)
        ) as c:
            for r in (await c.get("/v1/kb"), await c.post("/v1/kb", json={"name": "a"})):
                assert "embedding model" in error(r, 404)["message"]
    finally:
        served.ledger.close()
