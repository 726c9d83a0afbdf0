"""The server side of the audit ledger: a pure ASGI middleware that records every request.

It is the outermost llmeco middleware, so it sees every request (401s, 413s and 429s
included) and its whole latency. It hashes the request body as the app reads it and the
response body as it goes out (SHA-256 and size), notes status, route, model, key id
(``scope["state"]["key_id"]``, set by the auth layer) and token counts (from the response's
``usage``), and appends one entry to the :class:`~llmeco.governance.audit.AuditLedger`.

The acknowledgement waits for the commit (see ``governance/audit/ledger.py`` for the group commit
that makes this cheap):

* a non-streamed response is held back — status line and body — until its entry is
  committed;
* a streamed (SSE) response flows as it is produced, but its final ``data: [DONE]`` is sent
  only after the commit.

So a client that saw a complete response knows its entry is durable. If the ledger cannot
commit, a non-streamed request gets 503 instead of its answer and a stream ends with an
error event and no ``[DONE]``. Requests cut short (client gone, server stopping) are still
queued for the ledger, without waiting.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming and disconnects pass through untouched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmeco.governance.audit import AuditLedger, RequestRecord, utc_now
from llmeco.observability.metrics import ServerMetrics
from llmeco.server.errors import payload
from llmeco.server.state import context_of
from llmeco.server.streaming import DONE, sse

log = logging.getLogger("llmeco.server.audit")

#: Most bytes of each body kept when the ledger stores bodies (their hash covers all).
MAX_KEPT_BODY = 1 << 20
#: The same for the speech routes, whose bodies are audio: kept whole up to the upload limit's
#: order of size, since a cut recording is of no use to whoever must review it.
MAX_KEPT_AUDIO_BODY = 32 << 20
AUDIO_PATHS = ("/v1/audio/", "/v1/apps/voice/")
#: The usage object, one level of nesting allowed (``prompt_tokens_details``).
_USAGE = re.compile(rb'"usage":\s*(\{(?:[^{}]|\{[^{}]*\})*\})')


def key_id_of(scope: Scope) -> str | None:
    """The API key id the auth layer put in the request state (None without auth)."""
    state = scope.get("state")
    if isinstance(state, dict):
        value = state.get("key_id")
        if value is not None:
            return str(value)
    return None


class AuditMiddleware:
    """Records every HTTP request in the ledger before acknowledging it."""

    def __init__(
        self, app: ASGIApp, ledger: AuditLedger, metrics: ServerMetrics | None = None
    ) -> None:
        self.app = app
        self.ledger = ledger
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        call = _AuditedCall(self.ledger, scope, receive, send, self.metrics)
        try:
            await self.app(scope, call.receive, call.send)
        except Exception:
            call.status = call.status or 500  # a bug that escaped the error handlers
            raise
        finally:
            call.finish_unacknowledged()


class _AuditedCall:
    """The bookkeeping of one request passing through :class:`AuditMiddleware`."""

    def __init__(
        self,
        ledger: AuditLedger,
        scope: Scope,
        receive: Receive,
        send: Send,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.ledger = ledger
        self.metrics = metrics
        self.scope = scope
        self._receive = receive
        self._send = send
        self.start = time.perf_counter()
        self.started = utc_now()
        self.keep = ledger.store_bodies
        self.keep_limit = (
            MAX_KEPT_AUDIO_BODY
            if str(scope.get("path", "")).startswith(AUDIO_PATHS)
            else MAX_KEPT_BODY
        )
        self.req_hash = hashlib.sha256()
        self.req_bytes = 0
        self.req_kept: list[bytes] = []
        self.resp_hash = hashlib.sha256()
        self.resp_bytes = 0
        self.resp_kept: list[bytes] = []
        self.status = 0
        self.start_message: Message | None = None
        self.streaming = False
        self.usage: dict[str, Any] | None = None
        self.recorded = False
        self.closed = False
        self.request_id = ""

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            self.req_hash.update(body)
            self.req_bytes += len(body)
            if self.keep:
                _keep(self.req_kept, body, self.keep_limit)
        return message

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = Headers(raw=message.get("headers", []))
            self.request_id = headers.get("x-request-id", "")
            self.streaming = headers.get("content-type", "").startswith("text/event-stream")
            if self.streaming:  # a stream's headers go at once; only its [DONE] waits
                await self._send(message)
            else:
                self.start_message = message  # held until the entry is committed
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        self.resp_hash.update(body)
        self.resp_bytes += len(body)
        if self.keep:
            _keep(self.resp_kept, body, self.keep_limit)
        if b'"usage"' in body:
            self._note_usage(body)
        more = bool(message.get("more_body", False))
        final = not more or (self.streaming and body.endswith(DONE))
        if final and not self.recorded and not await self._commit():
            await self._fail(body)
            return
        await self._flush_start()
        await self._send(message)

    async def _flush_start(self) -> None:
        if self.start_message is not None:
            start, self.start_message = self.start_message, None
            await self._send(start)

    async def _commit(self) -> bool:
        """Record this request and wait for the commit; False if the ledger failed."""
        self.recorded = True
        queued = time.perf_counter()
        try:
            await self.ledger.arecord_request(self._record())
        except Exception as exc:
            log.error("audit entry not committed; refusing to acknowledge", exc_info=exc)
            if self.metrics is not None:
                self.metrics.audit_failures.inc()
            return False
        if self.metrics is not None:
            self.metrics.audit_append.observe(time.perf_counter() - queued)
        return True

    async def _fail(self, body: bytes) -> None:
        """The ledger failed: no acknowledgement of an unaudited request."""
        message = "the audit ledger is unavailable; the request was not acknowledged"
        error = payload(message, "service_unavailable_error")
        if self.start_message is None:  # a stream already under way: end it without [DONE]
            await self._send({"type": "http.response.body", "body": sse(error), "more_body": False})
        else:
            raw = json.dumps(error).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(raw)),
            ]
            if self.request_id:
                headers.append((b"x-request-id", self.request_id.encode()))
            self.start_message = None
            await self._send({"type": "http.response.start", "status": 503, "headers": headers})
            await self._send({"type": "http.response.body", "body": raw, "more_body": False})
        self.closed = True

    def finish_unacknowledged(self) -> None:
        """Queue the entry of a request that ended without a final response part."""
        if self.recorded:
            return
        self.recorded = True
        self.status = self.status or 499
        try:
            self.ledger.record_request(self._record())
        except Exception as exc:  # a closed ledger at shutdown
            log.warning("audit entry dropped", extra={"error": str(exc)})

    def _note_usage(self, body: bytes) -> None:
        match = _USAGE.search(body)
        if match is None:
            return
        try:
            usage = json.loads(match.group(1))
        except ValueError:
            return
        if isinstance(usage, dict):
            self.usage = usage

    def _record(self) -> RequestRecord:
        ctx = context_of(self.scope)
        route = getattr(self.scope.get("route"), "path", None) or "unmatched"
        usage = self.usage or (ctx.usage if ctx else None) or {}
        return RequestRecord(
            request_id=(ctx.request_id if ctx else "") or self.request_id,
            method=str(self.scope.get("method", "")),
            path=str(self.scope.get("path", "")),
            route=str(route),
            status=self.status,
            latency_ms=round((time.perf_counter() - self.start) * 1000, 3),
            request_sha256=self.req_hash.hexdigest(),
            response_sha256=self.resp_hash.hexdigest(),
            request_bytes=self.req_bytes,
            response_bytes=self.resp_bytes,
            started=self.started,
            key_id=key_id_of(self.scope),
            model=(ctx.model if ctx else "") or None,
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
            request_body=b"".join(self.req_kept) if self.keep else None,
            response_body=b"".join(self.resp_kept) if self.keep else None,
        )


def _keep(kept: list[bytes], chunk: bytes, limit: int) -> None:
    room = limit - sum(len(c) for c in kept)
    if room > 0 and chunk:
        kept.append(chunk[:room])


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
