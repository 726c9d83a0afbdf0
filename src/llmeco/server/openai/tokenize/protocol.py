"""Schemas of ``POST /tokenize`` and ``POST /detokenize`` (vLLM's shapes)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from llmeco.server.openai.chat.protocol import ChatMessage, ChatTool
from llmeco.server.openai.shared import STRICT


class TokenizeCompletionRequest(BaseModel):
    """Tokenize plain text."""

    model_config = STRICT
    model: str
    prompt: str


class TokenizeChatRequest(BaseModel):
    """Tokenize a conversation rendered with the model's chat template."""

    model_config = STRICT
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    add_generation_prompt: bool = True
    tools: list[ChatTool] | None = Field(
        default=None, max_length=128, description="Tools rendered into the prompt, as in chat."
    )


class TokenizeResponse(BaseModel):
    """Token ids, their count, and the model's context length."""

    count: int
    max_model_len: int
    tokens: list[int]


class DetokenizeRequest(BaseModel):
    """Token ids to turn back into text."""

    model_config = STRICT
    model: str
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    """The text of the tokens."""

    prompt: str
