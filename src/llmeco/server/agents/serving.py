"""``model: "agent:<name>"`` on ``/v1/chat/completions``: an agent answers.

The response is a normal chat completion — the agent's answer as the assistant message —
plus ``agent_steps``: each tool the agent ran (``step`` (model turn), ``id``, ``tool``,
``arguments`` (JSON text), ``ok``, ``result`` (what the model read; ``{"error": ...}`` for a
failure), ``duration_ms``, and ``error`` when not ok). ``finish_reason`` is ``stop`` (the
model answered), ``length`` (``max_tokens`` or the context cut it short) or ``max_steps`` (the
profile's turn limit was reached while the model still called tools; the answer is what it
wrote so far, or a sentence saying so).

Streamed, the answer arrives as ordinary content deltas, so OpenAI clients just see it; each
tool execution arrives as a chunk with an empty delta and an llmeco extra field
``agent_step`` (the same object as in ``agent_steps``), as soon as it ends. The first model
turn has started before the 200 is sent, so a limit, a context overflow or a model the key
may not use is still an HTTP error; later failures arrive as an SSE error event.

The request may set ``temperature``, ``max_tokens`` / ``max_completion_tokens`` (per model
turn), ``seed``, ``user`` and the streaming options; the conversation holds system, user and
assistant text (the profile's system prompt comes first). Anything else an agent cannot
honour — ``tools`` (it brings its own), ``n`` > 1, logprobs, ``response_format``, ``stop`` … —
is a 400 naming the parameter. Governance: see :mod:`llmeco.server.agents`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from llmeco.apps.agents import (
    AGENT_PREFIX,
    AgentEvent,
    AgentHub,
    AgentLoop,
    AgentResult,
    AgentStep,
    AnswerDelta,
    ToolContext,
)
from llmeco.errors import InvalidRequest
from llmeco.server.agents.audit import LedgerObserver
from llmeco.server.agents.runner import RequestRunner
from llmeco.server.auth import current_key
from llmeco.server.errors import describe
from llmeco.server.openai.chat.protocol import ChatCompletionRequest
from llmeco.server.openai.models.protocol import ModelCard
from llmeco.server.openai.shared import usage
from llmeco.server.state import ServerState, get_context
from llmeco.server.streaming import DONE, EventStream, chat_chunk, sse, until_disconnected

#: Request fields an agent honours; any other field set to a non-default value is a 400.
HONOURED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "user",
    }
)


class AgentChat:
    """The agents of a server as the chat backend of ``agent:<name>`` models."""

    prefix = AGENT_PREFIX

    def __init__(self, hub: AgentHub) -> None:
        self.hub = hub

    def model_cards(self, state: ServerState) -> list[ModelCard]:
        """``agent:<name>`` for every agent whose model is served (task ``agent``)."""
        cards = []
        for agent in self.hub.agents.values():
            model = agent.profile.model
            name = state.aliases.get(model, model) if model else next(iter(state.engines), None)
            engine = state.engines.get(name) if name else None
            if engine is None:
                continue
            cards.append(
                ModelCard(
                    id=agent.model_name,
                    created=state.started,
                    max_model_len=engine.model_info.max_model_len,
                    task="agent",
                )
            )
        return cards

    async def create(
        self, state: ServerState, req: ChatCompletionRequest, request: Request
    ) -> Response:
        """Run the agent on the request's conversation (JSON, or SSE when streamed)."""
        state.check_model(req.model)  # 403 before 404: no existence leak
        agent = self.hub.get(req.model[len(self.prefix) :])
        _check_request(req)
        ctx = get_context(request)
        ctx.model = req.model
        ctx.user = req.user or ""
        runner = RequestRunner(state, request, agent.profile.model)
        key = current_key(request)
        observer = (
            LedgerObserver(state.ledger, key.id if key else None, ctx.request_id, agent.model_name)
            if state.ledger is not None
            else None
        )
        loop = AgentLoop(
            agent.profile,
            agent.tools,
            runner,
            ToolContext(agent.name, ctx.request_id, runner),
            observer,
            max_tokens=req.max_completion_tokens or req.max_tokens,
            temperature=req.temperature,
            seed=req.seed,
        )
        events = loop.run(_messages(req))
        rid = f"chatcmpl-{ctx.request_id}"
        created = int(time.time())
        if req.stream:
            first = await until_disconnected(_first_turn_started(events, runner), request)

            async def close() -> None:  # the loop may still run in the task it started in
                if not first.done():
                    first.cancel()
                    with contextlib.suppress(BaseException):
                        await first
                await events.aclose()

            return EventStream(_sse(first, events, rid, req, created), close)
        try:
            result = await until_disconnected(_collect(events), request)
        finally:
            await events.aclose()
        return _json(rid, req.model, created, result)


def _check_request(req: ChatCompletionRequest) -> None:
    """400 for any parameter the agent cannot honour (set to a non-default value)."""
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest(
            "stream_options is only allowed when stream is true", param="stream_options"
        )
    fields = type(req).model_fields
    for name in sorted(req.model_fields_set - HONOURED):
        if getattr(req, name) != fields[name].get_default(call_default_factory=True):
            raise InvalidRequest(
                f"{name} is not supported by agents (they bring their own tools and answer "
                "with one text choice); remove it",
                param=name,
            )
    for i, m in enumerate(req.messages):
        if m.role in ("tool", "function") or m.tool_calls or m.function_call:
            raise InvalidRequest(
                "an agent's conversation holds system, user and assistant text only; its "
                "tool calls happen inside the agent",
                param=f"messages.{i}",
            )


def _messages(req: ChatCompletionRequest) -> list[dict[str, Any]]:
    return [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in req.messages
    ]


async def _collect(events: AsyncIterator[AgentEvent]) -> AgentResult:
    async for event in events:
        if isinstance(event, AgentResult):
            return event
    raise AssertionError("the agent loop ended without a result")  # pragma: no cover


async def _first_turn_started(
    events: AsyncGenerator[AgentEvent, None], runner: RequestRunner
) -> asyncio.Future[AgentEvent]:
    """Start the loop and wait until its first model turn generates (or it fails: then the
    error is raised here, before the 200); the future of its first event."""
    first = asyncio.ensure_future(anext(events))
    started = asyncio.ensure_future(runner.started.wait())
    try:
        await asyncio.wait({first, started}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        first.cancel()
        raise
    finally:
        started.cancel()
    failed = first.exception() if first.done() else None
    if failed is not None:
        raise failed
    return first


async def _sse(
    first: asyncio.Future[AgentEvent],
    events: AsyncIterator[AgentEvent],
    rid: str,
    req: ChatCompletionRequest,
    created: int,
) -> AsyncIterator[bytes]:
    model = req.model
    try:
        yield sse(chat_chunk(rid, model, created, {"role": "assistant", "content": ""}, None))
        event: AgentEvent = await first
        while True:
            if isinstance(event, AnswerDelta):
                yield sse(chat_chunk(rid, model, created, {"content": event.text}, None))
            elif isinstance(event, AgentStep):
                step = {**chat_chunk(rid, model, created, {}, None), "agent_step": event.to_dict()}
                yield sse(step)
            else:
                yield sse(chat_chunk(rid, model, created, {}, event.finish_reason))
                if req.include_usage:
                    total = usage(event.prompt_tokens, event.completion_tokens).model_dump()
                    yield sse(
                        {**chat_chunk(rid, model, created, {}, None), "choices": [], "usage": total}
                    )
                break
            event = await anext(events)
    except Exception as exc:  # after the 200 went out, errors travel as an SSE event
        yield sse(describe(exc)[1])
    yield DONE


def _json(rid: str, model: str, created: int, result: AgentResult) -> Response:
    body = {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer, "refusal": None},
                "logprobs": None,
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage(result.prompt_tokens, result.completion_tokens).model_dump(),
        "system_fingerprint": None,
        "agent_steps": [step.to_dict() for step in result.steps],
    }
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")
