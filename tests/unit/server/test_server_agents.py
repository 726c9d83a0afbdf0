"""``model: "agent:<name>"`` over the whole app with a scripted fake engine: answers and steps
(JSON and SSE), key checks on every tool execution, one ledger entry per execution."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from fake_engine import FakeEngine
from fastapi import FastAPI
from server_helpers import LiveServer, assert_openai_error, sse_events

from llmeco.apps.agents import AgentHub, AgentProfile
from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support.desk import SupportDesk
from llmeco.engine.request import SamplingParams
from llmeco.errors import ConfigError
from llmeco.governance.audit import AuditLedger, Signer, canonical_json, verify_ledger
from llmeco.governance.audit import tables as t
from llmeco.governance.crypto import Cipher
from llmeco.governance.scopes import Grant
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.server.agents import AgentChat, check_agents, read_profiles
from llmeco.server.auth import Authenticator
from llmeco.server.state import ServerState
from llmeco.settings import Settings
from llmeco.store import Store

HANDBOOK = """# Acme handbook

## Refunds

Refunds are paid to the original card within five business days after we receive the
returned item.

## Opening hours

Our shop is open from nine in the morning to six in the evening, Monday to Saturday.
"""
QUESTION = [{"role": "user", "content": "How long do refunds take?"}]


def call(name: str, **arguments: Any) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@dataclass
class AgentFake(FakeEngine):
    """The fake engine, replying with the next of ``replies`` to each generation."""

    replies: list[str] = field(default_factory=list)

    def _script(self, params: SamplingParams) -> tuple[str, str, str | None]:
        if self.replies:
            self.reply = self.replies.pop(0)
        return super()._script(params)


class HashEmbedder:
    """Bag-of-words vectors (each lower-cased word adds 1 to a hashed dimension)."""

    name = "hash-embedder"
    aliases: tuple[str, ...] = ()
    dimensions = 64

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % 64] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def fake() -> AgentFake:
    return AgentFake(max_model_len=100_000)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, secret_key="test-secret")  # type: ignore[arg-type]


@pytest.fixture
def desk(settings: Settings) -> SupportDesk:
    store = Store.from_settings(settings)
    embedder = HashEmbedder()
    KnowledgeBase.create(store, "acme", embedder).add_text("handbook.md", HANDBOOK)
    log = ConversationLog(store, Cipher([b"k" * 32]))
    return SupportDesk(store, embedder, log)  # type: ignore[arg-type]


@pytest.fixture
def ledger(settings: Settings) -> Iterator[AuditLedger]:
    with AuditLedger.open(settings) as led:
        yield led


@pytest.fixture
async def auth(settings: Settings) -> AsyncIterator[Authenticator]:
    a = Authenticator.open(settings)
    yield a
    await a.aclose()


PROFILE = {
    "name": "helper",
    "model": "default",
    "system": "Answer from the handbook.",
    "tools": [{"kb_search": {"kb": "acme", "k": 1}}, "calculator", "summarize"],
    "max_steps": 3,
}


@pytest.fixture
async def hub() -> AgentHub:
    return await AgentHub.open([AgentProfile.model_validate(PROFILE)])


@pytest.fixture
def app(
    settings: Settings,
    fake: AgentFake,
    desk: SupportDesk,
    ledger: AuditLedger,
    auth: Authenticator,
    hub: AgentHub,
) -> FastAPI:
    return build_app(
        settings,
        {fake.name: fake},
        aliases={"default": fake.name},
        support=desk,
        ledger=ledger,
        auth=auth,
        chat_backends=[AgentChat(hub)],
    )


def key(auth: Authenticator, **grant: Any) -> tuple[str, str]:
    made, token = auth.keys.create("t", Grant(scopes=frozenset({"chat"}), **grant))
    return made.id, token


@pytest.fixture
async def client(app: FastAPI, auth: Authenticator) -> AsyncIterator[httpx.AsyncClient]:
    _, token = key(auth)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


def as_key(client: httpx.AsyncClient, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tool_entries(settings: Settings) -> list[dict[str, Any]]:
    store = Store.from_settings(settings)
    with store.session() as s:
        rows = s.scalars(
            sa.select(t.entries.c.payload)
            .where(t.entries.c.kind == "tool")
            .order_by(t.entries.c.seq)
        ).all()
    store.close()
    return [json.loads(p) for p in rows]


async def test_an_answer_with_its_steps_and_their_ledger_entries(
    client: httpx.AsyncClient, fake: AgentFake, settings: Settings, ledger: AuditLedger
) -> None:
    fake.replies = [call("kb_search", query="refunds"), "Within five business days."]
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "agent:helper", "messages": QUESTION},
        headers={"x-request-id": "agent-req-1"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "agent:helper" and body["object"] == "chat.completion"
    (choice,) = body["choices"]
    assert choice["message"]["content"] == "Within five business days."
    assert choice["finish_reason"] == "stop"
    (step,) = body["agent_steps"]
    assert step["tool"] == "kb_search" and step["ok"] and step["step"] == 1
    assert json.loads(step["arguments"]) == {"query": "refunds"}
    assert step["result"].startswith("[1] Refunds are paid to the original card within five")
    assert "(source: handbook.md, Refunds)" in step["result"]
    assert body["usage"]["completion_tokens"] == len(call("kb_search", query="refunds")) + len(
        "Within five business days."
    )
    # The second turn read the passage; the system prompt led both.
    assert (
        "five business days" in fake.prompts[1] and "Answer from the handbook." in fake.prompts[0]
    )
    assert fake.prompts[0].startswith("tools: kb_search, calculator, summarize\n")
    ledger.flush()
    (entry,) = tool_entries(settings)
    assert entry["tool"] == "kb_search" and entry["status"] == 200
    assert entry["transport"] == "agent:helper" and entry["request_id"] == "agent-req-1"
    assert entry["result_sha256"] == hashlib.sha256(step["result"].encode()).hexdigest()
    assert (
        entry["arguments_sha256"]
        == hashlib.sha256(canonical_json({"query": "refunds"})).hexdigest()
    )
    assert entry["actor"] is not None
    store = Store.from_settings(settings)
    assert verify_ledger(store, Signer.from_settings(settings).public_key).ok
    store.close()


async def test_streamed_steps_ride_on_chunks_and_the_answer_is_plain_content(
    client: httpx.AsyncClient, fake: AgentFake
) -> None:
    fake.replies = [call("calculator", expression="6*7"), "It is 42."]
    r = await client.post(
        "/v1/chat/completions",
        json={
            "model": "agent:helper",
            "messages": [{"role": "user", "content": "6 times 7?"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    steps = [c["agent_step"] for c in chunks if "agent_step" in c]
    assert [(s["tool"], s["result"], s["ok"]) for s in steps] == [("calculator", "42", True)]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "It is 42."
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(
        c["object"] == "chat.completion.chunk" and c["model"] == "agent:helper" for c in chunks
    )


async def test_the_step_limit_is_a_finish_reason(
    client: httpx.AsyncClient, fake: AgentFake
) -> None:
    fake.replies = [call("calculator", expression="1+1")] * 3
    r = await client.post(
        "/v1/chat/completions", json={"model": "agent:helper", "messages": QUESTION}
    )
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "max_steps"
    assert "step limit (3 model turns)" in body["choices"][0]["message"]["content"]
    assert len(body["agent_steps"]) == 2


async def test_each_execution_is_checked_against_the_key(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Authenticator,
    fake: AgentFake,
    settings: Settings,
    ledger: AuditLedger,
) -> None:
    narrow_id, narrow = key(auth, models=frozenset({"agent:helper", "fake-model"}))
    fake.replies = [call("kb_search", query="refunds"), "I cannot read it."]
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "agent:helper", "messages": QUESTION},
        headers=as_key(client, narrow),
    )
    assert r.status_code == 200, r.text
    (step,) = r.json()["agent_steps"]
    assert not step["ok"] and "five" not in step["result"]
    assert json.loads(step["result"])["error"].startswith(f"API key {narrow_id} may not use model")
    ledger.flush()
    (entry,) = tool_entries(settings)
    assert entry["status"] == 403 and entry["actor"] == narrow_id

    # The agent itself must be on a restricting allow-list, and so must its model.
    _, other = key(auth, models=frozenset({"fake-model"}))
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "agent:helper", "messages": QUESTION},
        headers=as_key(client, other),
    )
    assert "agent:helper" in assert_openai_error(r, 403)["message"]
    _, agent_only = key(auth, models=frozenset({"agent:helper"}))
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "agent:helper", "messages": QUESTION},
        headers=as_key(client, agent_only),
    )
    assert "fake-model" in assert_openai_error(r, 403)["message"]
    r = await client.get("/v1/models", headers=as_key(client, other))
    assert "agent:helper" not in {m["id"] for m in r.json()["data"]}


async def test_task_tools_run_on_the_agents_model_under_the_keys_limits(
    client: httpx.AsyncClient,
    auth: Authenticator,
    fake: AgentFake,
    settings: Settings,
    ledger: AuditLedger,
) -> None:
    fake.replies = [call("summarize", text="A long text."), "Short.", "Done."]
    r = await client.post(
        "/v1/chat/completions", json={"model": "agent:helper", "messages": QUESTION}
    )
    body = r.json()
    (step,) = body["agent_steps"]
    assert step["ok"] and step["result"] == "Short."
    assert "Summarize the user's text" in fake.prompts[1]  # the task's own prompt
    assert body["usage"]["completion_tokens"] == len(call("summarize", text="A long text.")) + len(
        "Short."
    ) + len("Done.")
    # A key whose daily budget the first turn spends: the task is refused (its step says
    # why, its ledger entry has the 429), and so is the next turn (the request's 429).
    first_turn = len(fake.prompts[0]) + len(call("summarize", text="A long text."))
    poor_id, poor = key(auth, daily_tokens=first_turn + 10)
    fake.replies = [call("summarize", text="A long text."), "Short.", "Done."]
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "agent:helper", "messages": QUESTION},
        headers=as_key(client, poor),
    )
    assert "daily" in assert_openai_error(r, 429)["message"]
    ledger.flush()
    refused = [e for e in tool_entries(settings) if e["actor"] == poor_id]
    assert [(e["tool"], e["status"]) for e in refused] == [("summarize", 429)]


async def test_models_lists_the_agent(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/models")
    cards = {m["id"]: m for m in r.json()["data"]}
    assert cards["agent:helper"]["task"] == "agent"
    assert cards["agent:helper"]["max_model_len"] == 100_000


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"stop": ["x"]}, "stop"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "c"}]}, "messages.0"),
    ],
)
async def test_what_an_agent_cannot_honour_is_a_400(
    client: httpx.AsyncClient, extra: dict[str, Any], param: str
) -> None:
    r = await client.post(
        "/v1/chat/completions", json={"model": "agent:helper", "messages": QUESTION, **extra}
    )
    assert assert_openai_error(r, 400)["param"] == param


async def test_an_unknown_agent_is_a_404(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/chat/completions", json={"model": "agent:nope", "messages": QUESTION}
    )
    error = assert_openai_error(r, 404)
    assert error["param"] == "model" and "Agents: agent:helper." in error["message"]


async def test_a_first_turn_that_cannot_run_is_an_http_error_even_streamed(
    client: httpx.AsyncClient, fake: AgentFake
) -> None:
    fake.max_running = 0
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "agent:helper", "messages": QUESTION, "stream": True},
    )
    assert_openai_error(r, 429)


async def test_an_unavailable_ledger_stops_the_agent(
    client: httpx.AsyncClient, fake: AgentFake, ledger: AuditLedger
) -> None:
    ledger.close()
    fake.replies = [call("calculator", expression="1+1"), "never"]
    r = await client.post(
        "/v1/chat/completions", json={"model": "agent:helper", "messages": QUESTION}
    )
    assert r.status_code == 503


# ---- start-up checks ----------------------------------------------------------------------------


def test_profiles_are_checked_against_the_server(
    tmp_path: Path, settings: Settings, app: FastAPI
) -> None:
    state: ServerState = app.state.llmeco

    async def open_hub(**fields: Any) -> AgentHub:
        return await AgentHub.open([AgentProfile.model_validate({**PROFILE, **fields})])

    check_agents(asyncio.run(open_hub()), state)
    with pytest.raises(
        ConfigError, match=r"model: 'gpt-4' is not served \(served: fake-model, default\)"
    ):
        check_agents(asyncio.run(open_hub(model="gpt-4")), state)
    with pytest.raises(ConfigError, match="no knowledge base named 'hr'"):
        check_agents(asyncio.run(open_hub(tools=[{"kb_search": {"kb": "hr"}}])), state)
    state.support = None
    with pytest.raises(ConfigError, match="drop --no-embeddings"):
        check_agents(asyncio.run(open_hub()), state)


def test_profiles_come_from_the_home_and_the_options(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    assert read_profiles(settings, []) == []
    settings.agents_dir.mkdir(parents=True)
    (settings.agents_dir / "a.yaml").write_text("name: a\n")
    extra = tmp_path / "b.yaml"
    extra.write_text("name: b\n")
    assert [p.name for p in read_profiles(settings, [extra])] == ["a", "b"]


# ---- disconnects, against a real uvicorn --------------------------------------------------------


async def wait_until_idle(fake: FakeEngine) -> None:
    for _ in range(200):
        if not fake.running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the generation is still running")


@pytest.mark.parametrize("stream", [True, False])
async def test_a_client_that_leaves_aborts_the_agents_generation(
    app: FastAPI, auth: Authenticator, fake: AgentFake, stream: bool
) -> None:
    fake.replies = [call("calculator", expression="6*7"), "word " * 400]
    fake.delay = 0.01
    _, token = key(auth)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"model": "agent:helper", "messages": QUESTION, "stream": stream}
    with LiveServer(app) as live:
        async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=2) as c:
            if stream:
                async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                    assert r.status_code == 200
                    seen = 0
                    async for line in r.aiter_lines():
                        seen += line.startswith("data: ")
                        if seen >= 5:  # the role, the step, some answer
                            break
            else:
                with pytest.raises(httpx.ReadTimeout):
                    await c.post("/v1/chat/completions", json=body)
        await wait_until_idle(fake)
    assert len(fake.requests) == 2 and fake.aborted == fake.requests[1:]
