"""Writing actions: run the writer's spec, as one JSON answer or an SSE stream.

Streamed events are ``{"id", "object": "write.chunk", "model", "delta", "finish_reason"}``,
then one with ``usage``, then ``data: [DONE]`` — the same framing as chat completions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from llmeco.apps import writer
from llmeco.server import apprun
from llmeco.server.errors import describe
from llmeco.server.openai.shared import usage
from llmeco.server.state import ServerState, get_context
from llmeco.server.streaming import DONE, EventStream, sse
from llmeco.server.write.protocol import WriteRequest, WriteResponse


async def write(
    state: ServerState, action: writer.Action, req: WriteRequest, request: Request
) -> Response:
    """Serve one writing action."""
    spec = writer.write(
        action,
        req.text,
        tone=req.tone,
        style=req.style,
        audience=req.audience,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        seed=req.seed,
    )
    call = await apprun.start(state, request, req.model, spec)
    rid = f"write-{get_context(request).request_id}"
    obj = f"write.{action}"
    if req.stream:
        return EventStream(_events(call, rid, call.name), call.generation.close)
    finish: str | None = None
    parts: list[str] = []
    try:
        async for text, reason in _collect(call, request):
            parts.append(text)
            finish = reason or finish
    finally:
        await call.generation.close()
    gen = call.generation
    body = WriteResponse(
        id=rid,
        object=obj,
        model=call.name,
        text="".join(parts),
        finish_reason=finish,
        usage=usage(gen.prompt_tokens, gen.completion_tokens),
    )
    return Response(body.model_dump_json(), media_type="application/json")


async def _collect(call: apprun.AppCall, request: Request) -> AsyncIterator[tuple[str, str | None]]:
    results = await call.generation.collect(request)
    yield "".join(results[0].text), results[0].finish_reason


async def _events(call: apprun.AppCall, rid: str, model: str) -> AsyncIterator[bytes]:
    base = {"id": rid, "object": "write.chunk", "model": model}
    try:
        async for text, reason in call.pieces():
            if text or reason:
                yield sse({**base, "delta": text, "finish_reason": reason})
        gen = call.generation
        yield sse(
            {
                **base,
                "delta": "",
                "finish_reason": None,
                "usage": usage(gen.prompt_tokens, gen.completion_tokens).model_dump(),
            }
        )
    except Exception as exc:  # after the 200 went out, errors travel as an SSE event
        yield sse(describe(exc)[1])
    yield DONE
