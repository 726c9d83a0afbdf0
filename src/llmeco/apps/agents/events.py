"""What the agent loop works with and produces: the model it thinks with, the events it
yields, and what it tells an observer about each tool execution."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

from llmeco.engine.request import ChatPrompt, SamplingParams


class StepModel(Protocol):
    """The model an agent thinks with: one generation per turn, token counts kept."""

    #: Name of the model's tool parser (``hermes`` …; "" is the default).
    tool_parser: str
    #: Tokens used so far, over every turn.
    prompt_tokens: int
    completion_tokens: int

    def generate(
        self, prompt: ChatPrompt, params: SamplingParams
    ) -> AsyncGenerator[tuple[str, str | None], None]:
        """The turn's output as ``(text, finish_reason)`` pieces (the last has the reason).

        ``params.max_tokens`` is a cap the model may lower to the context room left; it raises
        ``ContextLengthExceeded`` when there is no room at all.
        """
        ...


@dataclass(frozen=True)
class AnswerDelta:
    """More answer text."""

    text: str


@dataclass(frozen=True)
class AgentStep:
    """One executed tool call: what the model asked and what it got back."""

    step: int
    call_id: str
    tool: str
    #: The arguments as the model wrote them (JSON text).
    arguments: str
    ok: bool
    #: What the model read: the tool's text, or ``{"error": "..."}``.
    result: str
    duration_ms: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The step as the response's ``agent_steps`` items and chunks' ``agent_step``."""
        out: dict[str, Any] = {
            "step": self.step,
            "id": self.call_id,
            "tool": self.tool,
            "arguments": self.arguments,
            "ok": self.ok,
            "result": self.result,
            "duration_ms": self.duration_ms,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class AgentResult:
    """How the loop ended."""

    answer: str
    #: ``stop``, ``length`` or ``max_steps``.
    finish_reason: str
    steps: list[AgentStep]
    turns: int
    prompt_tokens: int
    completion_tokens: int


AgentEvent = AnswerDelta | AgentStep | AgentResult


@dataclass(frozen=True)
class ToolExecution:
    """An execution as the observer sees it: the step and, for a failure, its exception."""

    step: AgentStep
    #: Parsed arguments (None when they were not a JSON object).
    arguments: dict[str, Any] | None
    exception: BaseException | None = None


class ToolObserver(Protocol):
    """Told about every tool execution (the server audits them)."""

    async def executed(self, execution: ToolExecution) -> None:
        """An execution ended (ok or not); raising stops the agent before the result is
        used (e.g. the audit ledger could not record it)."""
        ...

    def cancelled(self, execution: ToolExecution) -> None:
        """An execution was cancelled midway (the request went away); must not block."""
        ...
