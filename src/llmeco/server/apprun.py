"""Running an app's :class:`~llmeco.apps.spec.PromptSpec` inside a request.

Task and writing endpoints go through the same :class:`Generation` as chat completions, so they
get the same context-length checks, 429s, cancellation on disconnect, metrics and accounting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import Request

from llmeco.apps.spec import PromptSpec
from llmeco.engine.protocol import EngineClient
from llmeco.engine.request import ChatPrompt
from llmeco.errors import NotFound
from llmeco.server.generation import Generation, resolve_max_tokens
from llmeco.server.state import ServerState, get_context

#: Generation length when an app request does not set ``max_tokens``.
DEFAULT_MAX_TOKENS = 512


@dataclass
class AppCall:
    """A started generation for one spec, on the engine it resolved to."""

    name: str
    engine: EngineClient
    generation: Generation

    async def text(self, request: Request) -> str:
        """Run to the end; the first choice's whole text."""
        try:
            results = await self.generation.collect(request)
        finally:
            await self.generation.close()
        return "".join(results[0].text)

    async def pieces(self) -> AsyncIterator[tuple[str, str | None]]:
        """``(text, finish_reason)`` deltas of the first choice as they come."""
        async for index, delta in self.generation.deltas():
            if index == 0:
                yield delta.text, delta.finish_reason


async def start(
    state: ServerState, request: Request, model: str | None, spec: PromptSpec
) -> AppCall:
    """Resolve ``model`` (default: the first served), check the context, submit ``spec``."""
    if model is None:
        if not state.engines:
            raise NotFound("no generation model is served", param="model")
        model = next(iter(state.engines))
    name, engine = state.engine(model)
    ctx = get_context(request)
    ctx.model = name
    ids = engine.encode(ChatPrompt(spec.messages))
    params = spec.params
    context = engine.model_info.max_model_len
    if params.max_tokens is None:  # the caller left it open: the app's cap, within the context
        params.max_tokens = min(DEFAULT_MAX_TOKENS, resolve_max_tokens(context, len(ids), None))
    else:
        params.max_tokens = resolve_max_tokens(context, len(ids), params.max_tokens)
    gen = Generation(engine, params, ctx.request_id, state.metrics.timer(name))
    await gen.start([ids], request)
    return AppCall(name, engine, gen)
