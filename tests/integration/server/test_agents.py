"""Agents served by a real ``llmeco serve`` (auth on) with the packaged default model
(SmolLM2-135M-Instruct), called as ``model: "agent:…"`` with the official ``openai`` client.

Two profiles, read from ``--agent DIR``: ``handbook`` searches a knowledge base made with
``llmeco kb create/add`` from the handbook; ``orders`` calls ``lookup_order`` on a tiny stdio
MCP server the test writes with the SDK's server API (started by ``llmeco serve`` from the
profile's directory, stopped when it shuts down). A 135M model never trained on tools does
not call one on its own, so both profiles set ``tool_choice: required`` (first turn only)
and show one example call in their system prompt; later turns are ``auto``.

Afterwards every tool execution is a ledger entry of the caller's key and
``llmeco audit verify`` passes. Slow: two model loads' worth of CPU generation.
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

import openai
import pytest
import sqlalchemy as sa

from llmeco.governance.audit import tables as t
from llmeco.governance.keys import split_token
from llmeco.settings import Settings
from llmeco.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

LLMECO = str(Path(sys.executable).parent / "llmeco")
HANDBOOK = Path(__file__).resolve().parents[2] / "data" / "acme_handbook.md"

HANDBOOK_AGENT = """\
name: handbook
model: {model}
system: >-
  You answer questions about the ACME handbook. First search it: call kb_search with the
  question. Example: for "When is the shop open?" call kb_search with
  {{"query": "When is the shop open?"}}. Then answer from the passages in one sentence.
tools:
  - kb_search: {{kb: acme, k: 1}}
max_steps: 2
max_tokens: 60
tool_choice: required
"""

ORDERS_AGENT = """\
name: orders
model: {model}
system: >-
  You help customers with their orders. First call lookup_order with the order id.
  Example: for "Where is order B-2?" call lookup_order with {{"order_id": "B-2"}}.
  Then answer in one sentence.
mcp:
  - name: shop
    command: [{python}, orders_server.py]
    tools: [lookup_order]
    timeout: 20
max_steps: 2
max_tokens: 80
tool_choice: required
"""

ORDERS_SERVER = '''\
"""A tiny MCP server: one tool returning a fixed record."""
from typing import Annotated

from pydantic import Field
from mcp.server import MCPServer

server = MCPServer("shop")


@server.tool()
def lookup_order(order_id: Annotated[str, Field(max_length=12)]) -> str:
    """Look up an order by its id."""
    return f"Order {order_id}: 2 bicycles, shipped on 20 November, arriving on 25 November."


@server.tool()
def cancel_order(order_id: str) -> str:
    """Cancel an order (not offered to the agent)."""
    raise RuntimeError("must never be called")


server.run()
'''


def env_for(home: Path) -> dict[str, str]:
    return {
        "LLMECO_HOME": str(home),
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
    """A home with knowledge base ``acme`` (the handbook) and an admin key."""
    home = tmp_path_factory.mktemp("agents-home")
    llmeco(home, "kb", "create", "acme")
    llmeco(home, "kb", "add", "acme", str(HANDBOOK))
    llmeco(home, "keys", "create", "--name", "admin", "--scopes", "admin")
    return home


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path) -> Path:
    """A directory of profiles and the MCP server script ``orders`` runs."""
    folder = tmp_path_factory.mktemp("agents")
    model = json.dumps(str(default_model_dir))  # the --model reference is an alias of it
    (folder / "handbook.yaml").write_text(HANDBOOK_AGENT.format(model=model))
    (folder / "orders.yaml").write_text(
        ORDERS_AGENT.format(model=model, python=json.dumps(sys.executable))
    )
    (folder / "orders_server.py").write_text(ORDERS_SERVER)
    return folder


@pytest.fixture(scope="module")
def server(home: Path, agents: Path, default_model_dir: Path) -> Iterator[str]:
    """``llmeco serve --agent DIR`` on a free port; its base URL. Stopped with SIGTERM."""
    proc = subprocess.Popen(
        [LLMECO, "serve", "--model", str(default_model_dir), "--port", "0", "--agent", str(agents)],
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
        assert proc.wait(60) == 0


@pytest.fixture(scope="module")
def key(home: Path) -> str:
    token = llmeco(home, "keys", "create", "--name", "agent-user", "--scopes", "chat").strip()
    return token


def key_id(token: str) -> str:
    parts = split_token(token)
    assert parts is not None
    return parts[0]


def client(server: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key=token, max_retries=0, timeout=900)


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


def test_the_handbook_agent_answers_from_a_passage(server: str, home: Path, key: str) -> None:
    openai_client = client(server, key)
    cards = {m.id: m for m in openai_client.models.list().data}
    assert (cards["agent:handbook"].model_extra or {}).get("task") == "agent"
    assert "agent:orders" in cards

    r = openai_client.chat.completions.create(
        model="agent:handbook",
        messages=[{"role": "user", "content": "How long does a refund take?"}],
    )
    (choice,) = r.choices
    assert choice.finish_reason in ("stop", "length", "max_steps")
    answer = choice.message.content or ""
    steps: list[dict[str, Any]] = (r.model_extra or {})["agent_steps"]
    assert steps, ("the agent called no tool", choice.finish_reason, answer)
    first = steps[0]
    assert first["tool"] == "kb_search" and first["ok"], first
    assert json.loads(first["arguments"])["query"]
    # The retrieved passage, cited by source, is what the agent answered from.
    cited = answer + "\n".join(step["result"] for step in steps)
    assert "five business days" in cited
    assert "(source: acme_handbook.md, Refunds)" in cited
    assert r.usage is not None and r.usage.completion_tokens > 0

    mine = [e for e in tool_entries(home) if e["transport"] == "agent:handbook"]
    assert [e["tool"] for e in mine] == [step["tool"] for step in steps]
    assert all(e["actor"] == key_id(key) and e["status"] == 200 for e in mine)
    report = json.loads(llmeco(home, "audit", "verify", "--json"))
    assert report["ok"], report


def test_an_agent_calls_a_tool_of_an_mcp_server(server: str, home: Path, key: str) -> None:
    stream = client(server, key).chat.completions.create(
        model="agent:orders",
        messages=[{"role": "user", "content": "Where is my order A-7?"}],
        stream=True,
    )
    text, steps, finish = [], [], None
    for chunk in stream:
        step = (chunk.model_extra or {}).get("agent_step")
        if step is not None:
            steps.append(step)
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert finish in ("stop", "length", "max_steps")
    assert steps, ("the agent called no tool", finish, "".join(text))
    lookup = steps[0]
    assert lookup["tool"] == "lookup_order" and lookup["ok"], lookup
    assert "arriving on 25 November" in lookup["result"]
    assert all(step["tool"] == "lookup_order" for step in steps)  # cancel_order is not offered

    mine = [e for e in tool_entries(home) if e["transport"] == "agent:orders"]
    assert [(e["tool"], e["status"]) for e in mine] == [("lookup_order", 200)] * len(steps)
    assert all(e["actor"] == key_id(key) for e in mine)
    report = json.loads(llmeco(home, "audit", "verify", "--json"))
    assert report["ok"], report
