"""Models served by other OpenAI-compatible servers: governance in front, their bytes back.

For a request whose ``model`` names an upstream (``--upstream`` / ``--models-config``),
``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings`` hand the request to
:class:`UpstreamGateway` after the usual parsing and validation. Everything the server does
for its own models still applies, in front: the auth middleware's key, scope and RPM checks,
the key's model allow-list (403; a fallback the key may not use is skipped), TPM and daily
budget (429; ``max_tokens`` is capped at the budget left), the audit ledger (with the
request's token counts) and the metrics. Then the client's own JSON body — the model name
swapped for the upstream's — goes upstream, and the upstream's JSON or SSE bytes come back
unchanged (see :mod:`~llmeco.server.gateway.relay` for the two events a stream may lose).

Token accounting: an estimate (a quarter of the prompt's characters, plus a few tokens per
chat message) is reserved before the call, so limits refuse early; when the answer is in,
the key is charged what the upstream's ``usage`` reports (streams ask the upstream for
``include_usage`` and strip that chunk if the client did not ask for it), or — when the
upstream reports none — tokens counted with the packaged default model's tokenizer (exact
for the default model, an approximation for others). A call that never ran is refunded.
The estimate can be low (a chat template adds tokens the gateway does not see), so a budget
may be overshot by that difference on the request that exhausts it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from llmeco.engine.backends.remote import UpstreamReply, UpstreamSet
from llmeco.errors import EngineDead, InvalidRequest, LlmecoError, UpstreamError
from llmeco.server.errors import describe, payload
from llmeco.server.gateway.relay import SseRelay, choice_text, usage_of
from llmeco.server.openai.models.protocol import ModelCard
from llmeco.server.state import (
    RequestContext,
    RequestGuard,
    ServerState,
    get_context,
    request_guard,
)
from llmeco.server.streaming import DONE, EventStream, sse, until_disconnected

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from llmeco.server.openai.chat.protocol import ChatCompletionRequest
    from llmeco.settings import Settings


class TokenCounter:
    """Counts tokens with the packaged default model's tokenizer, loaded on first use (only
    needed when an upstream reports no usage, so a gateway starts without it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._lock = asyncio.Lock()

    def _load(self) -> PreTrainedTokenizerBase:
        from llmeco.modeling.load import load_tokenizer, resolve_model

        return load_tokenizer(resolve_model("default", self.settings).path)

    async def count(self, text: str) -> int:
        """Tokens of ``text`` (0 for empty text)."""
        if not text:
            return 0
        async with self._lock:
            if self._tokenizer is None:
                self._tokenizer = await asyncio.to_thread(self._load)
        return len(self._tokenizer.encode(text, add_special_tokens=False))


def estimate_tokens(kind: str, body: dict[str, Any], text: str) -> int:
    """A cheap guess of a request's prompt tokens, reserved before the upstream answers
    (a quarter of the characters, plus 4 per chat message for its template)."""
    messages = body.get("messages") if kind == "chat" else None
    overhead = 4 * len(messages) + 3 if isinstance(messages, list) else 0
    return max(1, len(text) // 4) + overhead


def prompt_text(kind: str, body: dict[str, Any]) -> str:
    """The text a request sends (chat messages, completion prompts, embedding inputs)."""
    if kind == "chat":
        parts: list[str] = []
        for message in body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
        for tool in body.get("tools") or []:
            parts.append(json.dumps(tool))
        return "\n".join(parts)
    value = body.get("prompt" if kind == "completion" else "input")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(x for x in value if isinstance(x, str))
    return ""


def _token_ids(kind: str, body: dict[str, Any]) -> int:
    """How many tokens a request sends as token ids (completions/embeddings accept them)."""
    value = body.get("prompt" if kind == "completion" else "input")
    if isinstance(value, list) and value and isinstance(value[0], int):
        return len(value)
    if isinstance(value, list):
        return sum(len(x) for x in value if isinstance(x, list))
    return 0


@dataclass
class _Account:
    """The tokens one relayed request is charged: an estimate first, settled once."""

    gateway: UpstreamGateway
    state: ServerState
    guard: RequestGuard | None
    name: str
    kind: str
    estimate: int
    prompt: str
    #: Prompt tokens sent as token ids (counted exactly, not by the tokenizer).
    id_tokens: int = 0
    settled: bool = False

    async def refund(self) -> None:
        """The call never ran: give the estimate back."""
        if not self.settled:
            self.settled = True
            if self.guard is not None:
                await self.guard.refund(self.estimate)

    async def settle(self, usage: dict[str, int] | None, output: str) -> dict[str, int] | None:
        """Charge what the upstream reports (or what the tokenizer counts); the usage."""
        if self.settled:
            return None
        self.settled = True
        counter = self.gateway.counter
        if usage is not None:
            p = usage.get("prompt_tokens", 0)
            c = usage.get("completion_tokens", max(0, usage.get("total_tokens", p) - p))
        else:
            p = await counter.count(self.prompt) + self.id_tokens
            c = await counter.count(output)
        if self.guard is not None:
            if p < self.estimate:
                await self.guard.refund(self.estimate - p)
            extra = max(0, p - self.estimate) + c
            if extra:
                await self.guard.consume(extra)
        metrics = self.state.metrics
        metrics.prompt_tokens.labels(self.name).inc(p)
        metrics.generation_tokens.labels(self.name).inc(c)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _error_response(reply: UpstreamReply) -> Response:
    """An upstream's 4xx/5xx answer, relayed; a body that is not OpenAI-shaped is wrapped."""
    document = reply.json()
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        return Response(reply.body, reply.status, media_type="application/json")
    message = reply.body.decode(errors="replace").strip() or f"upstream answered {reply.status}"
    if isinstance(document, dict) and isinstance(document.get("detail"), str):
        message = document["detail"]
    kind = "invalid_request_error" if reply.status < 500 else "server_error"
    body = json.dumps(payload(f"upstream {reply.upstream!r}: {message}", kind))
    return Response(body, reply.status, media_type="application/json")


class UpstreamGateway:
    """Answers chat, completions and embeddings for the upstream models of one server.

    It is the chat backend of every upstream name (matched exactly, not by prefix: see
    ``ServerState.chat_backend``) and the completions/embeddings handler of the same names.
    """

    #: Unused: upstream models are matched by exact name (:meth:`serves`).
    prefix = ""

    def __init__(self, upstreams: UpstreamSet, counter: TokenCounter) -> None:
        self.upstreams = upstreams
        self.counter = counter

    def serves(self, model: str) -> bool:
        """Whether ``model`` names an upstream model."""
        return model in self.upstreams.models

    def model_cards(self, state: ServerState) -> list[ModelCard]:
        """One card per upstream model (``owned_by``: the upstream's name)."""
        return [
            ModelCard(
                id=m.name,
                created=m.created,
                owned_by=m.spec.owner,
                max_model_len=m.max_model_len,
                root=m.spec.upstream_model,
            )
            for m in self.upstreams.models.values()
        ]

    async def create(
        self, state: ServerState, req: ChatCompletionRequest, request: Request
    ) -> Response:
        """``/v1/chat/completions`` for an upstream model."""
        return await self.relay(state, request, "chat", "/chat/completions")

    async def relay(self, state: ServerState, request: Request, kind: str, path: str) -> Response:
        """Check, charge and relay one request of ``kind`` (chat, completion, embedding)."""
        if state.draining:
            raise EngineDead("the server is shutting down; retry on another replica")
        body = json.loads(await request.body())
        name = str(body["model"])
        ctx = get_context(request)
        ctx.model = name
        ctx.user = str(body.get("user") or "")
        guard = request_guard.get()
        if guard is not None:
            guard.check_model({name})
        stream = bool(body.get("stream")) and kind != "embedding"
        if body.get("stream_options") is not None and not stream:
            raise InvalidRequest(
                "stream_options is only allowed when stream is true", param="stream_options"
            )
        text = prompt_text(kind, body)
        ids = _token_ids(kind, body)
        estimate = estimate_tokens(kind, body, text) + ids
        left = None
        if guard is not None:
            left = await guard.reserve(estimate, room=0 if kind == "embedding" else 1)
        account = _Account(self, state, guard, name, kind, estimate, text, ids)
        outgoing = dict(body)
        if left is not None and kind != "embedding":
            _cap_max_tokens(outgoing, left, kind)
        client_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if stream and not client_usage:
            outgoing["stream_options"] = {
                **(body.get("stream_options") or {}),
                "include_usage": True,
            }

        def allowed(model: str) -> bool:
            return guard is None or guard.allows_model({model})

        send = self.upstreams.send(
            name, path, outgoing, stream=stream, request_id=ctx.request_id, allowed=allowed
        )
        try:
            reply = await until_disconnected(send, request)
        except BaseException:
            await account.refund()
            raise
        if reply.status >= 400:
            await reply.aclose()
            await account.refund()
            return _error_response(reply)
        if reply.chunks is None:
            return await self._whole(reply, account, ctx)
        return EventStream(
            self._events(reply, account, strip=not client_usage, ctx=ctx), reply.aclose
        )

    async def _whole(
        self, reply: UpstreamReply, account: _Account, ctx: RequestContext
    ) -> Response:
        document = reply.json()
        usage = usage_of(document)
        settled = await account.settle(usage, choice_text(document))
        if usage is None:
            ctx.usage = settled  # the ledger's token counts (the body has none)
        return Response(reply.body, reply.status, media_type=reply.content_type)

    async def _events(
        self, reply: UpstreamReply, account: _Account, *, strip: bool, ctx: RequestContext
    ) -> AsyncIterator[bytes]:
        relay = SseRelay(strip_usage=strip)
        assert reply.chunks is not None
        try:
            async for event in self._relayed(reply, relay):
                yield event
        except Exception as exc:  # after the 200 went out, errors travel as an SSE event
            error = exc if isinstance(exc, LlmecoError) else UpstreamError(str(exc))
            ctx.usage = await account.settle(relay.usage, relay.text())
            yield sse(describe(error)[1])
            yield DONE
            return
        except BaseException:  # the client left mid-stream: charge what was generated so far
            await account.settle(relay.usage, relay.text())
            raise
        ctx.usage = await account.settle(relay.usage, relay.text())
        assert relay.done is not None
        yield relay.done

    async def _relayed(self, reply: UpstreamReply, relay: SseRelay) -> AsyncIterator[bytes]:
        """The events to send, up to (not including) ``[DONE]``; raises if it never came."""
        assert reply.chunks is not None
        first = relay.feed(reply.body)
        if first:
            yield first
        async for chunk in reply.chunks:
            out = relay.feed(chunk)
            if out:
                yield out
        tail = relay.flush()
        if tail:
            yield tail
        if relay.done is None:
            raise UpstreamError(
                f"upstream {reply.upstream!r} ended the stream without [DONE]; "
                "the response is incomplete"
            )


def _cap_max_tokens(body: dict[str, Any], left: int, kind: str) -> None:
    """Lower the request's output limit to the daily budget left (shared by its choices)."""
    n = body.get("n")
    choices = n if isinstance(n, int) and n > 0 else 1
    prompts = body.get("prompt")
    if kind == "completion" and isinstance(prompts, list) and prompts:
        choices *= 1 if isinstance(prompts[0], int) else len(prompts)
    share = max(1, left // choices)
    field = "max_tokens"
    if kind == "chat" and "max_completion_tokens" in body:
        field = "max_completion_tokens"
    current = body.get(field)
    if not isinstance(current, int) or current > share:
        body[field] = share
