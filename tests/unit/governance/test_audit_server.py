"""The audit middleware: every request gets an entry, committed before it is acknowledged."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from llmeco.governance.audit import AuditLedger
from llmeco.governance.audit import ledger as audit_mod
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.verify import read_entry, verify_ledger
from llmeco.server import build_app
from llmeco.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from fake_engine import FakeEngine
from server_helpers import LiveServer

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[AuditLedger]:
    with AuditLedger.open(Settings(home=tmp_path)) as ledger:
        yield ledger


def make_app(tmp_path: Path, ledger: AuditLedger, **engine: Any) -> FastAPI:
    fake = FakeEngine(**engine)
    settings = Settings(home=tmp_path, max_body_bytes=2048)
    return build_app(settings, {fake.name: fake}, ledger=ledger)


@pytest.fixture
async def client(tmp_path: Path, ledger: AuditLedger) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(tmp_path, ledger))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def entries(ledger: AuditLedger) -> dict[str, dict[str, Any]]:
    import sqlalchemy as sa

    with ledger.store.session() as s:
        rows = s.scalars(sa.select(t.entries.c.payload).order_by(t.entries.c.seq)).all()
    return {p["request_id"]: p for p in map(json.loads, rows)}


async def test_each_request_is_recorded_before_its_response(
    client: httpx.AsyncClient, ledger: AuditLedger
) -> None:
    ok = await client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "r-ok"})
    streamed = await client.post(
        "/v1/chat/completions",
        json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        headers={"x-request-id": "r-stream"},
    )
    missing = await client.post(
        "/v1/chat/completions", json={**CHAT, "model": "nope"}, headers={"x-request-id": "r-404"}
    )
    big = await client.post(
        "/v1/chat/completions", content=b"x" * 5000, headers={"x-request-id": "r-413"}
    )
    models = await client.get("/v1/models", headers={"x-request-id": "r-models"})
    assert [r.status_code for r in (ok, streamed, missing, big, models)] == [
        200,
        200,
        404,
        413,
        200,
    ]
    # Committed already: read straight away, no flush.
    got = entries(ledger)
    assert set(got) == {"r-ok", "r-stream", "r-404", "r-413", "r-models"}
    e = got["r-ok"]
    assert e["status"] == 200 and e["route"] == "/v1/chat/completions"
    assert e["model"] == "fake-model" and e["method"] == "POST"
    assert e["response_sha256"] == hashlib.sha256(ok.content).hexdigest()
    assert e["request_sha256"] == hashlib.sha256(ok.request.content).hexdigest()
    assert (e["prompt_tokens"], e["completion_tokens"]) == (
        ok.json()["usage"]["prompt_tokens"],
        ok.json()["usage"]["completion_tokens"],
    )
    s = got["r-stream"]
    assert s["response_sha256"] == hashlib.sha256(streamed.content).hexdigest()
    assert s["completion_tokens"] == len("Hello from the fake engine.")
    assert got["r-404"]["status"] == 404 and got["r-413"]["status"] == 413
    assert got["r-413"]["route"] == "unmatched"
    assert got["r-models"]["route"] == "/v1/models" and got["r-models"]["key_id"] is None
    assert verify_ledger(ledger.store, ledger.signer.public_key).ok


async def test_key_id_comes_from_the_auth_layer(tmp_path: Path, ledger: AuditLedger) -> None:
    from llmeco.server.auth import Authenticator

    settings = Settings(home=tmp_path)
    auth = Authenticator.open(settings, ledger.store)
    token = auth.keys.ensure_first_admin()
    assert token is not None
    key_id = auth.keys.all_keys()[0].id
    fake = FakeEngine()
    app = build_app(settings, {fake.name: fake}, ledger=ledger, auth=auth)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        ok = await c.get(
            "/v1/models", headers={"x-request-id": "r-key", "authorization": f"Bearer {token}"}
        )
        denied = await c.get("/v1/models", headers={"x-request-id": "r-nokey"})
    await auth.aclose()
    assert (ok.status_code, denied.status_code) == (200, 401)
    got = entries(ledger)
    assert got["r-key"]["key_id"] == key_id
    assert got["r-nokey"]["key_id"] is None and got["r-nokey"]["status"] == 401
    assert token not in json.dumps(got)  # the secret never reaches the ledger


def test_stream_done_waits_for_the_commit(tmp_path: Path, ledger: AuditLedger) -> None:
    """While the ledger cannot commit, the stream's content flows but [DONE] is held back."""
    gate = threading.Event()
    original = ledger._commit

    def slow_commit(*args: Any, **kw: Any) -> Any:
        gate.wait(10)
        return original(*args, **kw)

    ledger._commit = slow_commit  # type: ignore[method-assign]
    app = make_app(tmp_path, ledger, reply="abc")
    lines: list[str] = []
    with (
        LiveServer(app) as live,
        httpx.stream(
            "POST", live.url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=10
        ) as r,
    ):
        it = r.iter_lines()
        content = ""
        while not content.endswith("abc"):
            line = next(it)
            if line.startswith("data: {"):
                choices = json.loads(line[6:])["choices"]
                if choices:
                    content += choices[0]["delta"].get("content") or ""
        timer = threading.Timer(0.5, gate.set)
        timer.start()
        lines = [line for line in it if line]
        assert gate.is_set(), "[DONE] arrived before the entry was committed"
    assert lines[-1] == "data: [DONE]"
    assert entries(ledger)


def test_unavailable_ledger_means_no_acknowledgement(
    tmp_path: Path, ledger: AuditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    monkeypatch.setattr(audit_mod, "RETRY_DELAYS", (0.01,))
    with ledger.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE audit_entries"))
    app = make_app(tmp_path, ledger)
    with LiveServer(app) as live:
        r = httpx.post(live.url + "/v1/chat/completions", json=CHAT, timeout=10)
        assert r.status_code == 503
        assert r.json()["error"]["type"] == "service_unavailable_error"
        s = httpx.post(live.url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=10)
    assert s.status_code == 200  # the stream had started …
    assert "[DONE]" not in s.text and '"error"' in s.text  # … but is never completed


async def test_bodies_kept_only_when_configured(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, audit_store_bodies=True)
    with AuditLedger.open(settings) as ledger:
        fake = FakeEngine()
        app = build_app(settings, {fake.name: fake}, ledger=ledger)
        body = {**CHAT, "messages": [{"role": "user", "content": "I am jane@example.com"}]}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            await c.post("/v1/chat/completions", json=body, headers={"x-request-id": "b1"})
        from llmeco.governance.crypto import Cipher

        entry = read_entry(ledger.store, 1, Cipher.from_settings(settings))
    assert "[EMAIL]" in entry["request_body"] and "jane" not in entry["request_body"]
    assert "Hello from the fake engine." in entry["response_body"]


async def test_binary_bodies_are_kept_whole_and_exact(tmp_path: Path) -> None:
    """Audio is not text: a speech upload is kept byte for byte (base64), past the 1 MiB
    that text bodies are cut at, not mangled by UTF-8 decoding and redaction."""
    import base64
    import os

    settings = Settings(home=tmp_path, audit_store_bodies=True)
    blob = b"RIFF" + os.urandom(2 * 1024 * 1024)  # not UTF-8, larger than a kept text body
    with AuditLedger.open(settings) as ledger:
        fake = FakeEngine()
        app = build_app(settings, {fake.name: fake}, ledger=ledger)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            await c.post(
                "/v1/audio/transcriptions",
                files={"file": ("question.wav", blob, "audio/wav")},
                data={"model": "whisper-1"},
            )
        from llmeco.governance.crypto import Cipher

        entry = read_entry(ledger.store, 1, Cipher.from_settings(settings))
    stored = entry["request_body"]
    assert stored.startswith("base64:")
    assert blob in base64.b64decode(stored[len("base64:") :])
