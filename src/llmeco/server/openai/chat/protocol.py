"""Schemas of ``POST /v1/chat/completions`` (OpenAI's, plus vLLM's extra sampling fields)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from llmeco.server.openai.shared import STRICT, SamplingRequest, Usage


class TextPart(BaseModel):
    """A text content part (images and audio are not supported)."""

    model_config = STRICT
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message's content as one string."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(SamplingRequest):
    """A chat completion request."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(
        default=None, ge=1, description="Default: the rest of the model's context."
    )
    max_completion_tokens: int | None = Field(
        default=None, ge=1, description="Alias of max_tokens."
    )
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    add_generation_prompt: bool = Field(
        default=True, description="vLLM extra: end the prompt with the assistant's turn header."
    )


class ChatCompletionMessage(BaseModel):
    """The assistant's reply."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None


class ChatCompletionChoice(BaseModel):
    """One choice of a non-streamed response."""

    index: int
    message: ChatCompletionMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None


class ChatCompletionResponse(BaseModel):
    """A non-streamed chat completion (streamed ones are ``chat.completion.chunk`` events)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None
