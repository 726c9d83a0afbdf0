"""Schemas of ``POST /v1/embeddings``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from llmeco.server.openai.shared import STRICT


class EmbeddingRequest(BaseModel):
    """Texts to embed."""

    model_config = STRICT
    model: str
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="A text or a list of up to 2048 texts (token-id input is not supported)."
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, description="Only the model's own size.")
    user: str | None = None


class Embedding(BaseModel):
    """One vector: a list of floats, or base64 of little-endian float32."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    """Tokens the embedder read."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    """The vectors, in input order."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
