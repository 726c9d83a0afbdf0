"""Tool-call parsers: a model's output text → content and tool calls, whole or streamed.

Every family implements :class:`ToolParser`: ``parse(text)`` for a complete output, and
``stream()`` for an incremental parser fed the text as it is generated (content deltas, then
each call's index, id and name, then its argument fragments). Both give the same result for
the same text. Each parser's :class:`CallSyntax` also tells the tool-call grammar
(:mod:`llmeco.engine.tool_grammar`) which text to constrain generation to.

Which parser a model gets: ``--tool-parser NAME`` (``LLMECO_TOOL_PARSER``) when set, else the
family whose markers the model's chat template uses (:func:`detect_tool_parser`), else
``hermes`` — the format of the fallback rendering in :mod:`llmeco.modeling.chat`.

An agent loop uses the pieces directly::

    parser = get_tool_parser(engine.model_info.tool_parser)
    prompt = ChatPrompt(messages, tools=tools)                     # render_chat, tools included
    params = SamplingParams(structured=tool_call_output(tools, "auto", parser.name))
    text = "".join(...)                                           # engine.generate(...)
    result = parser.parse(text)                                   # content + calls
"""

from __future__ import annotations

from typing import Any

from llmeco.errors import ConfigError
from llmeco.modeling.chat import chat_template_source
from llmeco.modeling.tool_parsers.base import (
    CallSyntax,
    ParsedOutput,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
    ToolParser,
    ToolStream,
    new_call_id,
)
from llmeco.modeling.tool_parsers.families import HERMES, LLAMA3_JSON, MISTRAL, JsonToolParser

__all__ = [
    "DEFAULT_TOOL_PARSER",
    "TOOL_PARSERS",
    "CallSyntax",
    "JsonToolParser",
    "ParsedOutput",
    "StreamDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolParser",
    "ToolStream",
    "detect_tool_parser",
    "get_tool_parser",
    "new_call_id",
]

#: Every parser by its ``--tool-parser`` name.
TOOL_PARSERS: dict[str, JsonToolParser] = {p.name: p for p in (HERMES, LLAMA3_JSON, MISTRAL)}

#: The parser of templates that show no format of their own (the fallback's format).
DEFAULT_TOOL_PARSER = HERMES.name


def get_tool_parser(name: str) -> JsonToolParser:
    """The parser registered as ``name``; "" means the default (``hermes``).

    Raises:
        ConfigError: no parser has that name (the message lists the ones there are).
    """
    parser = TOOL_PARSERS.get(name or DEFAULT_TOOL_PARSER)
    if parser is None:
        raise ConfigError(
            f"unknown tool parser {name!r}; choose one of {', '.join(sorted(TOOL_PARSERS))}"
        )
    return parser


def detect_tool_parser(tokenizer: Any) -> str:
    """The parser for a model, from the call markers its chat template writes.

    A template without tool markers (or without tool support) gets ``hermes``: that is
    the format :func:`llmeco.modeling.chat.render_chat` teaches it.
    """
    source = chat_template_source(tokenizer)
    for parser in (MISTRAL, LLAMA3_JSON, HERMES):
        if any(marker in source for marker in parser.template_markers):
            return parser.name
    return DEFAULT_TOOL_PARSER
