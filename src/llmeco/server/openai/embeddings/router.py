"""``POST /v1/embeddings``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from llmeco.server.errors import ERROR_RESPONSES
from llmeco.server.openai.embeddings.protocol import EmbeddingRequest, EmbeddingResponse
from llmeco.server.openai.embeddings.serving import OpenAIServingEmbedding
from llmeco.server.state import get_context, get_state

router = APIRouter(tags=["openai"])


@router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=ERROR_RESPONSES)
async def create_embedding(
    body: EmbeddingRequest, request: Request
) -> EmbeddingResponse | Response:
    """Embed one text or a batch (relayed as is when the model is an upstream's)."""
    state = get_state(request)
    if state.gateway is not None and state.gateway.serves(body.model):
        return await state.gateway.relay(state, request, "embedding", "/embeddings")
    return await OpenAIServingEmbedding(state).create(body, get_context(request))
