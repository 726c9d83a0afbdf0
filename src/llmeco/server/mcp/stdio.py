"""The MCP tools over stdin/stdout, in-process (``llmeco mcp serve``).

There is no API key on stdio: the process runs with the rights of the local user who
started it (like ``llmeco kb`` commands), with no model allow-list or token limits. Every
tool call is still recorded in the audit ledger, with actor ``"stdio"``.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server

from llmeco.server.mcp.caller import Caller, stdio_caller
from llmeco.server.mcp.server import build_server
from llmeco.server.state import ServerState


async def serve_stdio(state: ServerState) -> None:
    """Serve ``state``'s tools over this process's stdin/stdout until the client closes
    stdin. While serving, anything printed to stdout goes to stderr (the SDK diverts fd 1),
    so stray output cannot corrupt the protocol."""

    def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
        return stdio_caller()

    server = build_server(state, caller_of)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
