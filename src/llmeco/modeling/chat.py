"""Rendering a conversation to the prompt text a model sees, with or without tools.

:func:`render_chat` is the one place a conversation becomes text: the engine encodes chat
prompts with it and SFT builds its training examples with it, so a model is fine-tuned on
exactly the layout it is later served with.

Messages are OpenAI-style dicts: ``{"role", "content"}`` plus, on assistant turns,
``tool_calls`` (``[{"id", "type": "function", "function": {"name", "arguments"}}]``, the
arguments a JSON string or an object) and, on ``tool`` turns, ``tool_call_id``. Tools are
OpenAI tool definitions (``{"type": "function", "function": {"name", "description",
"parameters"}}``).

**Templates that take tools.** When the model's chat template reads a ``tools`` variable
(detected from the template's source), the conversation goes through the template itself,
``tokenizer.apply_chat_template(messages, tools=tools)``, with each call's ``arguments``
given as an object (what those templates expect). The model then sees its own format.

**The fallback (Hermes style).** A template without tool support (SmolLM2-135M-Instruct's,
so the default model's) gets the tools written into the conversation as plain text, in the
format Hermes-style function-calling models are trained on:

* The system message (one is added at the front when there is none) gets, after its own
  text, a ``# Tools`` section: one JSON line per tool definition inside ``<tools>`` …
  ``</tools>``, and the instruction to answer a call as::

      <tool_call>
      {"name": "<function name>", "arguments": {<the arguments object>}}
      </tool_call>

  one block per call, blocks separated by a newline.
* An assistant message's ``tool_calls`` are written back in that form after its text
  (``json.dumps`` layout: ``", "`` and ``": "``, the same text the tool-call grammar lets
  the model write), so earlier calls in the history look like the model's own.
* ``tool`` messages become ``<tool_response>`` … ``</tool_response>`` blocks in a ``user``
  turn (consecutive tool messages share one turn): every template renders a user turn,
  while many reject unknown roles or two user turns in a row.

The ``hermes`` tool parser (:mod:`llmeco.modeling.tool_parsers`) reads this format back, and
the tool-call grammar (:mod:`llmeco.engine.tool_grammar`) constrains generation to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from llmeco.errors import InvalidRequest

__all__ = [
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "chat_template_source",
    "format_tool_call",
    "normalize_messages",
    "render_chat",
    "template_supports_tools",
    "tools_system_prompt",
]

Message = dict[str, Any]

#: Markers of one call in the fallback format (the ``hermes`` parser's).
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
TOOL_RESPONSE_OPEN = "<tool_response>"
TOOL_RESPONSE_CLOSE = "</tool_response>"

#: A template "takes tools" when it reads a variable named ``tools`` in a Jinja expression.
_TOOLS_VARIABLE = re.compile(r"(\{\{|\{%)[^}]*\btools\b")


def chat_template_source(tokenizer: Any) -> str:
    """The tokenizer's chat template as text ("" when it has none).

    A tokenizer may hold several named templates (a dict); their sources are concatenated,
    so a ``tool_use`` template counts when deciding whether tools are supported.
    """
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str):
        return template
    if isinstance(template, Mapping):
        return "\n".join(str(v) for v in template.values())
    if isinstance(template, Sequence):  # [{"name": ..., "template": ...}, ...]
        return "\n".join(str(t.get("template", "")) for t in template if isinstance(t, Mapping))
    return ""


def template_supports_tools(template: str) -> bool:
    """Whether a chat template's source renders tool definitions (reads ``tools``)."""
    return bool(_TOOLS_VARIABLE.search(template))


def render_chat(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text of a conversation: the model's template, tools included.

    With ``tools`` (OpenAI tool definitions) the model's template renders them when it can,
    else the documented fallback of this module does. Messages may carry ``tool_calls`` and
    ``tool`` turns even without ``tools`` (a history that used tools).

    Raises:
        InvalidRequest: the tokenizer has no chat template, or the template fails on these
            messages (``param="messages"``).
    """
    source = chat_template_source(tokenizer)
    if not source:
        raise InvalidRequest("the model has no chat template; use completions", param="messages")
    native = template_supports_tools(source)
    if native:
        rendered = [_native_message(m) for m in messages]
        kwargs: dict[str, Any] = {"tools": [dict(t) for t in tools]} if tools else {}
    else:
        rendered = _fallback_messages(messages, tools)
        kwargs = {}
    try:
        text = tokenizer.apply_chat_template(
            rendered, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )
    except Exception as exc:  # jinja errors (raise_exception, bad types) from user input
        raise InvalidRequest(f"cannot render messages: {exc}", param="messages") from exc
    if not isinstance(text, str):  # pragma: no cover - tokenize=False returns text
        raise InvalidRequest("the chat template did not render text", param="messages")
    return text


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Plain copies of ``messages`` with string content (``None`` becomes ``""``).

    Chat templates concatenate ``content`` as a string, so a null content (an assistant turn
    that only calls tools) must not reach them as ``None``.
    """
    out = []
    for m in messages:
        msg = dict(m)
        msg["content"] = "" if msg.get("content") is None else str(msg["content"])
        out.append(msg)
    return out


def tools_system_prompt(tools: Sequence[Mapping[str, Any]]) -> str:
    """The fallback's ``# Tools`` section: the definitions and how to call them."""
    lines = "\n".join(json.dumps(_tool_definition(t), ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\n"
        "You can call functions to answer the user. Their definitions, one JSON object per "
        f"line:\n<tools>\n{lines}\n</tools>\n\n"
        "To call a function, answer with its name and arguments as JSON inside "
        f"{TOOL_CALL_OPEN}{TOOL_CALL_CLOSE} tags, one block per call:\n"
        f'{TOOL_CALL_OPEN}\n{{"name": "<function name>", "arguments": {{<arguments as a JSON '
        f"object>}}}}\n{TOOL_CALL_CLOSE}\n"
        f"Results come back inside {TOOL_RESPONSE_OPEN}{TOOL_RESPONSE_CLOSE} tags."
    )


def format_tool_call(name: str, arguments: Any) -> str:
    """One call in the fallback format (what the ``hermes`` grammar lets a model write).

    ``arguments`` is a JSON string or an already parsed value; a string that is not JSON is
    kept as a JSON string, so the block always parses.
    """
    args = _parsed_arguments(arguments)
    body = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}\n{body}\n{TOOL_CALL_CLOSE}"


def _tool_definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A tool as written into the prompt: ``{"type": "function", "function": {...}}``."""
    function = tool.get("function", tool)
    out: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        out["description"] = function["description"]
    out["parameters"] = function.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "function", "function": out}


def _parsed_arguments(arguments: Any) -> Any:
    """Arguments as a JSON value: a JSON string parsed, anything else as it is."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _call_function(call: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``function`` part of a tool call (``{"name", "arguments"}``)."""
    function = call.get("function", call)
    return function if isinstance(function, Mapping) else {}


def _native_message(message: Mapping[str, Any]) -> Message:
    """A message for a template that takes tools: arguments as objects, content a string."""
    msg = normalize_messages([message])[0]
    calls = msg.get("tool_calls")
    if calls:
        converted = []
        for call in calls:
            function = dict(_call_function(call))
            function["arguments"] = _parsed_arguments(function.get("arguments", {}))
            converted.append({**dict(call), "type": "function", "function": function})
        msg["tool_calls"] = converted
    return msg


def _fallback_messages(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
) -> list[Message]:
    """The conversation rewritten into roles and text any chat template renders."""
    out: list[Message] = []
    for m in normalize_messages(messages):
        role = m["role"]
        if role == "tool":
            block = f"{TOOL_RESPONSE_OPEN}\n{m['content']}\n{TOOL_RESPONSE_CLOSE}"
            if out and out[-1].get("_tool_responses"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_responses": True})
            continue
        msg = {k: v for k, v in m.items() if k not in ("tool_calls", "tool_call_id")}
        calls = m.get("tool_calls") or []
        if role == "assistant" and calls:
            blocks = [
                format_tool_call(str(f.get("name", "")), f.get("arguments", {}))
                for f in map(_call_function, calls)
            ]
            msg["content"] = "\n".join([m["content"], *blocks] if m["content"] else blocks)
        out.append(msg)
    for msg in out:
        msg.pop("_tool_responses", None)
    if tools:
        section = tools_system_prompt(tools)
        if out and out[0]["role"] == "system":
            first = out[0]["content"]
            out[0]["content"] = f"{first}\n\n{section}" if first else section
        else:
            out.insert(0, {"role": "system", "content": section})
    return out
