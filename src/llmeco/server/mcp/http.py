"""``/mcp``: the MCP tools over streamable HTTP, inside the app ``build_app`` makes.

The SDK's :class:`StreamableHTTPSessionManager` is mounted as a plain ASGI route (not in the
OpenAPI schema: JSON-RPC over one path cannot be described there), so every llmeco
middleware wraps it: the request id and body limit, API-key auth with the ``chat`` scope
(``governance/scopes.py``; no key → 401, a key without ``chat`` → 403), and the audit ledger
entry of the HTTP request. Tool calls then read the admitted key from the request scope
(:func:`~llmeco.server.mcp.caller.http_caller`).

The manager runs **stateless** with JSON responses: each POST is a complete exchange on a
fresh transport, nothing is kept between requests (so any replica can answer any request,
and a restart loses nothing), and every response is an ordinary JSON body the audit
middleware hashes and acknowledges like any other. With no session there is nothing to
end and nothing to push, so GET (a standalone SSE stream) and DELETE get 405, as the MCP
specification allows.

Lifetime: even stateless, the manager needs its task group running
(:meth:`McpEndpoint.running`). :meth:`ServerRuntime.serve
<llmeco.server.runtime.ServerRuntime.serve>` enters it around uvicorn (the app runs with
``lifespan="off"`` there), so it starts before the socket accepts and stops after in-flight
requests have drained; an ASGI host that runs the app's lifespan starts it through that
instead. While none runs, ``/mcp`` answers 503.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from llmeco.errors import ServiceUnavailable
from llmeco.server.errors import error_response, exception_response
from llmeco.server.mcp.caller import Caller, http_caller
from llmeco.server.mcp.server import build_server
from llmeco.server.state import ServerState

#: Where the endpoint is served.
PATH = "/mcp"


class McpEndpoint:
    """The ``/mcp`` ASGI app and the lifetime of its session manager."""

    def __init__(self, state: ServerState) -> None:
        def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
            return http_caller(state, ctx.request)

        self.server = build_server(state, caller_of)
        # The SDK logs "Terminating session: None" at INFO for every stateless request; the
        # access log already has one line per request.
        logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
        self._max_body = state.settings.max_body_bytes
        self._manager: StreamableHTTPSessionManager | None = None
        self._route = Route(PATH, self, include_in_schema=False)

    @property
    def is_running(self) -> bool:
        """Whether ``/mcp`` serves requests (a session manager is running)."""
        return self._manager is not None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run a session manager for the block (a no-op while one already runs).

        The SDK's manager runs only once, so each start makes a new one: an app may be
        served, stopped and served again (tests, an ASGI host that re-runs the lifespan).
        """
        if self._manager is not None:
            yield
            return
        manager = StreamableHTTPSessionManager(
            self.server, json_response=True, stateless=True, max_request_body_size=self._max_body
        )
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    def lifespan(self, app: Any) -> contextlib.AbstractAsyncContextManager[None]:
        """The app lifespan (for ASGI hosts that run it): the session manager runs with it."""
        return self.running()

    def route(self) -> Route:
        """The route to add to the app: ``/mcp``, every method, outside the OpenAPI schema."""
        return self._route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The access log, metrics and the audit entry label requests by scope["route"];
        # FastAPI sets it for its own routes only.
        scope.setdefault("route", self._route)
        if scope.get("method") != "POST":
            # Stateless: no session to end (DELETE) and nothing to push on a standalone SSE
            # stream (GET, which would otherwise stay open, idle, until shutdown).
            refused = error_response(
                405,
                "the MCP endpoint is stateless: send JSON-RPC messages with POST",
                "invalid_request_error",
                headers={"Allow": "POST"},
            )
            await refused(scope, receive, send)
            return
        manager = self._manager
        if manager is None:
            unavailable = ServiceUnavailable(
                "the MCP endpoint is not running: ServerRuntime.serve (or the app's lifespan) "
                "starts it"
            )
            response: ASGIApp = exception_response(unavailable)
            await response(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)
