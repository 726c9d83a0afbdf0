"""The tools an agent calls: the :class:`Tool` protocol and the built-in tools.

A tool has a name, a description and a JSON schema of its parameters (what the model reads
and what the tool-call grammar constrains its arguments to), and an ``async call(args,
ctx)`` that returns the text the model gets back. A tool raises the library's typed errors
(or :class:`ToolError`) when it cannot do what was asked; the loop turns any failure into an
error result for the model, never into a failed request.

What a tool may use comes through its :class:`ToolContext`: the :class:`AgentServices` of
the caller, which the server implements so every use is checked against the caller's API key
(a knowledge base is governed like model ``support:<kb>``; a task runs on the agent's model
under the key's token limits).

Built-ins (``tools:`` of a profile):

* ``kb_search`` — the passages of one knowledge base (``llmeco.rag``) that best answer a
  query, numbered, each with its source (document and section);
* ``calculator`` — arithmetic (:mod:`llmeco.apps.agents.calculator`, never ``eval``);
* ``summarize``, ``translate``, ``classify``, ``sentiment``, ``correct`` — the task endpoints'
  prompt specs (:mod:`llmeco.apps.tasks`), run on the agent's model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from llmeco.apps import tasks
from llmeco.apps.agents.calculator import evaluate, format_number
from llmeco.apps.agents.profile import (
    BuiltinTool,
    CalculatorOptions,
    ClassifyOptions,
    CorrectOptions,
    KbSearchOptions,
    SentimentOptions,
    SummarizeOptions,
    TranslateOptions,
)
from llmeco.apps.spec import PromptSpec
from llmeco.errors import InvalidRequest, LlmecoError

if TYPE_CHECKING:
    from llmeco.rag.kb import KnowledgeBase


class ToolError(LlmecoError):
    """A tool ran but reported a failure (an MCP tool's error result); the message is the
    tool's own."""


class AgentServices(Protocol):
    """What built-in tools may use, on behalf of the caller (the server checks each use
    against the caller's API key)."""

    async def knowledge_base(self, name: str) -> KnowledgeBase:
        """Knowledge base ``name``, if the caller may read it.

        Raises:
            PermissionDenied: the caller's key may not use ``support:<name>``.
            NotFound: there is no such knowledge base.
        """
        ...

    async def run_task(self, spec: PromptSpec) -> str:
        """The text the agent's model generates for ``spec``, under the caller's limits."""
        ...


@dataclass(frozen=True)
class ToolContext:
    """One tool call's surroundings: which agent, which request, the caller's services."""

    agent: str
    request_id: str
    services: AgentServices


class Tool(Protocol):
    """Something an agent can call."""

    #: The name the model calls it by (``[a-zA-Z0-9_-]{1,64}``).
    name: str
    #: What the model reads to decide when to call it.
    description: str
    #: JSON schema (an object schema) of its arguments.
    parameters: dict[str, Any]
    #: Seconds one call may take (None: the profile's ``tool_timeout``).
    timeout: float | None

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> str:
        """Run with validated ``args``; the result text the model reads."""
        ...


def tool_definition(tool: Tool) -> dict[str, Any]:
    """A tool as an OpenAI tool definition (what the chat template and the grammar take)."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _string(description: str, max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "description": description}


def _object(properties: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties),
        "additionalProperties": False,
    }


def _text_arg(args: Mapping[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{key} must be a non-empty string", param=key)
    return value


@dataclass
class KbSearchTool:
    """``kb_search``: numbered passages of one knowledge base, each with its source."""

    kb: str
    k: int
    name: str = "kb_search"
    description: str = ""
    timeout: float | None = None

    def __post_init__(self) -> None:
        self.description = self.description or (
            f"Search the {self.kb} knowledge base. Returns numbered passages with their "
            "source; answer from them and cite the source."
        )
        self.parameters = _object({"query": _string("The question to look up.", 200)})

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> str:
        """The best ``k`` passages for ``args["query"]``."""
        query = _text_arg(args, "query")
        kb = await ctx.services.knowledge_base(self.kb)
        hits = await anyio.to_thread.run_sync(lambda: kb.search(query, self.k))
        if not hits:
            return f"No passages in {self.kb} match {query!r}."
        return "\n\n".join(
            f"[{n}] {hit.text.strip()}\n(source: {hit.doc}, {hit.heading or 'start'})"
            for n, hit in enumerate(hits, start=1)
        )


@dataclass
class CalculatorTool:
    """``calculator``: the value of an arithmetic expression."""

    name: str = "calculator"
    description: str = ""
    timeout: float | None = None

    def __post_init__(self) -> None:
        self.description = self.description or (
            "Compute an arithmetic expression with numbers, + - * / ** % and parentheses, "
            "e.g. (12.5 * 4) / 3."
        )
        self.parameters = _object({"expression": _string("The expression.", 300)})

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> str:
        """The expression's value (exact for integers)."""
        return format_number(evaluate(_text_arg(args, "expression")))


@dataclass
class TaskTool:
    """A task endpoint's prompt spec as a tool, run on the agent's model."""

    name: str
    description: str
    options: BuiltinTool
    timeout: float | None = None

    def __post_init__(self) -> None:
        properties = {"text": _string("The text to work on.", 32_000)}
        if isinstance(self.options, TranslateOptions) and self.options.target_language is None:
            properties["target_language"] = _string("The language to translate into.", 64)
        self.parameters = _object(properties)

    def spec(self, args: Mapping[str, Any]) -> PromptSpec:
        """The prompt spec of one call."""
        text = _text_arg(args, "text")
        o = self.options
        if isinstance(o, SummarizeOptions):
            return tasks.summarize(text, o.max_words, o.style, o.max_tokens)
        if isinstance(o, TranslateOptions):
            target = o.target_language or _text_arg(args, "target_language")
            return tasks.translate(text, target, None, o.max_tokens)
        if isinstance(o, ClassifyOptions):
            return tasks.classify(text, list(o.labels), o.instructions)
        if isinstance(o, SentimentOptions):
            return tasks.sentiment(text)
        if isinstance(o, CorrectOptions):
            return tasks.correct(text, o.max_tokens)
        raise InvalidRequest(f"{o.kind} is not a task tool")  # pragma: no cover

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> str:
        """The task's answer (the summary, the translation, the label …)."""
        spec = self.spec(args)
        result = spec.parse(await ctx.services.run_task(spec))
        return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


_TASK_DESCRIPTIONS = {
    "summarize": "Summarize a text.",
    "translate": "Translate a text.",
    "classify": "Label a text with one of: {labels}.",
    "sentiment": "Judge whether a text is positive, negative or neutral.",
    "correct": "Fix the spelling and grammar of a text.",
}


def builtin_tool(options: BuiltinTool) -> Tool:
    """The built-in tool a profile's ``tools:`` entry describes."""
    name = options.name or options.kind
    description = options.description or ""
    if isinstance(options, KbSearchOptions):
        return KbSearchTool(options.kb, options.k, name, description, options.timeout)
    if isinstance(options, CalculatorOptions):
        return CalculatorTool(name, description, options.timeout)
    if isinstance(options, TranslateOptions) and options.target_language and not description:
        description = f"Translate a text into {options.target_language}."
    if isinstance(options, ClassifyOptions) and not description:
        description = _TASK_DESCRIPTIONS["classify"].format(labels=", ".join(options.labels))
    return TaskTool(name, description or _TASK_DESCRIPTIONS[options.kind], options, options.timeout)
