"""Every method of ``llmeco.client`` against a real server (uvicorn on a free port), sync and
async, with auth on: tasks and write over a scripted engine, the support desk over a real
knowledge base (the packaged embedder), the voice desk over the bundled speech models, admin
keys/usage/aliases/served models/hand-offs/session erasure; the server's errors come back as
the :mod:`llmeco.errors` tree; and the retries wait what a stub server's ``Retry-After`` says.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import httpx
import pytest
from fake_engine import FakeEngine
from fastapi import FastAPI
from server_helpers import LiveServer
from starlette.responses import JSONResponse, Response

from llmeco import errors as E
from llmeco.apps.conversations import ConversationLog
from llmeco.apps.speech.service import SpeechService
from llmeco.apps.support.desk import SupportDesk
from llmeco.apps.tasks import MODERATION_CATEGORIES
from llmeco.client import ROUTES, AsyncClient, Client, RetryPolicy
from llmeco.client import errors as CE
from llmeco.client._core import Call
from llmeco.engine.swap import ModelSlot
from llmeco.governance.audit import AuditLedger, verify_proof
from llmeco.governance.crypto import Cipher
from llmeco.governance.scopes import SCOPES, Grant
from llmeco.rag.embed import Embedder
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.server.hotswap import ModelFollower
from llmeco.settings import Settings
from llmeco.store import Store

pytestmark = pytest.mark.slow

P = ParamSpec("P")
T = TypeVar("T")
SWAP = "swap-model"
#: Names of the client methods the tests in this module called (sync or async).
CALLED: set[str] = set()


class RecordingClient(Client):
    """A :class:`Client` that notes which methods were called."""

    def _bind(self, build: Callable[P, Call[T]]) -> Callable[P, T]:
        CALLED.add(build.__name__)
        return super()._bind(build)


class RecordingAsyncClient(AsyncClient):
    """An :class:`AsyncClient` that notes which methods were called."""

    def _bind(self, build: Callable[P, Call[T]]) -> Any:
        CALLED.add(build.__name__)
        return super()._bind(build)


@dataclass
class World:
    """The live server and what the tests need to talk to it."""

    url: str
    fake: FakeEngine
    root: str  # every scope
    chat_only: str  # chat scope only
    ledger_key: str  # the audit ledger's public key

    def client(self, key: str | None = None, **kw: Any) -> RecordingClient:
        return RecordingClient(self.url, key if key is not None else self.root, **kw)

    def aclient(self, key: str | None = None, **kw: Any) -> RecordingAsyncClient:
        return RecordingAsyncClient(self.url, key if key is not None else self.root, **kw)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    speech: SpeechService,
    acme_handbook: str,
) -> Iterator[World]:
    settings = Settings(home=tmp_path_factory.mktemp("sdk"), secret_key="test-secret")  # type: ignore[arg-type]
    store = Store.from_settings(settings)
    KnowledgeBase.create(store, "acme", embedder).add_text("handbook.md", acme_handbook)
    desk = SupportDesk(store, embedder, ConversationLog(store, Cipher([b"k" * 32])))
    fake = FakeEngine(max_model_len=8192)
    loads: list[int] = []

    def load(ref: str, name: str) -> FakeEngine:
        loads.append(1)
        return FakeEngine(name=SWAP, version=f"fake:{len(loads) + 1}")

    slot = ModelSlot(FakeEngine(name=SWAP, version="fake:1"), "/models/swap", drain_timeout=5)
    follower = ModelFollower({SWAP: slot}, load, None, poll_seconds=0)
    auth = Authenticator.open(settings)
    ledger = AuditLedger.open(settings)
    every = Grant(scopes=frozenset(SCOPES), models=frozenset())
    _, root = auth.keys.create("root", every)
    _, chat_only = auth.keys.create("chat", Grant(scopes=frozenset({"chat"}), models=frozenset()))
    app = build_app(
        settings,
        {fake.name: fake, SWAP: slot},
        embedder,
        aliases={"default": fake.name},
        auth=auth,
        support=desk,
        follower=follower,
        speech=speech,
        ledger=ledger,
    )
    with LiveServer(app) as server:
        yield World(server.url, fake, root, chat_only, ledger.signer.public_key)
    asyncio.run(auth.aclose())
    ledger.close()
    store.close()


# ---------------------------------------------------------------- sync: every method


def test_tasks_write_and_tokenizer(world: World) -> None:
    fake = world.fake
    with world.client() as c:
        assert c.health().status == "ok"
        assert set(c.ready().models) >= {fake.name, SWAP}
        fake.reply = "Bonjour le monde"
        r = c.translate("Hello world", "French", source_language="English")
        assert r.translation == "Bonjour le monde" and r.usage.total_tokens > 0
        fake.reply = "A short summary."
        assert c.summarize("long " * 40, max_words=20, style="bullets").summary == fake.reply
        fake.reply = "This is right."
        r2 = c.correct("This is rigth.", model=fake.name)
        assert (r2.corrected, r2.changed, r2.model) == ("This is right.", True, fake.name)
        fake.reply = '{"label": "billing"}'
        assert c.classify("charged twice", ["billing", "shipping"]).label == "billing"
        fake.reply = '{"label": "negative"}'
        assert c.sentiment("This is awful.").label == "negative"
        flags = dict.fromkeys(MODERATION_CATEGORIES, False) | {"violence": True}
        fake.reply = json.dumps(flags)
        m = c.moderate("something")
        assert m.flagged and m.categories == flags
        schema = {
            "type": "object",
            "properties": {"order": {"type": "string"}, "qty": {"type": "integer"}},
            "required": ["order", "qty"],
        }
        fake.reply = '{"order": "A-17", "qty": 3}'
        assert c.extract("Order A-17, three units", schema).data == {"order": "A-17", "qty": 3}
        fake.reply = "1. Intro\n2. Body"
        w = c.write("outline", "A talk on tides", tone="friendly", max_tokens=64, seed=1)
        assert w.text == fake.reply and w.finish_reason == "stop"
        tokens = c.tokenize(fake.name, "hi!")
        assert tokens.tokens == [ord(ch) for ch in "hi!"] and tokens.count == 3
        chat = c.tokenize(fake.name, messages=[{"role": "user", "content": "yo"}])
        assert chat.count > 2 and chat.max_model_len == fake.max_model_len
        assert c.detokenize(fake.name, tokens.tokens).prompt == "hi!"


def test_admin_keys_usage_aliases_and_models(world: World) -> None:
    with world.client() as c:
        created = c.create_key("ci", ["chat", "models"], rpm=50, expires_in="1d")
        assert created.key and created.scopes == ["chat", "models"] and created.rpm == 50
        assert created.id in {k.id for k in c.list_keys().data}
        assert c.get_key(created.id).name == "ci"
        updated = c.update_key(created.id, rpm=None, tpm=1000)
        assert (updated.rpm, updated.tpm) == (None, 1000)
        with world.client(created.key) as ci:
            world.fake.reply = '{"label": "positive"}'
            ci.sentiment("great")
            own = ci.usage()
            assert own.key_id == created.id and own.requests >= 1 and own.total_tokens > 0
        usage = c.admin_usage(key_id=created.id)
        assert [u.key_id for u in usage.data] == [created.id] and usage.data[0].requests >= 1
        assert created.id in {u.key_id for u in c.admin_usage().data}
        assert c.revoke_key(created.id).status == "revoked"
        assert created.id not in {k.id for k in c.list_keys().data}
        assert created.id in {k.id for k in c.list_keys(include_revoked=True).data}
        with world.client(created.key) as ci, pytest.raises(E.AuthError):
            ci.usage()

        assert {(a.alias, a.model) for a in c.list_aliases()} == {("default", world.fake.name)}
        assert c.set_alias("latest", SWAP).model == SWAP
        assert ("latest", SWAP) in {(a.alias, a.model) for a in c.list_aliases()}

        served = {m.model: m for m in c.list_served_models()}
        assert served[SWAP].version == "fake:1" and served[SWAP].swaps == 0
        swap = c.reload_model(SWAP, force=True)
        assert swap.swapped and (swap.previous_version, swap.version) == ("fake:1", "fake:2")
        assert {m.model: m for m in c.list_served_models()}[SWAP].swaps == 1


def test_support_feedback_handoffs_and_erasure(world: World) -> None:
    question = {"model": "support:acme", "messages": [{"role": "user", "content": "Who is "
                "your CEO?"}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {world.root}", "x-session-id": "sdk-1"}
    r = httpx.post(f"{world.url}/v1/chat/completions", json=question, headers=headers)
    answer = r.json()
    assert answer["choices"][0]["finish_reason"] == "handoff", answer
    with world.client() as c:
        handoffs = c.list_handoffs(kb="acme", limit=10).data
        assert [h.id for h in handoffs] == [answer["handoff"]["id"]]
        assert handoffs[0].session_id == "sdk-1" and handoffs[0].response_id == answer["id"]
        assert c.list_handoffs(kb="other").data == []
        fb = c.feedback(answer["id"], "down", correction="Ask the front desk.", comment="meh")
        assert fb.id and fb.object == "feedback"
        erased = c.forget_session("sdk-1")
        assert erased.subject == "session" and erased.total >= 2 and erased.counts
        assert c.list_handoffs(kb="acme").data == []
        with pytest.raises(E.NotFound) as info:
            c.forget_session("sdk-1")
        assert info.value.param == "session_id"


def test_voice_desk(world: World, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {world.root}"}
    speech = {"model": "tts-1", "voice": "alloy", "input": "What is the name of your CEO?"}
    r = httpx.post(f"{world.url}/v1/audio/speech", json={**speech, "response_format": "wav"},
                   headers=headers, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    question = tmp_path / "question.wav"
    question.write_bytes(r.content)
    with world.client(timeout=120) as c:
        answer = c.voice("acme", question, response_format="wav", session_id="sdk-voice")
        assert {"name", "ceo"} <= set(re.findall(r"[a-z]+", answer.transcript.lower()))
        assert answer.session_id == "sdk-voice" and answer.kb == "acme" and answer.answer
        assert answer.audio.format == "wav" and answer.audio.duration > 0.5
        with pytest.raises(E.NotFound):  # an unknown knowledge base
            c.voice("no-such-kb", r.content, filename="q.wav")


def test_errors_come_back_as_the_exception_tree(world: World) -> None:
    with world.client("llmeco-not-a-key") as bad, pytest.raises(CE.AuthenticationError) as auth:
        bad.list_keys()
    assert isinstance(auth.value, E.AuthError)
    assert auth.value.status_code == 401 and auth.value.request_id
    with world.client(world.chat_only) as lesser, pytest.raises(E.PermissionDenied) as denied:
        lesser.list_keys()
    assert "admin" in denied.value.message
    with world.client() as c:
        with pytest.raises(E.NotFound):
            c.get_key("no-such-key")
        with pytest.raises(E.NotFound) as missing:
            c.set_alias("x", "no-such-model")
        assert missing.value.param == "model"
        with pytest.raises(E.InvalidRequest) as bad_body:
            c.translate("Hello", "x")  # target_language: 2 characters at least
        assert bad_body.value.param == "target_language"
        with pytest.raises(E.InvalidRequest):
            c.write("poem", "x")  # type: ignore[arg-type]
        with pytest.raises(E.InvalidRequest):
            c.update_key("anything")  # no limit given


def test_knowledge_bases(world: World, tmp_path: Path) -> None:
    guide = tmp_path / "setup.md"
    guide.write_text("# Setup\n\n## Wi-Fi\n\nThe shop Wi-Fi password is printed on the till.\n")
    with world.client() as c:
        created = c.create_kb("sdk-kb")
        assert (created.name, created.documents) == ("sdk-kb", 0)
        added = c.upload_document("sdk-kb", guide, document="guides/setup.md")
        assert (added.status, added.document) == ("added", "guides/setup.md") and added.chunks
        again = c.upload_document("sdk-kb", guide.read_bytes(), filename="setup.md",
                                  document="guides/setup.md")  # fmt: skip
        assert again.status == "unchanged"
        assert c.add_text("sdk-kb", "notes", "## Parking\n\nPark behind the bakery.").chunks
        assert {kb.name: kb.documents for kb in c.list_kbs().data}["sdk-kb"] == 2
        details = c.get_kb("sdk-kb")
        assert [d.name for d in details.document_list] == ["guides/setup.md", "notes"]
        hits = c.search_kb("sdk-kb", "What is the wifi password?", k=1).data
        assert hits[0].anchor == "guides/setup.md#Wi-Fi" and "till" in hits[0].text
        removed = c.remove_document("sdk-kb", "guides/setup.md")  # a '/' in a path parameter
        assert removed.deleted and removed.chunks == added.chunks
        with pytest.raises(E.InvalidRequest) as bad:
            c.upload_document("sdk-kb", b"%PDF-1.4 not really", filename="scan.pdf")
        assert bad.value.param == "file" and "scan.pdf" in bad.value.message
        with world.client(world.chat_only) as reader:
            assert reader.search_kb("sdk-kb", "parking", k=1).data[0].doc == "notes"
            with pytest.raises(E.PermissionDenied):
                reader.delete_kb("sdk-kb")
        deleted = c.delete_kb("sdk-kb")
        assert (deleted.name, deleted.documents) == ("sdk-kb", 1)
        with pytest.raises(E.NotFound):
            c.get_kb("sdk-kb")


def test_audit_ledger(world: World) -> None:
    with world.client() as c:
        c.create_kb("audited")
        c.delete_kb("audited")
        page = c.audit_entries(kind="admin", route="kb.*", order="asc")
        assert [e.route for e in page.data][-2:] == ["kb.create", "kb.delete"]
        since = datetime.now(UTC) - timedelta(minutes=5)
        recent = c.audit_entries(route="/v1/kb", since=since, limit=1)
        assert [e.payload["method"] for e in recent.data] == ["POST"]  # create_kb, newest
        older = c.audit_entries(route="/v1/kb", after=recent.last_seq).data
        assert all(e.seq < recent.data[0].seq for e in older)
        report = c.audit_verify()
        assert report.ok and report.entries >= 2 and report.public_key == world.ledger_key
        signed = c.audit_sign_checkpoint()
        assert signed.size >= report.entries
        assert c.audit_checkpoints(limit=1).data[0].signature == signed.signature
        proof = c.audit_proof(page.data[-1].seq)
        assert proof.tree_size == signed.size
        ok, why = verify_proof(proof.model_dump(), world.ledger_key)
        assert ok, why
        with pytest.raises(E.NotFound):
            c.audit_proof(signed.size + 1000)


# ---------------------------------------------------------------- async


async def test_the_async_client(world: World) -> None:
    fake = world.fake
    async with world.aclient() as c:
        assert (await c.health()).status == "ok"
        fake.reply = "Hallo"
        assert (await c.translate("Hello", "German")).translation == "Hallo"
        fake.reply = "Hi there, friend."
        assert (await c.write("rewrite", "hi", audience="kids")).text == fake.reply
        key = await c.create_key("async", ["chat"], daily_tokens=100)
        assert (await c.get_key(key.id)).daily_tokens == 100
        assert (await c.update_key(key.id, daily_tokens=None)).daily_tokens is None
        async with world.aclient(key.key) as mine:
            assert (await mine.usage()).key_id == key.id
            with pytest.raises(E.PermissionDenied):
                await mine.list_served_models()
        assert (await c.revoke_key(key.id)).status == "revoked"
        assert SWAP in {m.model for m in await c.list_served_models()}
        with pytest.raises(E.NotFound):
            await c.forget_session("never-was")
        with pytest.raises(E.InvalidRequest):
            await c.summarize("x", max_words=1)
    async with world.aclient() as c:
        assert "acme" in {kb.name for kb in (await c.list_kbs()).data}
        hits = (await c.search_kb("acme", "refunds", k=2)).data
        assert hits and hits[0].rank == 1
        assert (await c.audit_verify()).ok
    async with world.aclient(world.chat_only) as lesser:
        with pytest.raises(E.PermissionDenied):
            await lesser.audit_entries()
    async with world.aclient("llmeco-nope") as bad:
        with pytest.raises(E.AuthError):
            await bad.list_aliases()


# ---------------------------------------------------------------- retries (a stub server)


class Stub:
    """Answers ``GET /health`` with the scripted responses in turn, then 200."""

    def __init__(self, script: list[tuple[int, dict[str, str | Callable[[], str]]]]) -> None:
        self.script = script
        self.hits: list[float] = []
        self.app = FastAPI()
        self.app.add_api_route("/health", self.health)

    async def health(self) -> Response:
        self.hits.append(time.monotonic())
        if len(self.hits) <= len(self.script):
            status, scripted = self.script[len(self.hits) - 1]
            headers = {k: v if isinstance(v, str) else v() for k, v in scripted.items()}
            body = {"error": {"message": "busy", "type": "rate_limit_error", "param": None,
                              "code": None}}  # fmt: skip
            return JSONResponse(body, status_code=status, headers=headers)
        return JSONResponse({"status": "ok"})


def test_retries_honour_retry_after_in_seconds_and_as_a_date() -> None:
    def in_two_seconds() -> str:
        return format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)

    stub = Stub([(429, {"Retry-After": "1"}), (503, {"Retry-After": in_two_seconds})])
    with LiveServer(stub.app) as server, RecordingClient(server.url, max_retries=2) as c:
        start = time.monotonic()
        assert c.health().status == "ok"
        elapsed = time.monotonic() - start
    assert len(stub.hits) == 3
    assert stub.hits[1] - stub.hits[0] >= 0.95  # "1"
    assert stub.hits[2] - stub.hits[1] >= 0.5  # the date, at 1 s resolution: 1-2 s away
    assert elapsed < 5


def test_retries_stop_at_max_retries() -> None:
    stub = Stub([(429, {"Retry-After": "0"})] * 5)
    server = LiveServer(stub.app)
    with (
        server,
        RecordingClient(server.url, max_retries=2) as c,
        pytest.raises(E.LimitExceeded) as info,
    ):
        c.health()
    assert len(stub.hits) == 3 and info.value.retry_after == 0.0


async def test_async_retries_wait_too() -> None:
    stub = Stub([(503, {"Retry-After": "1"})])
    with LiveServer(stub.app) as server:
        async with RecordingAsyncClient(server.url) as c:
            assert (await c.health()).status == "ok"
    assert len(stub.hits) == 2 and stub.hits[1] - stub.hits[0] >= 0.95


def test_an_unreachable_server_is_a_connection_error_after_retries() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    fast = RetryPolicy(max_retries=2, backoff=0.01)
    client = RecordingClient(f"http://127.0.0.1:{port}", retry=fast)
    with client, pytest.raises(E.ServiceUnavailable, match="after 3 attempt"):
        client.create_key("x", ["chat"])  # never sent, so repeating it is safe


def test_a_dropped_post_is_not_sent_again() -> None:
    """A server that reads the request and closes the connection without answering: the
    key may have been created, so the client does not send it again."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                seen.append(conn.recv(65536))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    fast = RetryPolicy(max_retries=3, backoff=0.01)
    try:
        with RecordingClient(url, retry=fast) as c:
            with pytest.raises(CE.APIConnectionError, match="after 1 attempt"):
                c.create_key("x", ["chat"])
            assert len(seen) == 1 and seen[0].startswith(b"POST /admin/keys")
            with pytest.raises(CE.APIConnectionError, match="after 4 attempt"):
                c.list_keys()
            assert len(seen) == 5
    finally:
        stop.set()
        thread.join(5)
        listener.close()


# ---------------------------------------------------------------- coverage


def test_every_client_method_was_called(request: pytest.FixtureRequest) -> None:
    """Runs last: every method of the route table was called by a test above."""
    here = [i for i in request.session.items if getattr(i, "module", None) is request.module]
    total = sum(1 for n in dir(request.module) if n.startswith("test_"))
    if len(here) < total:
        pytest.skip("only part of this module ran")
    assert set(ROUTES) - CALLED == set()
