"""A constant-time OpenAI-compatible upstream for measuring what a proxy adds.

    uvicorn --app-dir benchmarks/peers stub_upstream:app --port 8001

Answers ``/v1/completions`` (JSON, or SSE when ``"stream": true``: one text chunk, a
usage-only chunk, ``[DONE]``), ``/v1/models`` and ``/health`` with fixed bytes, so its own
time is a few tens of microseconds and steady: the latency a gateway adds in front of it is
not lost in a model's variance. benchmarks/gateway.py starts it with ``--upstream stub``.
"""

from __future__ import annotations

import json
from typing import Any

_COMPLETION = json.dumps(
    {
        "id": "cmpl-stub",
        "object": "text_completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "text": " world", "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()
_CHUNK = {
    "id": "cmpl-stub",
    "object": "text_completion",
    "created": 0,
    "model": "stub",
    "choices": [{"index": 0, "text": " world", "logprobs": None, "finish_reason": None}],
}
_USAGE = {**_CHUNK, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
_STREAM = (
    b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in (_CHUNK, _USAGE))
    + b"data: [DONE]\n\n"
)
_MODELS = json.dumps(
    {"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "stub"}]}
).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI app: fixed answers, whatever the request asks."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path.endswith("/completions"):
        streamed = b'"stream":true' in body.replace(b" ", b"")
        out, kind = (
            (_STREAM, b"text/event-stream") if streamed else (_COMPLETION, b"application/json")
        )
    else:
        out, kind = _MODELS, b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": out})
