"""Schemas of ``POST /v1/chat/completions`` (OpenAI's, plus vLLM's extra sampling fields).

Function calling follows OpenAI's API: ``tools``, ``tool_choice`` and ``parallel_tool_calls``
(and the legacy ``functions`` / ``function_call``) in the request; assistant messages with
``tool_calls`` and ``tool`` messages answering them in the history; ``message.tool_calls``
(or the legacy ``message.function_call``) in the response.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from llmeco.server.openai.shared import STRICT, SamplingRequest, Usage


class TextPart(BaseModel):
    """A text content part (images and audio are not supported)."""

    model_config = STRICT
    type: Literal["text"]
    text: str


#: OpenAI's rule for function names (so a name is also safe inside JSON and grammars).
FUNCTION_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


class FunctionDefinition(BaseModel):
    """A function the model may call: its name, what it does, and its arguments' schema."""

    model_config = STRICT
    name: str = Field(pattern=FUNCTION_NAME_PATTERN, description="a-z, A-Z, 0-9, _ and -.")
    description: str | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="JSON schema of the arguments object; absent: no arguments."
    )
    strict: bool | None = Field(
        default=None,
        description="Accepted; arguments always follow the schema when the tool grammar is on.",
    )


class ChatTool(BaseModel):
    """A tool of the request (only functions exist)."""

    model_config = STRICT
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(BaseModel):
    """A function chosen by name."""

    model_config = STRICT
    name: str


class NamedToolChoice(BaseModel):
    """``tool_choice`` forcing one function."""

    model_config = STRICT
    type: Literal["function"]
    function: FunctionName


class FunctionCall(BaseModel):
    """A call: the function's name and its arguments as a JSON string."""

    model_config = STRICT
    name: str
    arguments: str


class ToolCall(BaseModel):
    """A tool call of an assistant message (in the history, and in responses)."""

    model_config = STRICT
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """One message of the conversation.

    Assistant messages may carry ``tool_calls`` (content may then be null), ``tool``
    messages answer one of them by ``tool_call_id``; ``function_call`` and the ``function``
    role are their legacy forms.
    """

    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None
    refusal: str | None = None

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
    tools: list[ChatTool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = Field(
        default=None, description="Default: auto with tools, none without."
    )
    parallel_tool_calls: bool | None = Field(
        default=None, description="Allow several calls in one answer (default true)."
    )
    functions: list[FunctionDefinition] | None = Field(
        default=None, max_length=128, description="Legacy form of tools."
    )
    function_call: Literal["none", "auto"] | FunctionName | None = Field(
        default=None, description="Legacy form of tool_choice."
    )
    tool_grammar: Literal["auto", "off"] | None = Field(
        default=None,
        description="llmeco extra: constrain tool calls to their schemas (auto) or leave "
        "generation free and only parse (off). Default: the server's LLMECO_TOOL_GRAMMAR.",
    )


def _is_none(value: object) -> bool:
    return value is None


class ChatCompletionMessage(BaseModel):
    """The assistant's reply: text, tool calls, or both (``function_call``: legacy)."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = Field(default=None, exclude_if=_is_none)
    function_call: FunctionCall | None = Field(default=None, exclude_if=_is_none)


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
    #: vLLM's ``prompt_logprobs`` (asked with ``prompt_logprobs``): per prompt token, null first.
    prompt_logprobs: list[dict[str, dict[str, Any]] | None] | None = Field(
        default=None, exclude_if=lambda v: v is None
    )
