"""Parsed tool calls in OpenAI's response shapes: the message, the stream deltas, the finish.

Calls come back as ``message.tool_calls`` (``id``, ``type: "function"``, ``function.name``,
``function.arguments`` as a JSON string) with ``finish_reason: "tool_calls"``; a legacy
``functions`` request gets its one call as ``message.function_call`` and ``finish_reason:
"function_call"``, as OpenAI answered those. Streamed, a call's first delta carries its
``index``, ``id``, ``type`` and ``function.name`` with ``arguments: ""``, and later deltas the
argument fragments — what the OpenAI SDK's stream helpers accumulate.
"""

from __future__ import annotations

from typing import Any

from llmeco.modeling.tool_parsers import ParsedOutput, ToolCallDelta
from llmeco.server.openai.chat.protocol import ChatCompletionMessage, FunctionCall, ToolCall

__all__ = ["call_deltas", "finish_reason", "reply_message"]


def finish_reason(reason: str | None, called: bool, legacy: bool) -> str | None:
    """The choice's ``finish_reason``: a generation that stopped after calls says so."""
    if called and reason == "stop":
        return "function_call" if legacy else "tool_calls"
    return reason


def reply_message(text: str, parsed: ParsedOutput | None, legacy: bool) -> ChatCompletionMessage:
    """The assistant message of a non-streamed choice.

    Without calls the content is the generated text unchanged; with calls it is the text
    around them (None when there is none).
    """
    if parsed is None or not parsed.calls:
        return ChatCompletionMessage(content=text)
    if legacy:
        first = parsed.calls[0]
        return ChatCompletionMessage(
            content=parsed.content,
            function_call=FunctionCall(name=first.name, arguments=first.arguments),
        )
    calls = [
        ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
        for c in parsed.calls
    ]
    return ChatCompletionMessage(content=parsed.content, tool_calls=calls)


def call_deltas(deltas: list[ToolCallDelta], legacy: bool) -> list[dict[str, Any]]:
    """The ``delta`` objects of streamed call steps, one per step.

    A step with a name opens its call (``arguments: ""``); its fragment, if any, follows in
    a delta of its own.
    """
    out: list[dict[str, Any]] = []
    for d in deltas:
        if legacy and d.index > 0:
            continue  # a legacy answer has one call
        if d.name is not None:
            out.append(_delta(d.index, {"name": d.name, "arguments": ""}, d.id, legacy))
        if d.arguments:
            out.append(_delta(d.index, {"arguments": d.arguments}, None, legacy))
    return out


def _delta(
    index: int, function: dict[str, str], call_id: str | None, legacy: bool
) -> dict[str, Any]:
    """One ``delta``: a tool-call step, or the legacy ``function_call`` step."""
    if legacy:
        return {"function_call": function}
    call: dict[str, Any] = {"index": index}
    if call_id is not None:
        call["id"] = call_id
        call["type"] = "function"
    call["function"] = function
    return {"tool_calls": [call]}
