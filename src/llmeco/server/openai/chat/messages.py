"""A request's messages as the dicts :func:`llmeco.modeling.chat.render_chat` takes.

``developer`` becomes ``system``; assistant ``tool_calls`` and ``tool`` answers keep their
OpenAI shape; the legacy ``function_call`` / ``function`` pair is mapped onto them (the
function message answers the latest call of that name). Every ``tool`` message must answer a
call made earlier in the conversation: a dangling ``tool_call_id`` is a 400 naming the
message, not a prompt the model cannot make sense of.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmeco.errors import InvalidRequest
from llmeco.server.openai.chat.protocol import ChatMessage

__all__ = ["render_messages"]

#: Prefix of the ids given to legacy ``function_call`` messages (they have none).
LEGACY_CALL_ID = "call_legacy_"


def render_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The conversation for the chat template, checked for tool-call consistency.

    Raises:
        InvalidRequest: a ``tool`` message without ``tool_call_id`` or answering no earlier
            call, a ``function`` message without a matching earlier ``function_call``, or
            tool calls on a message that is not the assistant's (``param`` names the field).
    """
    out: list[dict[str, Any]] = []
    call_ids: set[str] = set()
    legacy_ids: dict[str, str] = {}  # function name -> id of its latest legacy call
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if m.role != "assistant" and (m.tool_calls or m.function_call):
            field = "tool_calls" if m.tool_calls else "function_call"
            raise InvalidRequest(
                f"only assistant messages may carry {field}", param=f"{where}.{field}"
            )
        msg: dict[str, Any] = {
            "role": "system" if m.role == "developer" else m.role,
            "content": m.text(),
        }
        if m.name and m.role != "function":
            msg["name"] = m.name
        if m.role == "assistant":
            calls = [c.model_dump() for c in m.tool_calls or []]
            if m.function_call is not None:
                legacy_id = f"{LEGACY_CALL_ID}{i}"
                legacy_ids[m.function_call.name] = legacy_id
                calls.append(
                    {"id": legacy_id, "type": "function", "function": m.function_call.model_dump()}
                )
            if calls:
                msg["tool_calls"] = calls
                call_ids.update(c["id"] for c in calls)
        elif m.role == "tool":
            msg["tool_call_id"] = _answered_call(m, call_ids, where)
        elif m.role == "function":
            msg["role"] = "tool"
            msg["tool_call_id"] = _answered_function(m, legacy_ids, where)
        out.append(msg)
    return out


def _answered_call(m: ChatMessage, call_ids: set[str], where: str) -> str:
    """The ``tool_call_id`` of a tool message, which must name an earlier call."""
    if not m.tool_call_id:
        raise InvalidRequest(
            "a tool message needs the tool_call_id of the call it answers",
            param=f"{where}.tool_call_id",
        )
    if m.tool_call_id not in call_ids:
        raise InvalidRequest(
            f"tool_call_id {m.tool_call_id!r} matches no tool call of an earlier assistant message",
            param=f"{where}.tool_call_id",
        )
    return m.tool_call_id


def _answered_function(m: ChatMessage, legacy_ids: dict[str, str], where: str) -> str:
    """The id of the legacy call a ``function`` message answers (the latest of its name)."""
    if not m.name:
        raise InvalidRequest(
            "a function message needs the name of the function it answers",
            param=f"{where}.name",
        )
    call_id = legacy_ids.get(m.name)
    if call_id is None:
        raise InvalidRequest(
            f"function message {m.name!r} answers no earlier assistant function_call",
            param=f"{where}.name",
        )
    return call_id
