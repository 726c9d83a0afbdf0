"""``GET /v1/models`` and ``GET /v1/models/{model}``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from llmeco.server.errors import ERROR_RESPONSES
from llmeco.server.openai.models.protocol import ModelCard, ModelList
from llmeco.server.openai.models.serving import OpenAIServingModels
from llmeco.server.state import get_state

router = APIRouter(tags=["openai"])


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    """Every served model."""
    return OpenAIServingModels(get_state(request)).list()


@router.get("/v1/models/{model:path}", response_model=ModelCard, responses=ERROR_RESPONSES)
async def retrieve_model(model: str, request: Request) -> ModelCard:
    """One served model."""
    return OpenAIServingModels(get_state(request)).get(model)
