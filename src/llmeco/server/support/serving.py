"""``model: "support:<kb>"`` on ``/v1/chat/completions``: the support assistant.

The response is a normal chat completion (any OpenAI client reads it) with two extra top-level
fields: ``citations`` (the passages the answer cites, numbered as in its ``[n]`` markers) and
``session_id``; a hand-off has ``finish_reason: "handoff"`` and a ``handoff`` object. Streamed,
the first chunk carries ``citations`` and ``session_id``, so a client can render links as the
answer arrives; the answer itself arrives a sentence at a time, because each sentence is
checked against the passages (``apps.support.Grounder``) before it is shown, which keeps the
streamed answer identical to the plain one. The session comes from the ``x-session-id``
header, else the ``user`` field, else a new one (returned in the ``x-session-id`` response header).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from llmeco.apps.conversations import Origin
from llmeco.apps.support import HANDOFF_MESSAGE, Grounder, SupportTurn, ground, plan_turn
from llmeco.apps.support.desk import PREFIX, SupportDesk
from llmeco.errors import InvalidRequest, NotFound
from llmeco.observability import tracing
from llmeco.server import apprun
from llmeco.server.audit import key_id_of
from llmeco.server.errors import describe
from llmeco.server.openai.chat.protocol import ChatCompletionRequest
from llmeco.server.openai.models.protocol import ModelCard
from llmeco.server.openai.shared import usage
from llmeco.server.state import ServerState, get_context
from llmeco.server.streaming import DONE, EventStream, chat_chunk, sse

#: Longest answer when the request does not say.
DEFAULT_MAX_TOKENS = 200
#: The ``app`` label of the support assistant's metrics (turns, hand-offs, feedback).
APP = "support"


def desk_of(state: ServerState) -> SupportDesk:
    """The server's support desk; 404 when the server runs without one."""
    desk = state.support
    if desk is None:
        raise NotFound(
            "the support assistant is not enabled on this server (it needs the project store "
            "and the embedding model)",
            param="model",
        )
    return desk


class SupportChat:
    """The support assistant as the chat backend of ``support:<kb>`` models."""

    prefix = PREFIX

    async def create(
        self, state: ServerState, req: ChatCompletionRequest, request: Request
    ) -> Response:
        """Answer (or hand off) one support turn."""
        return await support_chat(state, req, request)

    def model_cards(self, state: ServerState) -> list[ModelCard]:
        """``support:<kb>`` for every knowledge base (none without a desk or a model)."""
        if state.support is None or not state.engines:
            return []
        first = next(iter(state.engines.values())).model_info
        return [
            ModelCard(
                id=name, created=state.started, max_model_len=first.max_model_len, task="support"
            )
            for name in state.support.model_names()
        ]


async def support_chat(
    state: ServerState, req: ChatCompletionRequest, request: Request
) -> Response:
    """Answer (or hand off) one support turn."""
    desk = desk_of(state)
    kb_name = req.model[len(PREFIX) :]
    if req.n != 1 or req.logprobs or req.response_format is not None:
        raise InvalidRequest(
            "the support assistant answers with one plain-text choice (n=1, no logprobs, "
            "no response_format)",
            param="model",
        )
    if req.tools or req.functions:
        raise InvalidRequest(
            "the support assistant does not call client tools; send tools to a plain model "
            "or to an agent (model `agent:NAME`)",
            param="tools" if req.tools else "functions",
        )
    kb = desk.knowledge_base(kb_name)
    ctx = get_context(request)
    ctx.user = req.user or ""
    session = request.headers.get("x-session-id") or req.user or uuid.uuid4().hex
    if len(session) > 128:
        raise InvalidRequest("x-session-id is longer than 128 characters", param="x-session-id")
    if len(req.user or "") > 256:  # stored (to find the user's records again) up to 256
        raise InvalidRequest("user is longer than 256 characters", param="user")
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    if sum(m["role"] == "user" for m in messages) <= 1:  # a client that sends only the new turn
        with tracing.span("conversation.history"):
            history = await anyio.to_thread.run_sync(desk.log.history, session)
        messages = [*history, *[m for m in messages if m["role"] != "system"]]
    max_tokens = req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS
    with tracing.span("retrieval", **{"llmeco.kb": kb_name}):
        turn: SupportTurn = await anyio.to_thread.run_sync(
            lambda: plan_turn(
                messages,
                kb,
                desk.sentence_embedder,
                company=desk.company,
                max_tokens=max_tokens,
                temperature=0.0 if req.temperature is None else req.temperature,
                seed=req.seed,
                gate=desk.gate(kb_name),
            )
        )
    rid = f"chatcmpl-{ctx.request_id}"
    origin = Origin(key_id_of(request.scope), req.user or None, ctx.request_id)
    # The log keeps what the user wrote, not the retrieval query (which may prepend the
    # previous question to a short follow-up): it is the session's history and, through
    # feedback, training data.
    said = next((m["content"] for m in reversed(messages) if m["role"] == "user"), turn.query)
    extra: dict[str, Any] = {
        "session_id": session,
        "citations": [c.to_dict() for c in turn.citations],
    }
    headers = {"x-session-id": session}
    created = int(time.time())
    state.metrics.app_turns.labels(APP).inc()
    if turn.spec is None:
        state.metrics.app_handoffs.labels(APP).inc()
        ctx.model = req.model
        handoff_id = await anyio.to_thread.run_sync(
            lambda: desk.log.record_handoff(
                kb_name, session, rid, turn.query, turn.handoff_reason or "", origin
            )
        )
        await anyio.to_thread.run_sync(
            desk.log.record_turn, session, kb_name, said, HANDOFF_MESSAGE, rid, origin
        )
        extra["handoff"] = {"id": handoff_id, "reason": turn.handoff_reason}
        if req.stream:
            return EventStream(
                _canned(rid, req.model, created, extra, req.include_usage),
                _noop,
                headers=headers,
            )
        return _json(rid, req.model, created, HANDOFF_MESSAGE, "handoff", (0, 0), extra, headers)
    call = await apprun.start(state, request, desk.model, turn.spec)
    ctx.model = req.model
    if req.stream:
        return EventStream(
            _events(call, turn, desk, kb_name, session, said, rid, origin, req, created, extra),
            call.generation.close,
            headers=headers,
        )
    raw = await call.text(request)
    with tracing.span("grounding"):
        text = await anyio.to_thread.run_sync(ground, raw, turn, desk.sentence_embedder)
    gen = call.generation
    with tracing.span("conversation.record"):
        await anyio.to_thread.run_sync(
            desk.log.record_turn, session, kb_name, said, text, rid, origin
        )
    finish = "stop"
    return _json(
        rid,
        req.model,
        created,
        text,
        finish,
        (gen.prompt_tokens, gen.completion_tokens),
        extra,
        headers,
    )


async def _noop() -> None:
    return None


def _json(
    rid: str,
    model: str,
    created: int,
    text: str,
    finish: str,
    tokens: tuple[int, int],
    extra: dict[str, Any],
    headers: dict[str, str],
) -> Response:
    import json

    body = {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage(*tokens).model_dump(),
        "system_fingerprint": None,
        **extra,
    }
    return Response(
        json.dumps(body, ensure_ascii=False), media_type="application/json", headers=headers
    )


async def _canned(
    rid: str, model: str, created: int, extra: dict[str, Any], include_usage: bool
) -> AsyncIterator[bytes]:
    yield sse(
        {**chat_chunk(rid, model, created, {"role": "assistant", "content": ""}, None), **extra}
    )
    yield sse(chat_chunk(rid, model, created, {"content": HANDOFF_MESSAGE}, None))
    yield sse(chat_chunk(rid, model, created, {}, "handoff"))
    if include_usage:
        yield sse(
            {
                **chat_chunk(rid, model, created, {}, None),
                "choices": [],
                "usage": usage(0, 0).model_dump(),
            }
        )
    yield DONE


async def _events(
    call: apprun.AppCall,
    turn: SupportTurn,
    desk: SupportDesk,
    kb_name: str,
    session: str,
    said: str,
    rid: str,
    origin: Origin,
    req: ChatCompletionRequest,
    created: int,
    extra: dict[str, Any],
) -> AsyncIterator[bytes]:
    model = req.model
    yield sse(
        {**chat_chunk(rid, model, created, {"role": "assistant", "content": ""}, None), **extra}
    )
    parts: list[str] = []
    finish: str | None = None
    grounder = Grounder(turn, desk.sentence_embedder)
    try:
        async for text, reason in call.pieces():
            ready = await anyio.to_thread.run_sync(grounder.feed, text) if text else ""
            if ready:
                parts.append(ready)
                yield sse(chat_chunk(rid, model, created, {"content": ready}, None))
            finish = reason or finish
        rest = await anyio.to_thread.run_sync(grounder.finish)
        if rest:
            parts.append(rest)
            yield sse(chat_chunk(rid, model, created, {"content": rest}, None))
        yield sse(chat_chunk(rid, model, created, {}, finish or "stop"))
        gen = call.generation
        if req.include_usage:
            final = usage(gen.prompt_tokens, gen.completion_tokens).model_dump()
            yield sse({**chat_chunk(rid, model, created, {}, None), "choices": [], "usage": final})
        answer = "".join(parts)
        await anyio.to_thread.run_sync(
            desk.log.record_turn, session, kb_name, said, answer, rid, origin
        )
    except Exception as exc:  # after the 200 went out, errors travel as an SSE event
        yield sse(describe(exc)[1])
    yield DONE
