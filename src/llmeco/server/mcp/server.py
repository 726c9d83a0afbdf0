"""The SDK's low-level MCP server over :class:`~llmeco.server.mcp.tools.McpTools`.

Every ``tools/call`` returns a ``CallToolResult``, never a protocol error: a failure (bad
arguments, unknown tool or knowledge base, a model the key may not use, a full queue, a
shutting-down server, a bug) becomes a result with ``isError: true`` whose text says what
went wrong in the same words, status and code as the HTTP API (``server/errors.py``), so the
session carries on and the calling agent can correct itself.

Each call is then appended to the audit ledger (:meth:`AuditLedger.arecord_tool`): tool,
actor (key id or ``stdio``), request id, SHA-256 of the arguments and of the result,
duration and status. The result is sent only once its entry is committed; if the ledger
cannot commit, the caller gets a 503 tool error instead of an unaudited answer (as the HTTP
API does). A call cancelled midway is still queued for the ledger, without waiting.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from llmeco import __version__
from llmeco.errors import LimitExceeded, LlmecoError, ServiceUnavailable
from llmeco.governance.audit.checkpoint import canonical_json
from llmeco.governance.audit.ledger import AuditLedger, ToolRecord
from llmeco.server.errors import describe
from llmeco.server.mcp.caller import Caller
from llmeco.server.mcp.tools import McpTools, ToolOutput
from llmeco.server.state import ServerState

log = logging.getLogger("llmeco.server.mcp")

#: Who is calling, from the SDK's request context (HTTP: the key; stdio: the local user).
CallerOf = Callable[[ServerRequestContext[Any, Any]], Caller]

INSTRUCTIONS = (
    "llmeco serves a team's knowledge bases and self-hosted language models. To answer from "
    "the team's documents, call search_knowledge_base (list_knowledge_bases names them) and "
    "cite the passages' doc and section. chat asks a served model; classify, sentiment, "
    "summarize, translate, correct, moderate and extract run fixed text tasks with "
    "validated outputs. A tool error says what to change."
)


def build_server(state: ServerState, caller_of: CallerOf) -> Server[Any]:
    """The MCP server of ``state``'s tools; ``caller_of`` tells who makes each request."""
    tools = McpTools(state)

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        with caller_of(ctx).governed():
            return types.ListToolsResult(tools=await tools.definitions())

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            caller = caller_of(ctx)
        except LlmecoError as exc:
            return error_result(exc)[1]
        return await run_call(tools, state.ledger, caller, params.name, params.arguments or {})

    return Server(
        "llmeco",
        version=__version__,
        title="llmeco",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def run_call(
    tools: McpTools,
    ledger: AuditLedger | None,
    caller: Caller,
    name: str,
    arguments: Mapping[str, Any],
) -> types.CallToolResult:
    """Run one tool call under the caller's guard, as a result (errors included), recorded
    in ``ledger`` (when there is one) before it is returned."""
    started = time.perf_counter()
    args_hash = sha256_json(dict(arguments))
    result: types.CallToolResult | None = None
    status = 499  # cancelled, until the call ends
    try:
        with caller.governed():
            try:
                output = await tools.call(name, dict(arguments), caller)
            except Exception as exc:  # every failure is a tool error, not a broken session
                status, result = error_result(exc)
            else:
                status, result = 200, success_result(output)
    finally:
        record = ToolRecord(
            tool=name,
            actor=caller.actor,
            request_id=caller.context.request_id,
            arguments_sha256=args_hash,
            result_sha256=result_digest(result) if result is not None else "",
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            status=status,
            transport=caller.transport,
        )
        if result is None and ledger is not None:  # cancelled: queue it, do not wait
            with contextlib.suppress(Exception):
                ledger.record_tool(record)
    if ledger is not None:
        try:
            await ledger.arecord_tool(record)
        except Exception as exc:
            log.error("tool call not audited; result withheld", extra={"tool": name})
            unavailable = ServiceUnavailable(
                f"the audit ledger is unavailable, so the result was withheld: {exc}"
            )
            return error_result(unavailable)[1]
    assert result is not None  # only a cancelled call has none, and it did not get here
    return result


def success_result(output: ToolOutput) -> types.CallToolResult:
    """A tool's output as a result: its text, and its data as structured content."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=output.as_text())],
        structured_content=output.data,
        is_error=False,
    )


def error_result(exc: BaseException) -> tuple[int, types.CallToolResult]:
    """The HTTP status ``exc`` maps to and a tool-error result describing it.

    The text reads ``error 429 (rate_limit_exceeded): …`` (plus when to retry); the
    structured content is the HTTP API's error object with its ``status``. Unknown
    exceptions are logged and described without internals, as a 500.
    """
    status, body, _ = describe(exc)
    error = body["error"]
    code = error["code"]
    if code == "model_not_found" and error["param"] != "model":  # a tool, a knowledge base
        code = None
    text = f"error {status}" + (f" ({code})" if code else "") + f": {error['message']}"
    if isinstance(exc, LimitExceeded):
        text += f" Retry after {max(1, math.ceil(exc.retry_after))} s."
    return status, types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={"error": {**error, "status": status}},
        is_error=True,
    )


#: The parts of a result its ledger hash covers: what the tool said, not the envelope (the
#: SDK adds protocol-version-dependent fields such as ``resultType`` and ``_meta``).
HASHED = ("content", "structuredContent", "isError")


def result_digest(result: types.CallToolResult) -> str:
    """SHA-256 of the result's :data:`HASHED` fields as canonical JSON (camelCase, as on
    the wire), so a client can recompute it from the result it received."""
    wire = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return sha256_json({k: wire[k] for k in HASHED if k in wire})


def sha256_json(value: Any) -> str:
    """SHA-256 (hex) of ``value`` as canonical JSON (sorted keys, compact, UTF-8)."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
