"""The built-in agent tools, registered through the same hook as a plugin's."""

from __future__ import annotations

from typing import Any

from llmeco.apps.agents import profile
from llmeco.apps.agents.tools import builtin_tool
from llmeco.plugins import ToolSpec, hookimpl

_OPTIONS: tuple[type[profile.ToolOptions], ...] = (
    profile.KbSearchOptions,
    profile.CalculatorOptions,
    profile.SummarizeOptions,
    profile.TranslateOptions,
    profile.ClassifyOptions,
    profile.SentimentOptions,
    profile.CorrectOptions,
)


def _build(options: Any) -> Any:
    return builtin_tool(options)


@hookimpl
def register_tools() -> list[ToolSpec]:
    """kb_search, calculator and the task tools (summarize, translate, classify, …)."""
    out = []
    for options in _OPTIONS:
        kind = options.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
        out.append(ToolSpec(kind, options, _build, (options.__doc__ or "").strip()))
    return out
