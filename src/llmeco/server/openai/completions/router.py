"""``POST /v1/completions``: parse, then hand over to :class:`OpenAIServingCompletion`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from llmeco.server.errors import ERROR_RESPONSES
from llmeco.server.openai.completions.protocol import CompletionRequest, CompletionResponse
from llmeco.server.openai.completions.serving import OpenAIServingCompletion
from llmeco.server.state import get_state

router = APIRouter(tags=["openai"])


@router.post("/v1/completions", response_model=CompletionResponse, responses=ERROR_RESPONSES)
async def create_completion(body: CompletionRequest, request: Request) -> Response:
    """Text completion; ``stream: true`` answers with server-sent events."""
    return await OpenAIServingCompletion(get_state(request)).create(body, request)
