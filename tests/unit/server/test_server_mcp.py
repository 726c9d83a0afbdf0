"""The MCP tools over the fake engine: schemas, results, tool errors, governance, the ledger.

In-process (the SDK's ``Client`` over a ``Server``) for the tools themselves, and over
``/mcp`` through the whole app (auth, audit) with the SDK's streamable-HTTP client on an
ASGI transport.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import numpy as np
import pytest
import sqlalchemy as sa
from fake_engine import FakeEngine
from fastapi import FastAPI
from mcp.client import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client

from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support.desk import SupportDesk
from llmeco.governance.audit import AuditLedger, Signer, canonical_json, verify_ledger
from llmeco.governance.audit import tables as t
from llmeco.governance.crypto import Cipher
from llmeco.governance.scopes import Grant
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.server.mcp.caller import stdio_caller
from llmeco.server.mcp.server import build_server
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
TASKS = {"classify", "sentiment", "summarize", "translate", "correct", "moderate", "extract"}
TOOLS = {"list_knowledge_bases", "search_knowledge_base", "chat", *TASKS}


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


@pytest.fixture(autouse=True)
def roomy(fake: FakeEngine) -> None:
    """Task prompts carry instructions; give the character-level fake a realistic context."""
    fake.max_model_len = 4096


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
def state(
    settings: Settings, fake: FakeEngine, desk: SupportDesk, ledger: AuditLedger
) -> ServerState:
    app = build_app(
        settings, {fake.name: fake}, aliases={"default": fake.name}, support=desk, ledger=ledger
    )
    state: ServerState = app.state.llmeco
    return state


def connect(state: ServerState) -> Client:
    """A client of the tools as ``llmeco mcp serve`` runs them (stdio caller, in-process).

    Entered inside each test: anyio's task groups must be left by the task that entered
    them, which an async fixture's teardown is not.
    """
    return Client(build_server(state, lambda ctx: stdio_caller()))


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            yield from walk(list(value.values()) if key == "properties" else value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def error_text(result: types.CallToolResult) -> str:
    assert result.is_error, result
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def data(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_tools_have_precise_schemas(state: ServerState) -> None:
    async with connect(state) as local:
        tools = {tool.name: tool for tool in (await local.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            schema = tool.input_schema
            assert schema["type"] == "object" and schema["additionalProperties"] is False
            assert tool.description and len(tool.description) > 40
            assert tool.annotations is not None and tool.annotations.read_only_hint
            assert not {"anyOf", "oneOf", "allOf"} & set(schema)  # LLM APIs refuse these on top
            for node in walk(schema):
                assert not {"title", "$ref", "$defs"} & set(node), (tool.name, node)
                assert node.get("anyOf") is None, (tool.name, node)
            if tool.name in TASKS | {"chat"}:
                assert schema["properties"]["model"]["enum"] == ["fake-model", "default"]
            if tool.name in TASKS:
                assert "text" in schema["required"]
        search = tools["search_knowledge_base"].input_schema
        assert search["required"] == ["kb", "query"] and search["properties"]["kb"]["enum"] == [
            "acme"
        ]
        assert search["properties"]["k"] == {
            "default": 5,
            "description": "How many passages to return, best first.",
            "maximum": 20,
            "minimum": 1,
            "type": "integer",
        }
        assert "Knowledge bases: acme (1 document)." in (
            tools["search_knowledge_base"].description or ""
        )
        assert set(tools["extract"].input_schema["required"]) == {"text", "schema"}
        assert tools["summarize"].input_schema["properties"]["style"]["enum"] == [
            "paragraph",
            "bullets",
        ]
        labels = tools["classify"].input_schema["properties"]["labels"]
        assert labels["uniqueItems"] and labels["minItems"] == 2 and labels["type"] == "array"
        chat = tools["chat"].input_schema["properties"]
        assert chat["messages"]["items"]["properties"]["role"]["enum"] == [
            "system",
            "user",
            "assistant",
        ]
        assert chat["messages"]["items"]["required"] == ["role", "content"]


async def test_search_returns_the_passage_and_where_it_is(state: ServerState) -> None:
    async with connect(state) as local:
        result = await local.call_tool(
            "search_knowledge_base", {"kb": "acme", "query": "How long do refunds take?", "k": 2}
        )
        found = data(result)
        assert found["kb"] == "acme" and len(found["passages"]) == 2
        best = found["passages"][0]
        assert best["rank"] == 1 and best["doc"] == "handbook.md"
        assert "five business days" in best["text"] and best["section"].endswith("Refunds")
        assert HANDBOOK[best["start"] : best["end"]].split() == best["text"].split()
        assert isinstance(best["score"], float) and isinstance(best["similarity"], float)
        block = result.content[0]
        assert isinstance(block, types.TextContent) and json.loads(block.text) == found
        listed = data(await local.call_tool("list_knowledge_bases", {}))
        assert listed == {"knowledge_bases": [{"name": "acme", "documents": 1, "chunks": 2}]}


async def test_chat_with_a_prompt_or_messages(state: ServerState, fake: FakeEngine) -> None:
    async with connect(state) as local:
        result = await local.call_tool(
            "chat", {"prompt": "Hi", "system": "Be brief.", "max_tokens": 5}
        )
        out = data(result)
        assert out["text"] == fake.reply[:5] and out["finish_reason"] == "length"
        assert out["model"] == "fake-model" and out["usage"]["completion_tokens"] == 5
        block = result.content[0]
        assert isinstance(block, types.TextContent) and block.text == fake.reply[:5]
        assert fake.prompts[-1] == "system: Be brief.\nuser: Hi\nassistant: "
        messages = [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ]
        out = data(await local.call_tool("chat", {"messages": messages, "model": "default"}))
        assert out["text"] == fake.reply and out["finish_reason"] == "stop"
        assert fake.prompts[-1].endswith("user: Bye\nassistant: ")
        assert fake.params[-1].max_tokens == 512  # the apps' default cap


async def test_task_tools_run_the_task_endpoints(state: ServerState, fake: FakeEngine) -> None:
    async with connect(state) as local:
        fake.reply = '{"label": "billing"}'
        labels = ["billing", "shipping"]
        out = data(
            await local.call_tool("classify", {"text": "I was charged twice", "labels": labels})
        )
        assert out["label"] == "billing" and out["object"] == "task.classify"
        structured = fake.params[-1].structured
        assert structured is not None and structured.schema is not None
        assert structured.schema["properties"]["label"]["enum"] == labels
        fake.reply = '{"label": "positive"}'
        assert data(await local.call_tool("sentiment", {"text": "Love it"}))["label"] == "positive"
        fake.reply = "Bonjour"
        out = data(
            await local.call_tool("translate", {"text": "Hello", "target_language": "French"})
        )
        assert out["translation"] == "Bonjour" and out["usage"]["completion_tokens"] == 7
        fake.reply = '{"order": "A1"}'
        schema = {
            "type": "object",
            "properties": {"order": {"type": "string"}},
            "required": ["order"],
        }
        out = data(await local.call_tool("extract", {"text": "order A1", "schema": schema}))
        assert out["data"] == {"order": "A1"}


async def test_failures_are_tool_errors_and_the_session_goes_on(
    state: ServerState, fake: FakeEngine
) -> None:
    async with connect(state) as local:
        text = error_text(
            await local.call_tool("search_knowledge_base", {"kb": "nope", "query": "q"})
        )
        assert text == "error 404: there is no knowledge base named 'nope'; available: acme"
        text = error_text(await local.call_tool("translate", {"text": "Hello"}))
        assert text.startswith("error 400") and "target_language: Field required" in text
        text = error_text(await local.call_tool("chat", {"prompt": "Hi", "messages": []}))
        assert "messages: List should have at least 1 item" in text
        text = error_text(await local.call_tool("chat", {"prompt": "Hi", "temperature": 9}))
        assert "temperature: Input should be less than or equal to 2" in text
        text = error_text(await local.call_tool("chat", {}))
        assert "give exactly one of `messages` and `prompt`" in text
        text = error_text(await local.call_tool("summarize", {"text": "x", "colour": "red"}))
        assert "colour: Extra inputs are not permitted" in text
        text = error_text(await local.call_tool("chat", {"prompt": "Hi", "model": "gpt-9"}))
        assert text.startswith("error 404 (model_not_found): The model `gpt-9` does not exist")
        text = error_text(await local.call_tool("fly", {}))
        assert text.startswith("error 404: there is no tool named 'fly'")
        fake.max_running = 0
        result = await local.call_tool("chat", {"prompt": "Hi"})
        assert error_text(result) == (
            "error 429 (overloaded): the waiting queue is full Retry after 2 s."
        )
        assert result.structured_content is not None
        assert result.structured_content["error"]["status"] == 429
        fake.max_running = None
        fake.dead = True
        assert error_text(await local.call_tool("chat", {"prompt": "Hi"})).startswith("error 503")
        fake.dead = False
        assert data(await local.call_tool("chat", {"prompt": "Hi"}))["text"] == fake.reply


async def test_a_bug_is_a_500_without_internals(
    state: ServerState, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connect(state) as local:
        from llmeco.server import apprun

        async def broken(*_: Any) -> Any:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(apprun, "start", broken)
        result = await local.call_tool("chat", {"prompt": "Hi"})
        assert error_text(result) == "error 500: internal server error; see the server log"
        assert (await local.list_tools()).tools  # the session carries on


def tool_entries(settings: Settings) -> list[dict[str, Any]]:
    store = Store.from_settings(settings)
    with store.session() as s:
        rows = s.execute(
            sa.select(t.entries.c.payload, t.entries.c.key_id, t.entries.c.route)
            .where(t.entries.c.kind == "tool")
            .order_by(t.entries.c.seq)
        ).all()
    store.close()
    out = []
    for payload, key_id, route in rows:
        entry = json.loads(payload)
        assert key_id == entry["actor"] and route == entry["tool"]
        out.append(entry)
    return out


def verified(settings: Settings) -> int:
    store = Store.from_settings(settings)
    report = verify_ledger(store, Signer.from_settings(settings).public_key)
    store.close()
    assert report.ok, report.to_dict()
    return report.entries


async def test_each_call_is_a_ledger_entry_and_the_ledger_verifies(
    state: ServerState, settings: Settings, ledger: AuditLedger
) -> None:
    async with connect(state) as local:
        args = {"kb": "acme", "query": "opening hours", "k": 1}
        ok = await local.call_tool("search_knowledge_base", args)
        bad = await local.call_tool("search_knowledge_base", {"kb": "nope", "query": "q"})
        ledger.flush()
        first, second = tool_entries(settings)
        assert first["actor"] == "stdio" and first["transport"] == "stdio"
        assert first["tool"] == "search_knowledge_base" and first["status"] == 200
        assert first["arguments_sha256"] == hashlib.sha256(canonical_json(args)).hexdigest()
        wire = ok.model_dump(mode="json", by_alias=True, exclude_none=True)
        hashed = {k: wire[k] for k in ("content", "structuredContent", "isError")}
        assert first["result_sha256"] == hashlib.sha256(canonical_json(hashed)).hexdigest()
        assert first["duration_ms"] > 0 and first["request_id"]
        assert second["status"] == 404 and bad.is_error
        assert first["request_id"] != second["request_id"]  # a fresh id per stdio call
        assert verified(settings) == 2


async def test_no_result_without_its_ledger_entry(state: ServerState, ledger: AuditLedger) -> None:
    async with connect(state) as local:
        ledger.close()
        text = error_text(await local.call_tool("chat", {"prompt": "Hi"}))
        assert text.startswith("error 503") and "result was withheld" in text


# ---- over /mcp, through the whole app --------------------------------------------------------


@pytest.fixture
async def auth(settings: Settings) -> AsyncIterator[Authenticator]:
    a = Authenticator.open(settings)
    yield a
    await a.aclose()


@pytest.fixture
def gapp(
    settings: Settings,
    fake: FakeEngine,
    desk: SupportDesk,
    ledger: AuditLedger,
    auth: Authenticator,
) -> FastAPI:
    return build_app(
        settings,
        {fake.name: fake},
        aliases={"default": fake.name},
        support=desk,
        ledger=ledger,
        auth=auth,
    )


def key(auth: Authenticator, scopes: Sequence[str], **grant: Any) -> tuple[str, str]:
    made, token = auth.keys.create("t", Grant(scopes=frozenset(scopes), **grant))
    return made.id, token


def http(app: FastAPI, token: str | None = None, **headers: str) -> httpx2.AsyncClient:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    transport = httpx2.ASGITransport(app=app)
    return httpx2.AsyncClient(transport=transport, base_url="http://test", headers=headers)


async def session_calls(
    app: FastAPI, token: str, calls: list[tuple[str, dict[str, Any]]], **headers: str
) -> tuple[list[types.Tool], list[types.CallToolResult]]:
    """Initialize (handshake era), list the tools and make ``calls`` over ``/mcp``."""
    async with (
        http(app, token, **headers) as client,
        streamable_http_client("http://test/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = (await session.list_tools()).tools
        results = [await session.call_tool(name, args) for name, args in calls]
    return tools, results


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


async def test_mcp_needs_a_key_with_the_chat_scope(gapp: FastAPI, auth: Authenticator) -> None:
    _, models_only = key(auth, ["models", "completions", "embeddings", "admin"])
    _, chat = key(auth, ["chat"])
    async with gapp.state.mcp.running():
        async with http(gapp, **ACCEPT) as c:
            r = await c.post("/mcp", json=INIT)
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        async with http(gapp, models_only, **ACCEPT) as c:
            r = await c.post("/mcp", json=INIT)
            assert r.status_code == 403 and "`chat` scope" in r.json()["error"]["message"]
        async with http(gapp, chat, **ACCEPT) as c:
            r = await c.post("/mcp", json=INIT)
            assert r.status_code == 200 and r.json()["result"]["serverInfo"]["name"] == "llmeco"
    async with http(gapp, chat, **ACCEPT) as c:  # the session manager is not running
        r = await c.post("/mcp", json=INIT)
        assert r.status_code == 503 and "not running" in r.json()["error"]["message"]


async def test_tool_calls_over_http_respect_the_key(
    gapp: FastAPI, auth: Authenticator, fake: FakeEngine, settings: Settings, ledger: AuditLedger
) -> None:
    key_id, token = key(auth, ["chat"])
    narrow_id, narrow = key(auth, ["chat"], models=frozenset({"support:acme"}))
    async with gapp.state.mcp.running():
        tools, (hit, chat) = await session_calls(
            gapp,
            token,
            [
                ("search_knowledge_base", {"kb": "acme", "query": "refunds", "k": 1}),
                ("chat", {"prompt": "Hi", "max_tokens": 3}),
            ],
            **{"x-request-id": "mcp-call-1"},
        )
        assert {tool.name for tool in tools} == TOOLS
        assert "five business days" in data(hit)["passages"][0]["text"]
        assert data(chat)["text"] == fake.reply[:3]
        # A key allowed only support:acme searches acme but may not use the model.
        tools, (hit, chat) = await session_calls(
            gapp,
            narrow,
            [
                ("search_knowledge_base", {"kb": "acme", "query": "refunds"}),
                ("chat", {"prompt": "Hi"}),
            ],
        )
        by_name = {tool.name: tool for tool in tools}
        assert "enum" not in by_name["chat"].input_schema["properties"]["model"]
        assert by_name["search_knowledge_base"].input_schema["properties"]["kb"]["enum"] == ["acme"]
        assert not hit.is_error
        assert error_text(chat).startswith(f"error 403: API key {narrow_id} may not use model")
        # And one allowed only the model may not search.
        _, model_only = key(auth, ["chat"], models=frozenset({"fake-model"}))
        tools, (hit,) = await session_calls(
            gapp, model_only, [("search_knowledge_base", {"kb": "acme", "query": "refunds"})]
        )
        by_name = {tool.name: tool for tool in tools}
        assert "enum" not in by_name["search_knowledge_base"].input_schema["properties"]["kb"]
        assert error_text(hit).startswith("error 403")
    ledger.flush()
    entries = tool_entries(settings)
    assert [(e["tool"], e["actor"], e["status"]) for e in entries] == [
        ("search_knowledge_base", key_id, 200),
        ("chat", key_id, 200),
        ("search_knowledge_base", narrow_id, 200),
        ("chat", narrow_id, 403),
        ("search_knowledge_base", entries[-1]["actor"], 403),
    ]
    assert entries[0]["request_id"] == "mcp-call-1" and entries[0]["transport"] == "http"
    store = Store.from_settings(settings)
    with store.session() as s:
        routes = s.execute(
            sa.select(t.entries.c.route, t.entries.c.key_id, t.entries.c.status).where(
                t.entries.c.kind == "request", t.entries.c.request_id == "mcp-call-1"
            )
        ).all()
    store.close()
    # initialize, initialized (202), tools/list, two calls: one request id here
    assert {tuple(r) for r in routes} == {("/mcp", key_id, 200), ("/mcp", key_id, 202)}
    verified(settings)


async def test_tool_calls_charge_the_keys_token_budget(gapp: FastAPI, auth: Authenticator) -> None:
    _, token = key(auth, ["chat"], daily_tokens=10)
    async with gapp.state.mcp.running():
        _, (result,) = await session_calls(gapp, token, [("chat", {"prompt": "Hello there"})])
    assert error_text(result).startswith("error 429") and "Retry after" in error_text(result)


async def test_the_modern_protocol_works_too(gapp: FastAPI, auth: Authenticator) -> None:
    _, token = key(auth, ["chat"])
    async with gapp.state.mcp.running(), http(gapp, token) as client:
        transport = streamable_http_client("http://test/mcp", http_client=client)
        async with Client(transport) as mcp:  # mode "auto": server/discover, no handshake
            assert mcp.protocol_version == "2026-07-28"
            found = await mcp.call_tool("search_knowledge_base", {"kb": "acme", "query": "hours"})
    assert "nine in the morning" in data(found)["passages"][0]["text"]


async def test_a_cancelled_call_aborts_its_generation_and_is_still_recorded(
    state: ServerState, fake: FakeEngine, settings: Settings, ledger: AuditLedger
) -> None:
    fake.delay = 0.05  # ~1.4 s for the whole reply
    async with connect(state) as local:
        with anyio.move_on_after(0.3):
            await local.call_tool("chat", {"prompt": "Hi"})
        with anyio.fail_after(5):
            while not fake.aborted:
                await anyio.sleep(0.02)
    assert fake.running == 0 and not fake.completed
    ledger.flush()
    (entry,) = tool_entries(settings)
    assert entry["tool"] == "chat" and entry["status"] == 499 and entry["result_sha256"] == ""
