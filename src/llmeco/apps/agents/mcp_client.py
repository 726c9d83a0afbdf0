"""Tools from MCP servers, through the official ``mcp`` SDK's client.

A profile's ``mcp:`` entry is one server: ``command`` runs it as a subprocess and talks over
its stdin/stdout (``mcp.client.stdio``), ``url`` reaches it over streamable HTTP
(``mcp.client.streamable_http``, with the entry's ``headers``). :meth:`McpConnection.start`
connects, initializes the session and lists the server's tools once, when the llmeco server
starts; :meth:`McpConnection.aclose` ends the session (and stops the subprocess) when it
shuts down. A server that cannot be reached, or lacks a tool the profile names, stops the
start-up with a :class:`~llmeco.errors.ConfigError` naming the profile and the server.

Each session runs in a task of its own: the SDK's transports hold anyio task groups that
must be left by the task that entered them, and a server that dies mid-session must not
take the serving task down with it. Calls from any request's task go through the session;
a server's error result (``isError``) becomes a :class:`~llmeco.apps.agents.tools.ToolError`
carrying the server's text, which the loop hands back to the model.

A command server's process gets the SDK's safe default environment (``PATH``, ``HOME`` …)
plus the entry's ``env``; its working directory is ``cwd``, else the profile's directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
from mcp.client import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from llmeco.apps.agents.profile import NAME_PATTERN, AgentProfile, McpServerSpec, expand_env
from llmeco.apps.agents.tools import ToolContext, ToolError
from llmeco.engine.tool_grammar import check_tool_schema
from llmeco.errors import ConfigError, InvalidRequest

log = logging.getLogger("llmeco.agents.mcp")

_NAME = re.compile(NAME_PATTERN)


class McpConnection:
    """One MCP server's client session, alive from :meth:`start` to :meth:`aclose`."""

    def __init__(self, spec: McpServerSpec, where: str, base: Path | None = None) -> None:
        self.spec = spec
        self.where = f"{where}: mcp server {spec.name!r}"
        self.base = base
        self._session: ClientSession | None = None
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> list[types.Tool]:
        """Connect, initialize and list the server's tools.

        Raises:
            ConfigError: the server could not be started or reached in ``connect_timeout``
                seconds, or failed the handshake (the message names profile and server).
        """
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[types.Tool]] = loop.create_future()
        self._task = asyncio.create_task(self._run(ready), name=f"llmeco-mcp-{self.spec.name}")
        try:
            return await asyncio.wait_for(asyncio.shield(ready), self.spec.connect_timeout)
        except TimeoutError:
            await self.aclose()
            raise ConfigError(
                f"{self.where}: no answer within {self.spec.connect_timeout:g} s"
            ) from None
        except Exception as exc:
            await self.aclose()
            raise ConfigError(f"{self.where}: cannot connect: {_reason(exc)}") from None

    async def _run(self, ready: asyncio.Future[list[types.Tool]]) -> None:
        try:
            async with self._transport() as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                tools = await _list_tools(session)
                self._session = session
                ready.set_result(tools)
                await self._closing.wait()
        except BaseException as exc:
            if not ready.done():
                if isinstance(exc, asyncio.CancelledError):
                    ready.cancel()
                else:
                    ready.set_exception(exc)
            elif not self._closing.is_set():
                log.error("MCP server session ended", extra={"server": self.spec.name})
            if not isinstance(exc, Exception):
                raise
        finally:
            self._session = None

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[Any]:
        spec = self.spec
        if spec.command is not None:
            cwd = spec.cwd or (str(self.base) if self.base is not None else None)
            params = StdioServerParameters(
                command=spec.command[0],
                args=spec.command[1:],
                env={k: expand_env(v, self.where) for k, v in spec.env.items()} or None,
                cwd=cwd,
            )
            async with stdio_client(params) as streams:
                yield streams
            return
        assert spec.url is not None
        headers = {k: expand_env(v, self.where) for k, v in spec.headers.items()}
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
            streamable_http_client(expand_env(spec.url, self.where), http_client=http) as streams,
        ):
            yield streams

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call tool ``name``; its text result.

        Raises:
            ToolError: the tool reported an error, or the server is not connected.
        """
        session = self._session
        if session is None:
            raise ToolError(f"the MCP server {self.spec.name!r} is not connected")
        result = await session.call_tool(name, arguments)
        text = result_text(result)
        if result.is_error:
            raise ToolError(text or f"the MCP tool {name!r} failed")
        return text

    async def aclose(self) -> None:
        """End the session (stopping a command server's process); idempotent."""
        self._closing.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), 10.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        except Exception:  # already logged by the task
            pass


def result_text(result: types.CallToolResult) -> str:
    """What the model reads of a tool result: its text blocks (other blocks named), else its
    structured content as JSON."""
    parts = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


async def _list_tools(session: ClientSession) -> list[types.Tool]:
    """Every tool the server lists (following pagination)."""
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            return tools


def _reason(exc: BaseException) -> str:
    """The innermost message of an exception (task groups wrap them in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class McpTool:
    """One tool of an MCP server, offered to the model under its own name."""

    def __init__(self, connection: McpConnection, tool: types.Tool) -> None:
        self.connection = connection
        self.name = tool.name
        self.description = tool.description or tool.title or tool.name
        self.parameters: dict[str, Any] = dict(tool.input_schema)
        self.timeout = connection.spec.timeout

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> str:
        """Call the tool on its server; its text result."""
        return await self.connection.call(self.name, args)


async def open_mcp_tools(
    profile: AgentProfile, spec: McpServerSpec
) -> tuple[McpConnection, list[McpTool]]:
    """Connect to one of ``profile``'s MCP servers and wrap the tools it offers the agent.

    Raises:
        ConfigError: the server cannot be reached, lacks a tool the profile names, or offers
            a tool whose name or input schema the model cannot be given.
    """
    base = profile.source.parent if profile.source is not None else None
    connection = McpConnection(spec, profile.where(), base)
    listed = await connection.start()
    try:
        by_name = {tool.name: tool for tool in listed}
        wanted = spec.tools if spec.tools is not None else list(by_name)
        missing = [name for name in wanted if name not in by_name]
        if missing:
            raise ConfigError(
                f"{connection.where}: has no tool named {', '.join(missing)}; it offers "
                f"{', '.join(by_name) or 'none'}"
            )
        tools = []
        for name in wanted:
            if not _NAME.match(name):
                raise ConfigError(
                    f"{connection.where}: tool {name!r} has a name models cannot call "
                    "(letters, digits, _ and - only); leave it out of `tools`"
                )
            try:
                check_tool_schema(name, by_name[name].input_schema)
            except InvalidRequest as exc:
                raise ConfigError(f"{connection.where}: {exc}") from None
            tools.append(McpTool(connection, by_name[name]))
        return connection, tools
    except BaseException:
        await connection.aclose()
        raise
