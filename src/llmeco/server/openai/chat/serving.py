"""Chat completions over any :class:`~llmeco.engine.protocol.EngineClient`.

With tools (see :mod:`llmeco.server.openai.chat.tools`) each choice's text goes through the
model's tool parser: whole for a JSON response, incrementally for a stream (one parser per
choice), so both give the same content and calls.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from llmeco.engine.request import ChatPrompt, SequenceDelta
from llmeco.errors import InvalidRequest
from llmeco.modeling.tool_parsers import StreamDelta, ToolStream
from llmeco.server.errors import describe
from llmeco.server.generation import (
    Generation,
    chat_logprobs,
    resolve_max_tokens,
    vllm_prompt_logprobs,
)
from llmeco.server.openai.chat.messages import render_messages
from llmeco.server.openai.chat.protocol import (
    ChatCompletionChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
)
from llmeco.server.openai.chat.tool_output import call_deltas, finish_reason, reply_message
from llmeco.server.openai.chat.tools import ToolPlan, plan_tools
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


def _settle(stream: ToolStream, delta: SequenceDelta) -> StreamDelta:
    """What one engine delta adds to a choice parsed for tool calls (the rest, at its end)."""
    step = stream.feed(delta.text)
    if delta.finish_reason is not None:
        last = stream.finish()
        step.content += last.content
        step.calls += last.calls
    return step


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
        if req.stream and req.prompt_logprobs is not None:
            raise InvalidRequest("prompt_logprobs are not streamed", param="prompt_logprobs")
        plan = plan_tools(req, self.state.settings, info)
        prompt = ChatPrompt(
            render_messages(req.messages),
            add_generation_prompt=req.add_generation_prompt,
            tools=plan.tools or None,
        )
        ids = engine.encode(prompt)
        max_tokens = resolve_max_tokens(info.max_model_len, len(ids), _requested_max_tokens(req))
        top = req.top_logprobs or 0
        params = req.sampling_params(max_tokens, top if req.logprobs else None)
        if plan.parser is not None:
            params.skip_special_tokens = not plan.parser.keep_special_tokens
            if plan.structured is not None:
                params.structured = plan.structured
        gen = Generation(engine, params, ctx.request_id, self.state.metrics.timer(name))
        await gen.start([ids], request)
        response_id = f"chatcmpl-{ctx.request_id}"
        created = int(time.time())
        if req.stream:
            events = self._events(gen, req, plan, name, response_id, created)
            return EventStream(events, gen.close)
        try:
            results = await gen.collect(request)
        finally:
            await gen.close()
        choices = []
        for r in results:
            text = "".join(r.text)
            parsed = plan.parser.parse(text) if plan.parser is not None else None
            choices.append(
                ChatCompletionChoice(
                    index=r.index,
                    message=reply_message(text, parsed, plan.legacy),
                    logprobs=chat_logprobs(r.logprobs, top) if req.logprobs else None,
                    finish_reason=finish_reason(
                        r.finish_reason, bool(parsed and parsed.calls), plan.legacy
                    ),
                )
            )
        body = ChatCompletionResponse(
            id=response_id,
            created=created,
            model=name,
            choices=choices,
            usage=usage(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens),
            system_fingerprint=gen.fingerprint,
            prompt_logprobs=(
                vllm_prompt_logprobs(gen.prompt_logprobs[0])
                if req.prompt_logprobs is not None
                else None
            ),
        )
        return Response(body.model_dump_json(), media_type="application/json")

    async def _events(
        self,
        gen: Generation,
        req: ChatCompletionRequest,
        plan: ToolPlan,
        name: str,
        rid: str,
        created: int,
    ) -> AsyncIterator[bytes]:
        chunks = Chunks(
            rid, "chat.completion.chunk", created, name, gen.fingerprint, req.include_usage
        )
        top = req.top_logprobs or 0
        parser = plan.parser
        streams: dict[int, ToolStream] = {}

        def chunk(index: int, delta: dict[str, Any], logprobs: Any, finish: str | None) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            return chunks.event([choice])

        for i in range(req.n):
            yield chunk(i, {"role": "assistant", "content": ""}, None, None)
        try:
            async for index, d in gen.deltas():
                lps = chat_logprobs(d.logprobs, top) if req.logprobs and d.logprobs else None
                if parser is None:
                    if d.text or lps:
                        yield chunk(index, {"content": d.text}, lps, None)
                    if d.finish_reason is not None:
                        yield chunk(index, {}, None, d.finish_reason)
                    continue
                if index not in streams:
                    streams[index] = parser.stream()
                stream = streams[index]
                step = _settle(stream, d)
                if step.content or lps:
                    yield chunk(index, {"content": step.content}, lps, None)
                for delta in call_deltas(step.calls, plan.legacy):
                    yield chunk(index, delta, None, None)
                if d.finish_reason is not None:
                    reason = finish_reason(d.finish_reason, bool(stream.calls), plan.legacy)
                    yield chunk(index, {}, None, reason)
            if req.include_usage:
                yield chunks.usage(
                    usage(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens).model_dump()
                )
        except Exception as exc:  # after the 200 went out, errors travel as an SSE event
            yield sse(describe(exc)[1])
        yield DONE
