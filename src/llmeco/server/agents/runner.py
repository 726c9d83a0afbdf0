"""What an agent uses while it serves one request, governed by the caller's API key.

:class:`RequestRunner` is both the agent's :class:`~llmeco.apps.agents.StepModel` (one
generation per model turn) and its :class:`~llmeco.apps.agents.AgentServices` (knowledge
bases, task prompts). Every generation goes through the server's
:class:`~llmeco.server.generation.Generation`, as :mod:`llmeco.server.apprun` does for the
other apps: the model is resolved on every turn (the key's model allow-list → 403, a
draining server → 503, a hot-swapped model's current version), the prompt is charged to the
key's TPM and daily budget before it runs (429 over a limit) and output tokens as they come,
and the engine metrics count it. A knowledge base is governed like model ``support:<kb>``
(403 unless the key's allow-list permits it), as on ``/mcp``.

It runs with a copy of the request whose ``receive`` never reports a disconnect: the SSE
response (or, not streamed, :func:`~llmeco.server.streaming.until_disconnected` around the
whole loop) is what watches the client, and cancelling the loop aborts the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator

import anyio
from starlette.requests import Request
from starlette.types import Message

from llmeco.apps.spec import PromptSpec
from llmeco.apps.support.desk import PREFIX as SUPPORT_PREFIX
from llmeco.engine.protocol import EngineClient
from llmeco.engine.request import ChatPrompt, SamplingParams
from llmeco.errors import ContextLengthExceeded, EngineDead, NotFound
from llmeco.rag.kb import KnowledgeBase
from llmeco.server.generation import Generation
from llmeco.server.state import RequestGuard, ServerState, get_context, request_guard

#: Generation length of a task tool whose spec leaves it open (as the task endpoints).
TASK_MAX_TOKENS = 512


async def _never_disconnects() -> Message:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


def quiet_request(request: Request) -> Request:
    """``request``'s scope (its context, its key) with a ``receive`` that never ends."""
    return Request(request.scope, _never_disconnects)


class RequestRunner:
    """An agent's model turns and services within one request (see the module doc)."""

    def __init__(self, state: ServerState, request: Request, model: str | None) -> None:
        """Resolve the agent's model now, so a model the key may not use is a 403 before
        anything is sent."""
        self.state = state
        self.request = quiet_request(request)
        self.guard: RequestGuard | None = request_guard.get()
        if model is None:
            if not state.engines:
                raise NotFound("no generation model is served", param="model")
            model = next(iter(state.engines))
        self.model = model
        _, engine = self._engine()
        self.tool_parser = engine.model_info.tool_parser
        self.prompt_tokens = 0
        self.completion_tokens = 0
        #: Set once a generation has started (its first output came): the point after which
        #: a streamed response may go out.
        self.started = asyncio.Event()

    @contextlib.contextmanager
    def _governed(self) -> Iterator[None]:
        """The caller's guard as the request guard (the loop may run in another task)."""
        token = request_guard.set(self.guard)
        try:
            yield
        finally:
            request_guard.reset(token)

    def _engine(self) -> tuple[str, EngineClient]:
        with self._governed():
            return self.state.engine(self.model)

    async def generate(
        self, prompt: ChatPrompt, params: SamplingParams
    ) -> AsyncGenerator[tuple[str, str | None], None]:
        """One model turn; ``max_tokens`` capped at the context room left (400 when none)."""
        name, engine = self._engine()
        ids = engine.encode(prompt)
        context = engine.model_info.max_model_len
        room = context - len(ids)
        if room < 1:
            raise ContextLengthExceeded(len(ids), params.max_tokens or 1, context)
        params.max_tokens = min(params.max_tokens or room, room)
        with self._governed():
            gen = Generation(
                engine, params, get_context(self.request).request_id, self.state.metrics.timer(name)
            )
        try:
            await gen.start([ids], self.request)
            self.started.set()
            async for index, delta in gen.deltas():
                if index == 0:
                    yield delta.text, delta.finish_reason
        finally:
            self.prompt_tokens += gen.prompt_tokens
            self.completion_tokens += gen.completion_tokens
            await gen.close()

    async def run_task(self, spec: PromptSpec) -> str:
        """A task tool's prompt on the agent's model, under the caller's limits."""
        params = spec.params
        params.max_tokens = params.max_tokens or TASK_MAX_TOKENS
        pieces = []
        async with contextlib.aclosing(self.generate(ChatPrompt(spec.messages), params)) as out:
            async for text, _ in out:
                pieces.append(text)
        return "".join(pieces)

    async def knowledge_base(self, name: str) -> KnowledgeBase:
        """Knowledge base ``name`` if the key may use ``support:<name>`` (403 first, then 404:
        no existence leak)."""
        state = self.state
        if state.draining:
            raise EngineDead("the server is shutting down; retry on another replica")
        with self._governed():
            state.check_model(SUPPORT_PREFIX + name)
        desk = state.support
        if desk is None:
            raise NotFound("knowledge-base search is not enabled on this server", param="kb")
        return await anyio.to_thread.run_sync(desk.knowledge_base, name)
