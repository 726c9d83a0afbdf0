"""The agent loop: model turn → tool calls → results → model turn … → answer.

Each model turn renders the conversation with the agent's tools (:class:`ChatPrompt` with
``tools``; :func:`llmeco.modeling.chat.render_chat` writes them in the model's format) and
generates under the tool-call grammar (``tool_choice="auto"``, or ``"required"`` on the first
turn when the profile asks), so a call, once started, is well formed and its arguments
validate against the tool's schema. The output is parsed by the model's tool parser:

* no calls — the text is the answer; the loop ends with ``finish_reason`` ``"stop"``
  (``"length"`` when ``max_tokens`` cut the turn short);
* calls — each is executed (with its timeout) and its result goes back to the model as a
  ``tool`` message; a tool that raises, times out, gets bad arguments or does not exist
  gives the model ``{"error": "..."}`` instead, and the loop goes on;
* the turn limit (``max_steps`` model turns) reached while the model still calls tools ends
  the loop with ``finish_reason: "max_steps"`` and the text written so far, or a sentence
  saying the limit was reached (the last turn's calls are not run: nothing would read them).

Text the model writes in any turn is part of the answer (turns are separated by a blank
line), so a streamed answer is exactly the final one. :meth:`AgentLoop.run` yields events as
they happen — :class:`AnswerDelta` text, an :class:`AgentStep` per executed call, and last the
:class:`AgentResult` — which the server turns into SSE chunks or one response.

The loop has no HTTP code: the model is a :class:`StepModel` (the server's runs each turn
under the caller's limits; :class:`EngineModel` runs on a plain engine), and every execution
is reported to a :class:`ToolObserver` (the server's writes the audit ledger) before its
result is used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from llmeco.apps.agents.events import (
    AgentEvent,
    AgentResult,
    AgentStep,
    AnswerDelta,
    StepModel,
    ToolExecution,
    ToolObserver,
)
from llmeco.apps.agents.profile import AgentProfile
from llmeco.apps.agents.tools import Tool, ToolContext, ToolError, tool_definition
from llmeco.engine.protocol import EngineClient
from llmeco.engine.request import ChatPrompt, SamplingParams
from llmeco.engine.tool_grammar import tool_call_output
from llmeco.errors import ContextLengthExceeded, InvalidRequest, LlmecoError, NotFound
from llmeco.modeling.tool_parsers import ToolCall, get_tool_parser
from llmeco.observability import tracing

log = logging.getLogger("llmeco.agents")

#: ``finish_reason`` when the turn limit ended the loop.
MAX_STEPS = "max_steps"


def step_limit_message(max_steps: int) -> str:
    """The answer of a loop the turn limit ended before the model wrote anything."""
    return (
        f"I could not finish: the step limit ({max_steps} model turns) was reached before "
        "a final answer."
    )


@dataclass
class _Answer:
    """The answer as it streams: leading and trailing blanks of each turn held back, turns
    separated by a blank line."""

    parts: list[str] = field(default_factory=list)
    _pending: str = ""
    _turn_has_text: bool = False

    def new_turn(self) -> None:
        self._pending, self._turn_has_text = "", False

    def feed(self, text: str) -> str:
        buffered = self._pending + text
        body = buffered.rstrip()
        if not body:
            self._pending = buffered
            return ""
        self._pending = buffered[len(body) :]
        if not self._turn_has_text:
            body = body.lstrip()
            self._turn_has_text = True
            if self.parts:
                body = "\n\n" + body
        self.parts.append(body)
        return body

    @property
    def text(self) -> str:
        return "".join(self.parts)


class AgentLoop:
    """One agent answering one conversation."""

    def __init__(
        self,
        profile: AgentProfile,
        tools: Sequence[Tool],
        model: StepModel,
        ctx: ToolContext,
        observer: ToolObserver | None = None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.profile = profile
        self.tools = {tool.name: tool for tool in tools}
        self.model = model
        self.ctx = ctx
        self.observer = observer
        self.max_tokens = max_tokens or profile.max_tokens
        self.temperature = profile.temperature if temperature is None else temperature
        self.seed = seed
        self.definitions = [tool_definition(tool) for tool in tools]

    def conversation(self, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The profile's system prompt (with the caller's system messages after it), then
        the caller's other messages."""
        system = [self.profile.system] if self.profile.system else []
        system += [str(m["content"]) for m in messages if m["role"] == "system"]
        head = [{"role": "system", "content": "\n\n".join(system)}] if system else []
        return [*head, *(dict(m) for m in messages if m["role"] != "system")]

    def _params(self, turn: int, parser_name: str, keep_special: bool) -> SamplingParams:
        choice = self.profile.tool_choice if turn == 1 else "auto"
        structured = tool_call_output(
            self.definitions, choice, parser_name, parallel=self.profile.parallel_tool_calls
        )
        return SamplingParams(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            seed=self.seed,
            structured=structured,
            skip_special_tokens=not keep_special,
        )

    async def run(self, messages: Sequence[Mapping[str, Any]]) -> AsyncGenerator[AgentEvent, None]:
        """Answer ``messages``, yielding answer text and steps as they happen, then the
        :class:`AgentResult`.

        Raises:
            LlmecoError: the first model turn cannot run (context, limits, a model the key
                may not use); the observer refused an execution. Tool failures never raise.
        """
        parser = get_tool_parser(self.model.tool_parser)
        conversation = self.conversation(messages)
        answer = _Answer()
        steps: list[AgentStep] = []
        finish = MAX_STEPS
        turn = 0
        while turn < self.profile.max_steps:
            turn += 1
            answer.new_turn()
            params = self._params(turn, parser.name, parser.keep_special_tokens)
            prompt = ChatPrompt(conversation, tools=self.definitions or None)
            stream = parser.stream()
            pieces: list[str] = []
            reason: str | None = None
            try:
                async with contextlib.aclosing(self.model.generate(prompt, params)) as output:
                    async for text, why in output:
                        pieces.append(text)
                        shown = answer.feed(stream.feed(text).content)
                        if shown:
                            yield AnswerDelta(shown)
                        reason = why or reason
            except ContextLengthExceeded:
                if turn == 1:
                    raise
                finish = "length"  # the conversation outgrew the context: stop here
                break
            shown = answer.feed(stream.finish().content)
            if shown:
                yield AnswerDelta(shown)
            parsed = parser.parse("".join(pieces))
            calls = parsed.calls
            if reason == "length":  # a call cut short would run with broken arguments
                finish = "length"
                break
            if not calls:
                finish = "stop"
                break
            if turn == self.profile.max_steps:
                break
            conversation.append(_assistant_turn((parsed.content or "").strip(), calls))
            for call in calls:
                with tracing.span("tool", **{"gen_ai.tool.name": call.name, "llmeco.step": turn}):
                    step = await self._execute(turn, call)
                steps.append(step)
                yield step
                conversation.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "name": call.name,
                        "content": step.result,
                    }
                )
        if finish == MAX_STEPS and not answer.text:
            yield AnswerDelta(answer.feed(step_limit_message(self.profile.max_steps)))
        yield AgentResult(
            answer.text,
            finish,
            steps,
            turn,
            self.model.prompt_tokens,
            self.model.completion_tokens,
        )

    async def _execute(self, turn: int, call: ToolCall) -> AgentStep:
        """Run one call (timeout, errors as results) and report it to the observer."""
        started = time.perf_counter()
        tool = self.tools.get(call.name)
        args: dict[str, Any] | None = None
        exception: BaseException | None = None
        result = ""
        error: str | None = None
        try:
            if tool is None:
                raise NotFound(
                    f"there is no tool named {call.name!r}; the tools are "
                    f"{', '.join(self.tools) or 'none'}",
                    param="name",
                )
            args = parse_arguments(call.arguments)
            timeout = tool.timeout or self.profile.tool_timeout
            try:
                with anyio.fail_after(timeout):
                    result = await tool.call(args, self.ctx)
            except TimeoutError as exc:
                exception = exc
                error = f"{call.name} timed out after {timeout:g} s"
        except Exception as exc:
            exception = exc
            error = _message(call.name, exc)
        except BaseException:  # cancelled: the request went away
            if self.observer is not None:
                self.observer.cancelled(
                    ToolExecution(_step(turn, call, False, "", started, "cancelled"), args)
                )
            raise
        if error is not None:
            result = json.dumps({"error": error}, ensure_ascii=False)
        step = _step(turn, call, error is None, result, started, error)
        if self.observer is not None:
            await self.observer.executed(ToolExecution(step, args, exception))
        return step


def _assistant_turn(content: str, calls: Sequence[ToolCall]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in calls
        ],
    }


def _step(
    turn: int, call: ToolCall, ok: bool, result: str, started: float, error: str | None
) -> AgentStep:
    return AgentStep(
        step=turn,
        call_id=call.id,
        tool=call.name,
        arguments=call.arguments,
        ok=ok,
        result=result,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        error=error,
    )


def parse_arguments(text: str) -> dict[str, Any]:
    """A call's arguments as a dict (empty text: no arguments).

    Raises:
        InvalidRequest: they are not a JSON object.
    """
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidRequest("the arguments are not valid JSON", param="arguments") from None
    if not isinstance(value, dict):
        raise InvalidRequest("the arguments must be a JSON object", param="arguments")
    return value


def _message(tool: str, exc: Exception) -> str:
    """What the model (and the caller) reads about a failure: the library's message, or no
    internals for a bug (which is logged)."""
    if isinstance(exc, ToolError | LlmecoError):
        return exc.message
    log.error("agent tool failed", exc_info=exc, extra={"tool": tool})
    return f"{tool} failed with an internal error"


class EngineModel:
    """A :class:`StepModel` over a plain engine (scripts, tests): no limits, no metrics."""

    def __init__(self, engine: EngineClient) -> None:
        self.engine = engine
        self.tool_parser = engine.model_info.tool_parser
        self.prompt_tokens = 0
        self.completion_tokens = 0

    async def generate(
        self, prompt: ChatPrompt, params: SamplingParams
    ) -> AsyncGenerator[tuple[str, str | None], None]:
        """One turn on the engine, ``max_tokens`` capped at the context room left."""
        ids = self.engine.encode(prompt)
        room = self.engine.model_info.max_model_len - len(ids)
        if room < 1:
            raise ContextLengthExceeded(len(ids), params.max_tokens or 1, len(ids) + room)
        params.max_tokens = min(params.max_tokens or room, room)
        self.prompt_tokens += len(ids)
        async for out in self.engine.generate(ids, params, f"agent-{uuid.uuid4().hex}"):
            for delta in out.deltas:
                if delta.index == 0:
                    self.completion_tokens += len(delta.token_ids)
                    yield delta.text, delta.finish_reason
