"""Who is calling a tool, and the request the serving code sees while it runs.

Over HTTP the caller is the API key the auth middleware admitted to ``/mcp`` (read from the
request scope, so it holds whichever way the SDK schedules the handler); its
:class:`~llmeco.server.auth.KeyGuard` is installed as the request guard for the call, so the
model allow-list, TPM and daily-token limits apply exactly as on the HTTP routes. Over stdio
there is no key: the caller is the local user (actor ``"stdio"``) with no guard.

The serving code (task endpoints, :mod:`~llmeco.server.apprun`) takes a Starlette request
for two things: the :class:`~llmeco.server.state.RequestContext` in its scope (request id,
the model it resolved to — which the access log and the audit entry of the ``/mcp`` request
then show) and a ``receive`` it watches for a client disconnect. The caller's request shares
the HTTP request's scope but never reports a disconnect: the MCP transport cancels a call's
task when its client goes away or sends ``notifications/cancelled``, which aborts the
generation the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from starlette.requests import Request
from starlette.types import Message

from llmeco.errors import AuthError
from llmeco.observability.logging import new_request_id
from llmeco.server.auth import KeyGuard, current_key
from llmeco.server.state import (
    RequestContext,
    RequestGuard,
    ServerState,
    get_context,
    request_guard,
    set_context,
)

#: The ledger's actor for tool calls over stdio (``llmeco mcp serve``).
STDIO_ACTOR = "stdio"


async def _never_disconnects() -> Message:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class Caller:
    """One tool call's identity and request."""

    #: The API key id, ``"stdio"``, or None over HTTP without auth.
    actor: str | None
    transport: Literal["http", "stdio"]
    #: What the serving code reads: the request context (scope), a receive that never ends.
    request: Request
    #: Governance of the key (None: stdio, or HTTP without auth).
    guard: RequestGuard | None

    @property
    def context(self) -> RequestContext:
        """The request context the call runs under (its request id, the model it used)."""
        return get_context(self.request)

    @contextlib.contextmanager
    def governed(self) -> Iterator[None]:
        """Install the caller's guard as the request guard for the block."""
        token = request_guard.set(self.guard)
        try:
            yield
        finally:
            request_guard.reset(token)


def http_caller(state: ServerState, request: Any) -> Caller:
    """The caller of a tool over ``/mcp``: the key the auth middleware put in the scope.

    Raises:
        AuthError: there is no HTTP request to read the key from (fails closed).
    """
    if not isinstance(request, Request):
        raise AuthError("this MCP call carries no HTTP request, so its API key is unknown")
    key = current_key(request)
    auth = state.auth
    guard = KeyGuard(key, auth.limiter) if key is not None and auth is not None else None
    return Caller(
        actor=key.id if key is not None else None,
        transport="http",
        request=Request(request.scope, _never_disconnects),
        guard=guard,
    )


def stdio_caller() -> Caller:
    """The caller of a tool over stdio: the local user, a fresh request id per call."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [],
        "query_string": b"",
    }
    set_context(scope, RequestContext(new_request_id()))
    return Caller(
        actor=STDIO_ACTOR, transport="stdio", request=Request(scope, _never_disconnects), guard=None
    )
