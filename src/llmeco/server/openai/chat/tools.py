"""What a chat request's tools mean for its generation: the prompt, the grammar, the parser.

A :class:`ToolPlan` is decided once per request from ``tools`` / ``tool_choice`` /
``parallel_tool_calls`` (or the legacy ``functions`` / ``function_call``), checked so that a
bad request is a 400 naming its parameter before anything is generated:

* duplicate function names, a ``parameters`` that is no object JSON schema, a
  ``tool_choice`` naming an unknown function or asking for calls without tools,
  ``parallel_tool_calls`` without tools, ``tools`` together with ``functions``.

``tool_choice: "none"`` renders no tools and parses no calls (the model answers in text).
Otherwise the tools are rendered into the prompt, the output is parsed by the model's tool
parser, and — unless the tool grammar is off (``LLMECO_TOOL_GRAMMAR=off`` or the request's
``tool_grammar: "off"``) — generation is constrained to well-formed calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmeco.engine.protocol import ModelInfo
from llmeco.engine.request import StructuredOutput
from llmeco.engine.tool_grammar import check_tool_schema, tool_call_output
from llmeco.errors import InvalidRequest
from llmeco.modeling.tool_parsers import JsonToolParser, get_tool_parser
from llmeco.server.openai.chat.protocol import (
    ChatCompletionRequest,
    FunctionDefinition,
    FunctionName,
)
from llmeco.settings import Settings

__all__ = ["ToolPlan", "plan_tools"]


@dataclass(frozen=True)
class ToolPlan:
    """How one request uses tools."""

    #: OpenAI tool definitions rendered into the prompt (empty: none).
    tools: list[dict[str, Any]] = field(default_factory=list)
    #: ``"none"``, ``"auto"``, ``"required"`` or the one function's name.
    choice: str = "none"
    #: Answer in the legacy shape (``message.function_call``, finish ``function_call``).
    legacy: bool = False
    #: The parser of the output; None when no calls are expected.
    parser: JsonToolParser | None = None
    #: The tool-call grammar (None: off, or no calls expected).
    structured: StructuredOutput | None = None


def plan_tools(req: ChatCompletionRequest, settings: Settings, info: ModelInfo) -> ToolPlan:
    """The :class:`ToolPlan` of ``req`` for a model described by ``info``.

    Raises:
        InvalidRequest: see the module docstring (``param`` names the field).
        ConfigError: the configured tool parser does not exist.
    """
    definitions, prefix, legacy = _definitions(req)
    _check_definitions(definitions, prefix)
    tools = [{"type": "function", "function": d.model_dump(exclude_none=True)} for d in definitions]
    choice = _choice(req, legacy)
    if req.parallel_tool_calls is not None and not tools:
        raise InvalidRequest(
            "parallel_tool_calls is only allowed when tools are given",
            param="parallel_tool_calls",
        )
    if choice == "none":
        return ToolPlan(choice="none", legacy=legacy)
    if not tools:
        if choice == "auto":
            return ToolPlan(choice="none", legacy=legacy)
        raise InvalidRequest(f"tool_choice {choice!r} needs tools", param=_choice_param(legacy))
    if choice not in ("auto", "required") and choice not in {d.name for d in definitions}:
        raise InvalidRequest(
            f"tool_choice names function {choice!r}, which is not among the "
            f"{'functions' if legacy else 'tools'}",
            param=_choice_param(legacy),
        )
    parser = get_tool_parser(settings.tool_parser or info.tool_parser)
    grammar_on = (req.tool_grammar or settings.tool_grammar) == "auto"
    structured = None
    if grammar_on:
        parallel = not legacy and req.parallel_tool_calls is not False
        structured = tool_call_output(
            tools, choice, parser.name, parallel=parallel, content_schema=_content_schema(req)
        )
    return ToolPlan(tools, choice, legacy, parser, structured)


def _definitions(req: ChatCompletionRequest) -> tuple[list[FunctionDefinition], str, bool]:
    """The functions of the request, the parameter path they came from, and whether the
    request used the legacy ``functions`` field."""
    if req.tools and req.functions:
        raise InvalidRequest("send either tools or (legacy) functions, not both", param="functions")
    if req.functions:
        if req.tool_choice is not None:
            raise InvalidRequest(
                "tool_choice goes with tools; with functions use function_call",
                param="tool_choice",
            )
        return list(req.functions), "functions[{}]", True
    if req.function_call is not None:
        raise InvalidRequest(
            "function_call goes with functions; with tools use tool_choice",
            param="function_call",
        )
    return [t.function for t in req.tools or []], "tools[{}].function", False


def _check_definitions(definitions: list[FunctionDefinition], prefix: str) -> None:
    """Unique names, and a usable JSON schema for each function's parameters."""
    seen: dict[str, int] = {}
    for i, d in enumerate(definitions):
        where = prefix.format(i)
        if d.name in seen:
            first = prefix.format(seen[d.name])
            raise InvalidRequest(
                f"duplicate function name {d.name!r} (also {first}.name)", param=f"{where}.name"
            )
        seen[d.name] = i
        if d.parameters is not None:
            check_tool_schema(d.name, d.parameters, param=f"{where}.parameters")


def _choice(req: ChatCompletionRequest, legacy: bool) -> str:
    """``tool_choice`` (or ``function_call``) as a string; default auto with tools."""
    raw: Any = req.function_call if legacy else req.tool_choice
    if raw is None:
        has_tools = bool(req.functions if legacy else req.tools)
        return "auto" if has_tools else "none"
    if isinstance(raw, FunctionName):
        return raw.name
    if isinstance(raw, str):
        return raw
    return str(raw.function.name)


def _choice_param(legacy: bool) -> str:
    return "function_call" if legacy else "tool_choice"


def _content_schema(req: ChatCompletionRequest) -> dict[str, Any] | None:
    """The ``response_format`` constraint on text answers, when one is given."""
    structured = req.structured()
    if structured is None:
        return None
    return structured.schema if structured.kind == "json_schema" else {"type": "object"}
