"""The one ASGI middleware: request ids, the body-size limit, access logs, request metrics.

It is pure ASGI (not ``BaseHTTPMiddleware``) so streaming responses and client disconnects
pass through untouched. It buffers the request body, counting the bytes as they arrive, so
a body over the limit is refused with 413 whether or not it declared a Content-Length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmeco.errors import InvalidRequest
from llmeco.observability import tracing
from llmeco.observability.logging import request_id_var, sanitize_request_id
from llmeco.server.errors import (
    BodyTooLarge,
    ClientGone,
    describe,
    error_response,
    note_limit,
)
from llmeco.server.state import RequestContext, ServerState, set_context
from llmeco.settings import Settings

log = logging.getLogger("llmeco.server.access")

REQUEST_ID_HEADER = "x-request-id"


#: Paths that take audio uploads, limited by ``settings.speech_max_bytes`` instead.
AUDIO_PATHS = ("/v1/audio/", "/v1/apps/voice/")


def body_limit(settings: Settings, path: str) -> int:
    """The largest body ``path`` accepts: audio uploads have their own limit."""
    if path.startswith(AUDIO_PATHS):
        return settings.speech_max_bytes
    return settings.max_body_bytes


class RequestMiddleware:
    """Wraps every HTTP request of the app."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = sanitize_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        ctx = RequestContext(rid)
        set_context(scope, ctx)
        token = request_id_var.set(rid)
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        method = scope.get("method", "")
        attrs = {"http.request.method": method, "url.path": scope["path"], "llmeco.request_id": rid}
        with tracing.server_span(method, Headers(scope=scope), attrs) as span:
            try:
                replay = await self._buffer_body(scope, receive)
                await self.app(scope, replay, send_with_id)
            except ClientGone:
                status = status or 499
            except Exception as exc:  # BodyTooLarge, bad Content-Length, or a bug (logged)
                if status:  # the response had started: nothing more can be sent
                    log.error("error after the response started", exc_info=exc)
                else:
                    note_limit(scope, exc)
                    code, body, headers = describe(exc)
                    await _send_json(send_with_id, code, body, headers)
            finally:
                route = self._record(scope, ctx, status or 499, time.perf_counter() - start)
                request_id_var.reset(token)
                if span is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    if ctx.model:
                        span.set_attribute("llmeco.model", ctx.model)
                    tracing.set_error(span, status or 499)

    async def _buffer_body(self, scope: Scope, receive: Receive) -> Receive:
        """Read the whole body (refusing it past the limit) and replay it to the app."""
        limit = body_limit(self.state.settings, str(scope.get("path", "")))
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise InvalidRequest(f"invalid Content-Length header: {declared!r}")
            if int(declared) > limit:
                raise BodyTooLarge(_too_large(int(declared), limit))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(_too_large(size, limit, at_least=True))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    def _record(self, scope: Scope, ctx: RequestContext, status: int, seconds: float) -> str:
        """Count the request in the metrics and the access log; return its route template."""
        route = _route_of(scope)
        m = self.state.metrics
        m.requests.labels(ctx.model, route, str(status)).inc()
        m.http_latency.labels(ctx.model, route).observe(seconds)
        if status == 429:
            key_id = scope.get("state", {}).get("key_id") or "none"
            m.limit_rejections.labels(key_id, ctx.limit or "rate").inc()
        log.info(
            "%s %s %d",
            scope.get("method", ""),
            scope.get("path", ""),
            status,
            extra={
                "status": status,
                "route": route,
                "model": ctx.model,
                "ms": round(seconds * 1000, 2),
                **({"user": ctx.user} if ctx.user else {}),
            },
        )
        return route


def _route_of(scope: Scope) -> str:
    """The route template that served the request; for one refused before routing (401,
    429, 503 from the auth layer), the template it would have matched; else "unmatched"."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    router = getattr(scope.get("app"), "router", None)
    return _match(getattr(router, "routes", ()), scope) or "unmatched"


def _match(routes: Any, scope: Scope) -> str | None:
    """The path template of the route in ``routes`` (nested routers included) that fully
    matches ``scope``, if any."""
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match != Match.FULL:
            continue
        inner = getattr(candidate, "original_router", None) or getattr(candidate, "app", None)
        if isinstance(getattr(candidate, "path", None), str) and inner is None:
            return str(candidate.path)
        if inner is not None and hasattr(inner, "routes"):
            return _match(inner.routes, scope)
        return str(getattr(candidate, "path", "unmatched"))
    return None


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    more = "at least " if at_least else ""
    return f"The request body is {more}{size} bytes; the limit is {limit} bytes."


async def _send_json(
    send: Callable[[Message], Awaitable[None]],
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    response = error_response(
        status,
        body["error"]["message"],
        body["error"]["type"],
        body["error"]["param"],
        body["error"]["code"],
        headers,
    )
    scope: MutableMapping[str, Any] = {"type": "http"}

    async def no_receive() -> Message:  # pragma: no cover - a JSONResponse never receives
        return {"type": "http.disconnect"}

    await response(scope, no_receive, send)
