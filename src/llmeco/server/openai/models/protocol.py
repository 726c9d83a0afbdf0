"""Schemas of ``GET /v1/models``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ModelCard(BaseModel):
    """One served model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmeco"
    max_model_len: int
    root: str | None = None
    #: llmeco extra: what the model serves ("generate": chat/completions, "embed").
    task: Literal["generate", "embed", "support"] = "generate"


class ModelList(BaseModel):
    """Every served model."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
