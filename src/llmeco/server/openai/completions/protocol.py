"""Schemas of ``POST /v1/completions`` (the legacy text API, plus vLLM's extras)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from llmeco.server.openai.shared import SamplingRequest, Usage


class CompletionRequest(SamplingRequest):
    """A text completion request: one prompt or a batch, as text or token ids."""

    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="Text, a batch of texts, token ids, or a batch of token-id lists."
    )
    max_tokens: int | None = Field(
        default=16, ge=0, description="Default 16, as OpenAI's; 0 with echo scores the prompt."
    )
    logprobs: int | None = Field(default=None, ge=0, le=20, description="Top alternatives.")
    echo: bool = Field(default=False, description="Prepend the prompt to each choice's text.")
    best_of: int | None = Field(default=None, ge=1, le=128, description="Only null or n.")
    suffix: str | None = Field(default=None, description="Not supported: only null.")


class CompletionChoice(BaseModel):
    """One choice of a non-streamed response."""

    index: int
    text: str
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None
    #: vLLM's ``prompt_logprobs`` (asked with ``prompt_logprobs``): per prompt token, null first.
    prompt_logprobs: list[dict[str, dict[str, Any]] | None] | None = Field(
        default=None, exclude_if=lambda v: v is None
    )


class CompletionResponse(BaseModel):
    """A non-streamed completion (streamed ones are ``text_completion`` events too)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None
