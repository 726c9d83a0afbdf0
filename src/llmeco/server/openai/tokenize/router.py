"""``POST /tokenize`` and ``POST /detokenize``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from llmeco.server.errors import ERROR_RESPONSES
from llmeco.server.openai.tokenize.protocol import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeChatRequest,
    TokenizeCompletionRequest,
    TokenizeResponse,
)
from llmeco.server.openai.tokenize.serving import OpenAIServingTokenization
from llmeco.server.state import get_context, get_state

router = APIRouter(tags=["tokenizer"])


@router.post("/tokenize", response_model=TokenizeResponse, responses=ERROR_RESPONSES)
async def tokenize(
    body: TokenizeCompletionRequest | TokenizeChatRequest, request: Request
) -> TokenizeResponse:
    """Token ids of ``prompt`` or of ``messages`` rendered with the chat template."""
    serving = OpenAIServingTokenization(get_state(request))
    return serving.tokenize(body, get_context(request))


@router.post("/detokenize", response_model=DetokenizeResponse, responses=ERROR_RESPONSES)
async def detokenize(body: DetokenizeRequest, request: Request) -> DetokenizeResponse:
    """Text of token ids."""
    serving = OpenAIServingTokenization(get_state(request))
    return serving.detokenize(body, get_context(request))
