"""Server-sent events and client disconnects.

Two guarantees live here: a client that goes away stops its generation (and frees its KV
memory) instead of generating on for nobody, and an SSE stream is byte-compatible with
OpenAI's (``data: {json}\\n\\n`` … ``data: [DONE]``), so every OpenAI client reads it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Send

from llmeco.server.errors import ClientGone

T = TypeVar("T")

DONE = b"data: [DONE]\n\n"


def sse(data: Mapping[str, Any]) -> bytes:
    """One SSE event carrying ``data`` as compact JSON."""
    return (
        b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    )


def chat_chunk(
    rid: str, model: str, created: int, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    """One-choice ``chat.completion.chunk`` of an app's stream (support, agents): no
    fingerprint, no logprobs; callers add their own extra fields."""
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


@dataclass(frozen=True)
class Chunks:
    """The events of one streamed chat or text completion.

    Every chunk repeats the response's id, object type, creation time, model and fingerprint,
    plus ``usage: null`` when the client asked for a final usage chunk (as OpenAI sends it).
    """

    id: str
    object: str
    created: int
    model: str
    fingerprint: str | None
    include_usage: bool = False

    def event(self, choices: list[dict[str, Any]]) -> bytes:
        """A chunk carrying ``choices``."""
        return sse({**self._base(), "choices": choices})

    def usage(self, usage: Mapping[str, Any]) -> bytes:
        """The final usage chunk (no choices), sent only when the client asked for it."""
        return sse({**self._base(), "choices": [], "usage": dict(usage)})

    def _base(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
        }
        if self.include_usage:
            base["usage"] = None
        return base


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnected(work: Awaitable[T], request: Request) -> T:
    """Await ``work``, cancelling it (and raising ``ClientGone``) if the client leaves first.

    Used while a request waits for its first token or, when not streaming, for its whole
    output: without it a queued request whose client left would still run to the end.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        raise ClientGone()
    return task.result()


class EventStream(StreamingResponse):
    """An SSE response whose ``on_close`` always runs: finished, failed or disconnected.

    Starlette cancels ``stream_response`` when the client disconnects; ``on_close`` then
    runs shielded from that cancellation so it can abort the engine request.
    """

    def __init__(
        self,
        events: AsyncIterator[bytes],
        on_close: Callable[[], Awaitable[None]],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
        )
        self._events = events
        self._on_close = on_close

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except OSError as exc:  # ASGI spec >= 2.4 servers signal a gone client this way
            raise ClientGone() from exc
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self._events, "aclose", None)
                if aclose is not None:
                    await aclose()
                await self._on_close()
