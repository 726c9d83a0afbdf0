"""Chat completions over any :class:`~llmeco.engine.protocol.EngineClient`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from llmeco.engine.request import ChatPrompt
from llmeco.errors import InvalidRequest
from llmeco.server.errors import describe
from llmeco.server.generation import Generation, chat_logprobs, resolve_max_tokens
from llmeco.server.openai.chat.protocol import (
    ChatCompletionChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
)
from llmeco.server.openai.shared import usage
from llmeco.server.state import ServerState, get_context
from llmeco.server.streaming import DONE, Chunks, EventStream, sse


def _requested_max_tokens(req: ChatCompletionRequest) -> int | None:
    a, b = req.max_tokens, req.max_completion_tokens
    if a is not None and b is not None and a != b:
        raise InvalidRequest(
            f"max_tokens ({a}) and max_completion_tokens ({b}) disagree; send only one",
            param="max_completion_tokens",
        )
    return b if b is not None else a


class OpenAIServingChat:
    """Turns a chat request into engine requests and the result into OpenAI's shapes."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def create(self, req: ChatCompletionRequest, request: Request) -> Response:
        """Serve one request: a JSON response, or an SSE stream when ``stream`` is true."""
        backend = self.state.chat_backend(req.model)
        if backend is not None:
            return await backend.create(self.state, req, request)
        name, engine = self.state.engine(req.model)
        ctx = get_context(request)
        ctx.model = name
        ctx.user = req.user or ""
        info = engine.model_info
        req.check(info.vocab_size)
        if req.top_logprobs is not None and not req.logprobs:
            raise InvalidRequest("top_logprobs requires logprobs to be true", param="top_logprobs")
        messages = [
            {
                "role": "system" if m.role == "developer" else m.role,
                "content": m.text(),
                **({"name": m.name} if m.name else {}),
            }
            for m in req.messages
        ]
        ids = engine.encode(ChatPrompt(messages, add_generation_prompt=req.add_generation_prompt))
        max_tokens = resolve_max_tokens(info.max_model_len, len(ids), _requested_max_tokens(req))
        top = req.top_logprobs or 0
        params = req.sampling_params(max_tokens, top if req.logprobs else None)
        gen = Generation(engine, params, ctx.request_id, self.state.metrics.timer(name))
        await gen.start([ids], request)
        response_id = f"chatcmpl-{ctx.request_id}"
        created = int(time.time())
        if req.stream:
            return EventStream(self._events(gen, req, name, response_id, created), gen.close)
        try:
            results = await gen.collect(request)
        finally:
            await gen.close()
        body = ChatCompletionResponse(
            id=response_id,
            created=created,
            model=name,
            choices=[
                ChatCompletionChoice(
                    index=r.index,
                    message=ChatCompletionMessage(content="".join(r.text)),
                    logprobs=chat_logprobs(r.logprobs, top) if req.logprobs else None,
                    finish_reason=r.finish_reason,
                )
                for r in results
            ],
            usage=usage(gen.prompt_tokens, gen.completion_tokens),
            system_fingerprint=gen.fingerprint,
        )
        return Response(body.model_dump_json(), media_type="application/json")

    async def _events(
        self, gen: Generation, req: ChatCompletionRequest, name: str, rid: str, created: int
    ) -> AsyncIterator[bytes]:
        chunks = Chunks(
            rid, "chat.completion.chunk", created, name, gen.fingerprint, req.include_usage
        )
        top = req.top_logprobs or 0

        def chunk(index: int, delta: dict[str, Any], logprobs: Any, finish: str | None) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            return chunks.event([choice])

        for i in range(req.n):
            yield chunk(i, {"role": "assistant", "content": ""}, None, None)
        try:
            async for index, d in gen.deltas():
                if d.text or d.logprobs:
                    lps = chat_logprobs(d.logprobs, top) if req.logprobs and d.logprobs else None
                    yield chunk(index, {"content": d.text}, lps, None)
                if d.finish_reason is not None:
                    yield chunk(index, {}, None, d.finish_reason)
            if req.include_usage:
                yield chunks.usage(usage(gen.prompt_tokens, gen.completion_tokens).model_dump())
        except Exception as exc:  # after the 200 went out, errors travel as an SSE event
            yield sse(describe(exc)[1])
        yield DONE
