"""The tool-call formats llmeco reads: Hermes ``<tool_call>``, Llama 3 JSON, Mistral.

Each family is a :class:`CallSyntax` (how calls are written) plus the shared incremental
parser. The formats, as models write them:

``hermes`` (Hermes 2 Pro, Qwen 2.5, and llmeco's fallback for templates without tools; see
:mod:`llmeco.modeling.chat`)::

    optional text
    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

``llama3_json`` (Llama 3.1/3.2 JSON tool calling): the output *is* the call, optionally after
``<|python_tag|>``; several calls are separated by ``;``. ``"parameters"`` holds the
arguments (``"arguments"`` is accepted too)::

    {"name": "get_weather", "parameters": {"city": "Paris"}}

``mistral`` (Mistral/Mixtral instruct v3 tokenizers): a JSON array after ``[TOOL_CALLS]``,
a special token in those tokenizers::

    [TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmeco.modeling.chat import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from llmeco.modeling.tool_parsers.base import CallSyntax, ParsedOutput
from llmeco.modeling.tool_parsers.stream import JsonCallStream, parse_whole

__all__ = ["HERMES", "LLAMA3_JSON", "MISTRAL", "JsonToolParser"]


@dataclass(frozen=True)
class JsonToolParser:
    """A :class:`~llmeco.modeling.tool_parsers.base.ToolParser` for one JSON-call syntax."""

    name: str
    syntax: CallSyntax
    keep_special_tokens: bool = False
    #: Substrings of a chat template that mark it as using this format.
    template_markers: tuple[str, ...] = field(default=())

    def parse(self, text: str) -> ParsedOutput:
        """Split a complete output into content and calls."""
        return parse_whole(self.syntax, text)

    def stream(self) -> JsonCallStream:
        """A fresh incremental parser for one output."""
        return JsonCallStream(self.syntax)


HERMES = JsonToolParser(
    "hermes",
    CallSyntax(
        trigger=TOOL_CALL_OPEN,
        call_open=TOOL_CALL_OPEN + "\n",
        call_close="\n" + TOOL_CALL_CLOSE,
        separator="\n",
    ),
    template_markers=(TOOL_CALL_OPEN,),
)

LLAMA3_JSON = JsonToolParser(
    "llama3_json",
    CallSyntax(
        trigger=None,
        separator="; ",
        args_key="parameters",
        args_aliases=("arguments",),
        leading_marker="<|python_tag|>",
        require_arguments=True,
    ),
    keep_special_tokens=True,
    template_markers=("<|python_tag|>",),
)

MISTRAL = JsonToolParser(
    "mistral",
    CallSyntax(
        trigger="[TOOL_CALLS]",
        block_open="[TOOL_CALLS][",
        separator=", ",
        block_close="]",
        in_array=True,
    ),
    keep_special_tokens=True,
    template_markers=("[TOOL_CALLS]",),
)
