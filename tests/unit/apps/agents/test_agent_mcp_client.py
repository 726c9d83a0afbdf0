"""Tools from an MCP server over stdio (the official SDK on both ends): listed at start-up,
called, errors as ``ToolError``, the session closed on shutdown."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from llmeco.apps.agents import AgentHub, AgentProfile, ToolContext, ToolError
from llmeco.errors import ConfigError, NotFound

SERVER = '''
from mcp.server import MCPServer

server = MCPServer("orders")


@server.tool()
def lookup_order(order_id: str) -> str:
    """Look up an order by its id."""
    return f"Order {order_id}: 2 bicycles, arriving 25 November."


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


server.run()
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "orders.py"
    path.write_text(SERVER)
    return path


def profile(script: Path, **server: Any) -> AgentProfile:
    spec = {"name": "orders", "command": [sys.executable, script.name], **server}
    return AgentProfile.model_validate({"name": "o", "mcp": [spec]})


async def test_tools_of_a_stdio_server(script: Path) -> None:
    agent_profile = profile(script, cwd=str(script.parent), timeout=7)
    hub = await AgentHub.open([agent_profile])
    try:
        agent = hub.get("o")
        lookup, fail = agent.tools
        assert (lookup.name, lookup.description) == ("lookup_order", "Look up an order by its id.")
        assert lookup.parameters["required"] == ["order_id"] and lookup.timeout == 7
        ctx = ToolContext("o", "r", None)  # type: ignore[arg-type]
        assert await lookup.call({"order_id": "A-7"}, ctx) == (
            "Order A-7: 2 bicycles, arriving 25 November."
        )
        with pytest.raises(ToolError, match="fail"):
            await fail.call({"reason": "nope"}, ctx)
    finally:
        await hub.aclose()
    with pytest.raises(ToolError, match="not connected"):
        await lookup.call({"order_id": "A-7"}, ctx)
    await hub.aclose()  # idempotent


async def test_a_subset_of_tools_and_a_missing_one(script: Path) -> None:
    hub = await AgentHub.open([profile(script, cwd=str(script.parent), tools=["lookup_order"])])
    try:
        assert [t.name for t in hub.get("o").tools] == ["lookup_order"]
    finally:
        await hub.aclose()
    with pytest.raises(ConfigError, match=r"mcp server 'orders': has no tool named nope"):
        await AgentHub.open([profile(script, cwd=str(script.parent), tools=["nope"])])


async def test_a_server_that_does_not_start_fails_the_start_up(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit(3)\n")
    with pytest.raises(ConfigError, match=r"agent 'o': mcp server 'orders': cannot connect"):
        await AgentHub.open([profile(broken, cwd=str(tmp_path), connect_timeout=20)])


async def test_an_unknown_agent_is_a_404() -> None:
    hub = await AgentHub.open([AgentProfile(name="a")])
    with pytest.raises(NotFound, match=r"no agent named 'b'. Agents: agent:a."):
        hub.get("b")
