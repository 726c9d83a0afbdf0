"""Schemas of the writing assistant (``/v1/apps/write/{action}``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from llmeco.server.openai.shared import Usage


class WriteRequest(BaseModel):
    """One writing action on ``text``."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(default=None, description="Served model; default: the first one.")
    text: str = Field(min_length=1, max_length=32_000, description="Topic, draft or passage.")
    tone: str | None = Field(default=None, max_length=60, examples=["friendly", "formal"])
    style: str | None = Field(default=None, max_length=120, examples=["a product FAQ"])
    audience: str | None = Field(default=None, max_length=120)
    max_tokens: int | None = Field(
        default=None, ge=1, le=8192, description="Longest answer; default: 512, within the context."
    )
    temperature: float = Field(default=0.7, ge=0, le=2)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stream: bool = Field(default=False, description="Answer with server-sent events.")


class WriteResponse(BaseModel):
    """The written text (non-streamed)."""

    id: str
    object: str
    model: str
    text: str
    finish_reason: str | None
    usage: Usage
