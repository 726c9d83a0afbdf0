"""Text completions over any :class:`~llmeco.engine.protocol.EngineClient`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from llmeco.engine.protocol import EngineClient
from llmeco.errors import InvalidRequest
from llmeco.server.errors import describe
from llmeco.server.generation import (
    Generation,
    completion_logprobs,
    echo_logprobs,
    resolve_max_tokens,
    vllm_prompt_logprobs,
)
from llmeco.server.openai.completions.protocol import (
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
)
from llmeco.server.openai.shared import usage
from llmeco.server.state import ServerState, get_context
from llmeco.server.streaming import DONE, Chunks, EventStream, sse

MAX_BATCH = 64


def _prompts(req: CompletionRequest, engine: EngineClient) -> tuple[list[list[int]], list[str]]:
    """Token ids of each prompt, and each prompt's text (for ``echo``)."""
    p = req.prompt
    if isinstance(p, str):
        texts: list[str] | None = [p]
    elif p and all(isinstance(x, str) for x in p):
        texts = [str(x) for x in p]
    else:
        texts = None
    if texts is not None:
        ids = [engine.encode(t) for t in texts]
    elif p and isinstance(p[0], int):
        ids = [[int(t) for t in p if isinstance(t, int)]]
    else:
        ids = [list(x) for x in p if isinstance(x, list)]
    if not ids:
        raise InvalidRequest("prompt must not be empty", param="prompt")
    if len(ids) > MAX_BATCH:
        raise InvalidRequest(f"at most {MAX_BATCH} prompts per request", param="prompt")
    vocab = engine.model_info.vocab_size
    for i, seq in enumerate(ids):
        if not seq:
            raise InvalidRequest(f"prompt {i} has no tokens", param="prompt")
        if any(not 0 <= t < vocab for t in seq):
            raise InvalidRequest(
                f"prompt {i} has token ids outside the vocabulary (0..{vocab - 1})",
                param="prompt",
            )
    if texts is None and req.echo:
        texts = [engine.decode(seq) for seq in ids]
    return ids, texts or []


class OpenAIServingCompletion:
    """Turns a completion request into engine requests and the result into OpenAI's shapes."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def _check(self, req: CompletionRequest) -> None:
        if req.suffix is not None:
            raise InvalidRequest("suffix is not supported by this server", param="suffix")
        if req.best_of is not None and req.best_of != req.n:
            raise InvalidRequest("best_of other than n is not supported", param="best_of")
        if req.stream and (req.prompt_logprobs is not None or (req.echo and req.logprobs)):
            raise InvalidRequest(
                "prompt logprobs (echo with logprobs, prompt_logprobs) are not streamed; "
                "set stream to false",
                param="stream",
            )

    async def create(self, req: CompletionRequest, request: Request) -> Response:
        """Serve one request: a JSON response, or an SSE stream when ``stream`` is true."""
        gateway = self.state.gateway
        if gateway is not None and gateway.serves(req.model):
            return await gateway.relay(self.state, request, "completion", "/completions")
        name, engine = self.state.engine(req.model)
        ctx = get_context(request)
        ctx.model = name
        ctx.user = req.user or ""
        info = engine.model_info
        req.check(info.vocab_size)
        self._check(req)
        prompts, texts = _prompts(req, engine)
        max_tokens = req.max_tokens
        for ids in prompts:
            max_tokens = resolve_max_tokens(info.max_model_len, len(ids), req.max_tokens)
        assert max_tokens is not None
        params = req.sampling_params(max_tokens, req.logprobs)
        if req.echo and req.logprobs is not None:  # the prompt's tokens get logprobs too
            wanted = max(req.logprobs, req.prompt_logprobs or 0)
            params = dataclasses.replace(params, prompt_logprobs=wanted)
        gen = Generation(engine, params, ctx.request_id, self.state.metrics.timer(name))
        await gen.start(prompts, request)
        response_id = f"cmpl-{ctx.request_id}"
        created = int(time.time())
        echo = texts if req.echo else []
        if req.stream:
            events = self._events(gen, req, name, response_id, created, echo)
            return EventStream(events, gen.close)
        try:
            results = await gen.collect(request)
        finally:
            await gen.close()
        choices = []
        for r in results:
            prefix = echo[r.index // req.n] if echo else ""
            lps = None
            prompt_lps = gen.prompt_logprobs[r.index // req.n]
            if req.logprobs is not None and echo and prompt_lps is not None:
                first = engine.decode(gen.prompt_ids[r.index // req.n][:1])
                lps = echo_logprobs(first, prompt_lps, r.logprobs, req.logprobs)
            elif req.logprobs is not None:
                lps = completion_logprobs(r.logprobs, req.logprobs, 0)
            text = prefix + "".join(r.text)
            choices.append(
                CompletionChoice(
                    index=r.index,
                    text=text,
                    logprobs=lps,
                    finish_reason=r.finish_reason,
                    prompt_logprobs=(
                        vllm_prompt_logprobs(prompt_lps)
                        if req.prompt_logprobs is not None
                        else None
                    ),
                )
            )
        body = CompletionResponse(
            id=response_id,
            created=created,
            model=name,
            choices=choices,
            usage=usage(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens),
            system_fingerprint=gen.fingerprint,
        )
        return Response(body.model_dump_json(), media_type="application/json")

    async def _events(
        self,
        gen: Generation,
        req: CompletionRequest,
        name: str,
        rid: str,
        created: int,
        echo: list[str],
    ) -> AsyncIterator[bytes]:
        chunks = Chunks(rid, "text_completion", created, name, gen.fingerprint, req.include_usage)
        offsets: dict[int, int] = {}

        def chunk(index: int, text: str, logprobs: Any, finish: str | None) -> bytes:
            choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}
            return chunks.event([choice])

        for index in range(len(echo) * req.n):
            yield chunk(index, echo[index // req.n], None, None)
        try:
            async for index, d in gen.deltas():
                lps = None
                if req.logprobs is not None and d.logprobs:
                    lps = completion_logprobs(d.logprobs, req.logprobs, offsets.get(index, 0))
                    offsets[index] = offsets.get(index, 0) + sum(len(x.token) for x in d.logprobs)
                if d.text or lps is not None or d.finish_reason is not None:
                    yield chunk(index, d.text, lps, d.finish_reason)
            if req.include_usage:
                yield chunks.usage(
                    usage(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens).model_dump()
                )
        except Exception as exc:  # after the 200 went out, errors travel as an SSE event
            yield sse(describe(exc)[1])
        yield DONE
