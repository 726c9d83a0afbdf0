"""The official ``mcp`` client against llmeco: over ``/mcp`` of a real ``llmeco serve`` on a
free port (behind API keys), and over stdio with ``llmeco mcp serve`` as the subprocess.

One LLMECO_HOME per module: a knowledge base made with ``llmeco kb create/add`` from the
handbook, keys made with ``llmeco keys create``. The generation model is the tiny random
Llama (the tools' plumbing is under test, not the answers); knowledge-base search uses the
real packaged embedding model. Afterwards ``llmeco audit verify`` passes and the ledger holds
one ``tool`` entry per call.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
import sqlalchemy as sa
from mcp.client import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from llmeco.governance.audit import tables as t
from llmeco.governance.keys import split_token
from llmeco.settings import Settings
from llmeco.store import Store

pytestmark = pytest.mark.slow

LLMECO = str(Path(sys.executable).parent / "llmeco")
HANDBOOK = Path(__file__).resolve().parents[2] / "data" / "acme_handbook.md"
QUESTION = "How long does it take to get my refund?"
TOOLS = {
    "list_knowledge_bases",
    "search_knowledge_base",
    "chat",
    "classify",
    "sentiment",
    "summarize",
    "translate",
    "correct",
    "moderate",
    "extract",
}


def env_for(home: Path) -> dict[str, str]:
    return {
        "LLMECO_HOME": str(home),
        "LLMECO_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def llmeco(home: Path, *args: str) -> str:
    """Run a CLI command on ``home``; its stdout."""
    done = subprocess.run(
        [LLMECO, *args],
        env={**os.environ, **env_for(home)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with knowledge base ``acme`` (the handbook) and two keys."""
    home = tmp_path_factory.mktemp("mcp-home")
    llmeco(home, "kb", "create", "acme")
    llmeco(home, "kb", "add", "acme", str(HANDBOOK))
    return home


def new_key(home: Path, scopes: str) -> str:
    return llmeco(home, "keys", "create", "--name", scopes, "--scopes", scopes).strip()


@pytest.fixture(scope="module")
def server(home: Path, tiny_llama_dir: Path) -> Iterator[str]:
    """``llmeco serve`` (auth on) on a free port; its base URL. Stopped with SIGTERM."""
    new_key(home, "admin")  # so serve does not create (and print) a first admin key
    proc = subprocess.Popen(
        [LLMECO, "serve", "--model", str(tiny_llama_dir), "--port", "0"],
        env={**os.environ, **env_for(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = None
    for line in proc.stdout:
        match = re.search(r"at (http://\S+)/", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        proc.kill()
        raise AssertionError(f"llmeco serve did not start (exit {proc.wait()})")
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def data(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def exercise(session: ClientSession) -> None:
    """What both transports must do: list, search, run a task, fail cleanly, go on."""
    await session.initialize()
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    assert tools["search_knowledge_base"].input_schema["properties"]["kb"]["enum"] == ["acme"]

    found = data(
        await session.call_tool("search_knowledge_base", {"kb": "acme", "query": QUESTION, "k": 3})
    )
    best = found["passages"][0]
    assert "five business days" in best["text"], found
    assert best["doc"] == "acme_handbook.md" and best["section"].endswith("Refunds")
    assert best["start"] < best["end"] and best["similarity"] > 0.3

    out = data(
        await session.call_tool(
            "translate", {"text": "Good morning", "target_language": "French", "max_tokens": 6}
        )
    )
    assert out["object"] == "task.translate" and isinstance(out["translation"], str)
    assert out["usage"]["completion_tokens"] >= 1

    missing = await session.call_tool("search_knowledge_base", {"kb": "nope", "query": "x"})
    assert missing.is_error
    assert text_of(missing) == "error 404: there is no knowledge base named 'nope'; available: acme"
    listed = data(await session.call_tool("list_knowledge_bases", {}))  # the session goes on
    assert listed["knowledge_bases"][0]["name"] == "acme"


def tool_entries(home: Path) -> list[dict[str, Any]]:
    store = Store.from_settings(Settings(home=home))
    with store.session() as s:
        payloads = s.scalars(
            sa.select(t.entries.c.payload)
            .where(t.entries.c.kind == "tool")
            .order_by(t.entries.c.seq)
        ).all()
    store.close()
    return [json.loads(p) for p in payloads]


def audit_verify(home: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(llmeco(home, "audit", "verify", "--json"))
    assert report["ok"], report
    return report


async def test_mcp_over_http_behind_api_keys(server: str, home: Path) -> None:
    agent = new_key(home, "chat")
    reader = new_key(home, "models")
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    r = httpx.post(server + "/mcp", json=initialize, headers=accept, timeout=30)
    assert r.status_code == 401, r.text
    r = httpx.post(
        server + "/mcp",
        json=initialize,
        headers={**accept, "Authorization": f"Bearer {reader}"},
        timeout=30,
    )
    assert r.status_code == 403 and "`chat` scope" in r.json()["error"]["message"]

    headers = {"Authorization": f"Bearer {agent}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        streamable_http_client(server + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await exercise(session)

    entries = tool_entries(home)
    parts = split_token(agent)
    assert parts is not None
    agent_id = parts[0]
    mine = [e for e in entries if e["actor"] == agent_id]
    assert [(e["tool"], e["status"]) for e in mine] == [
        ("search_knowledge_base", 200),
        ("translate", 200),
        ("search_knowledge_base", 404),
        ("list_knowledge_bases", 200),
    ]
    assert all(e["transport"] == "http" and len(e["result_sha256"]) == 64 for e in mine)
    audit_verify(home)


async def test_mcp_over_stdio(home: Path, tiny_llama_dir: Path) -> None:
    params = StdioServerParameters(
        command=LLMECO,
        args=["mcp", "serve", "--model", str(tiny_llama_dir)],
        env=env_for(home),
    )
    with open(os.devnull, "w") as quiet:  # the server's logs and start-up lines
        async with (
            stdio_client(params, errlog=quiet) as (read, write),
            ClientSession(read, write, read_timeout_seconds=240) as session,
        ):
            await exercise(session)

    stdio = [e for e in tool_entries(home) if e["actor"] == "stdio"]
    assert [e["tool"] for e in stdio] == [
        "search_knowledge_base",
        "translate",
        "search_knowledge_base",
        "list_knowledge_bases",
    ]
    assert {e["transport"] for e in stdio} == {"stdio"}
    assert len({e["request_id"] for e in stdio}) == 4
    report = audit_verify(home)
    assert report["entries"] >= len(stdio)
