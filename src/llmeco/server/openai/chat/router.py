"""``POST /v1/chat/completions``: parse, then hand over to :class:`OpenAIServingChat`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from llmeco.server.errors import ERROR_RESPONSES
from llmeco.server.openai.chat.protocol import ChatCompletionRequest, ChatCompletionResponse
from llmeco.server.openai.chat.serving import OpenAIServingChat
from llmeco.server.state import get_state

router = APIRouter(tags=["openai"])


@router.post(
    "/v1/chat/completions", response_model=ChatCompletionResponse, responses=ERROR_RESPONSES
)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    """Chat completion; ``stream: true`` answers with server-sent events."""
    return await OpenAIServingChat(get_state(request)).create(body, request)
