"""``POST /v1/apps/example/headline``: a one-line headline for a text.

It runs through :func:`llmeco.server.apprun.start`, so the request gets the same context
checks, 429s, cancellation, metrics, usage accounting and audit as a chat completion.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from llmeco.apps.spec import PromptSpec
from llmeco.engine.request import SamplingParams
from llmeco.server import apprun
from llmeco.server.state import get_state

router = APIRouter(prefix="/v1/apps/example", tags=["example"])


class HeadlineRequest(BaseModel):
    """The text to title, and optionally which served model writes it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000)
    model: str | None = None
    max_words: int = Field(default=12, ge=2, le=30)


class HeadlineResponse(BaseModel):
    """The headline and the model that wrote it."""

    headline: str
    model: str


def headline_spec(text: str, max_words: int) -> PromptSpec:
    """The prompt: a short instruction, greedy, one line."""
    messages = [
        {
            "role": "system",
            "content": f"Write a headline of at most {max_words} words. "
            "Reply with the headline only.",
        },
        {"role": "user", "content": text},
    ]
    params = SamplingParams(temperature=0.0, max_tokens=4 * max_words, stop=["\n"])
    return PromptSpec(messages, params, lambda out: out.strip().strip('"'))


@router.post("/headline", response_model=HeadlineResponse)
async def headline(body: HeadlineRequest, request: Request) -> HeadlineResponse:
    """A headline for ``text`` (first line of the model's answer)."""
    state = get_state(request)
    spec = headline_spec(body.text, body.max_words)
    call = await apprun.start(state, request, body.model, spec)
    text = await call.text(request)
    return HeadlineResponse(headline=spec.parse(text), model=call.name)
