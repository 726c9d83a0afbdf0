"""The agent loop over a scripted engine: calls, results, failures, timeouts, the step limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmeco.apps.agents import (
    AgentLoop,
    AgentProfile,
    AgentResult,
    AgentStep,
    AnswerDelta,
    EngineModel,
    ToolContext,
    ToolExecution,
)
from llmeco.apps.agents.loop import step_limit_message
from llmeco.apps.agents.tools import CalculatorTool
from llmeco.engine.protocol import EngineStats, ModelInfo
from llmeco.engine.request import ChatPrompt, Prompt, RequestOutput, SamplingParams, SequenceDelta
from llmeco.errors import ContextLengthExceeded, PermissionDenied


def call(name: str, **arguments: Any) -> str:
    """A Hermes call block, as the grammar lets the model write it."""
    body = json.dumps({"name": name, "arguments": arguments})
    return f"<tool_call>\n{body}\n</tool_call>"


@dataclass
class ScriptedEngine:
    """Each generation replies with the next scripted text, in 3-character pieces."""

    replies: list[str]
    max_model_len: int = 100_000
    prompts: list[ChatPrompt] = field(default_factory=list)
    params: list[SamplingParams] = field(default_factory=list)

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo("scripted", self.max_model_len, 0x10000, 0, tool_parser="hermes")

    def encode(self, prompt: Prompt) -> list[int]:
        assert isinstance(prompt, ChatPrompt)
        self.prompts.append(prompt)
        return [ord(c) for c in json.dumps(prompt.messages)]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(map(chr, token_ids))

    async def generate(
        self, prompt: Prompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        assert isinstance(prompt, list)
        self.params.append(params)
        text = self.replies.pop(0)
        finish = "stop"
        if params.max_tokens is not None and len(text) > params.max_tokens:
            text, finish = text[: params.max_tokens], "length"
        pieces = [text[i : i + 3] for i in range(0, len(text), 3)] or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            reason = finish if last else None
            delta = SequenceDelta(0, [ord(c) for c in piece], piece, finish_reason=reason)  # type: ignore[arg-type]
            yield RequestOutput(request_id, prompt, [delta], finished=last)

    async def abort(self, request_id: str) -> None:
        return None

    async def check_health(self) -> None:
        return None

    def stats(self) -> EngineStats:
        return EngineStats(0, 0, 0, 1)

    def acquire(self) -> ScriptedEngine:
        return self

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None


class NoServices:
    async def knowledge_base(self, name: str) -> Any:
        raise PermissionDenied(f"may not use support:{name}")

    async def run_task(self, spec: Any) -> str:
        raise AssertionError("no task tools here")


@dataclass
class FuncTool:
    """A tool whose behaviour is a coroutine function of its arguments."""

    name: str
    run: Any
    timeout: float | None = None
    description: str = "A test tool."
    parameters: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {"x": {"type": "string"}}}
    )

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> str:
        result: str = await self.run(args)
        return result


@dataclass
class Recorder:
    executed_: list[ToolExecution] = field(default_factory=list)
    cancelled_: list[ToolExecution] = field(default_factory=list)

    async def executed(self, execution: ToolExecution) -> None:
        self.executed_.append(execution)

    def cancelled(self, execution: ToolExecution) -> None:
        self.cancelled_.append(execution)


def profile(**fields: Any) -> AgentProfile:
    return AgentProfile.model_validate({"name": "t", "system": "Be brief.", **fields})


async def run(
    engine: ScriptedEngine,
    tools: Sequence[Any],
    observer: Recorder | None = None,
    question: str = "What is 6 times 7?",
    **fields: Any,
) -> tuple[list[Any], AgentResult]:
    loop = AgentLoop(
        profile(**fields),
        tools,
        EngineModel(engine),
        ToolContext("t", "req-1", NoServices()),
        observer,
    )
    events = [e async for e in loop.run([{"role": "user", "content": question}])]
    result = events[-1]
    assert isinstance(result, AgentResult)
    streamed = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert streamed == result.answer  # the stream adds up to the answer
    return events, result


async def test_a_call_its_result_then_the_answer() -> None:
    engine = ScriptedEngine([call("calculator", expression="6 * 7"), "It is 42."])
    recorder = Recorder()
    events, result = await run(engine, [CalculatorTool()], recorder)
    (step,) = [e for e in events if isinstance(e, AgentStep)]
    assert (step.tool, step.ok, step.result, step.step) == ("calculator", True, "42", 1)
    assert json.loads(step.arguments) == {"expression": "6 * 7"}
    assert (result.answer, result.finish_reason, result.turns) == ("It is 42.", "stop", 2)
    assert result.steps == [step]
    assert result.prompt_tokens > 0
    assert result.completion_tokens == len(call("calculator", expression="6 * 7")) + len(
        "It is 42."
    )
    # The second turn saw the call and its result; the system prompt came first.
    second = engine.prompts[1].messages
    assert second[0] == {"role": "system", "content": "Be brief."}
    assert second[2]["role"] == "assistant" and second[2]["tool_calls"][0]["id"] == step.call_id
    assert second[3] == {
        "role": "tool",
        "tool_call_id": step.call_id,
        "name": "calculator",
        "content": "42",
    }
    assert engine.prompts[0].tools is not None
    assert engine.prompts[0].tools[0]["function"]["name"] == "calculator"
    # Auto on every turn, under the grammar, one call per turn, greedy by default.
    for params in engine.params:
        assert params.structured is not None and params.structured.tool_calls is not None
        assert not params.structured.tool_calls.required
        assert not params.structured.tool_calls.parallel
        assert params.temperature == 0.0
    (execution,) = recorder.executed_
    assert execution.step == step and execution.arguments == {"expression": "6 * 7"}
    assert execution.exception is None


async def test_required_applies_to_the_first_turn_only() -> None:
    engine = ScriptedEngine([call("calculator", expression="1+1"), "2."])
    await run(engine, [CalculatorTool()], tool_choice="required", max_tokens=100, temperature=0.5)
    first, second = (p.structured.tool_calls for p in engine.params if p.structured)
    assert first is not None and first.required
    assert second is not None and not second.required
    assert [p.max_tokens for p in engine.params] == [100, 100]
    assert engine.params[0].temperature == 0.5


async def test_a_raising_tool_gives_the_model_an_error_and_the_loop_goes_on() -> None:
    async def boom(args: dict[str, Any]) -> str:
        raise RuntimeError("secret internals")

    async def denied(args: dict[str, Any]) -> str:
        raise PermissionDenied("API key k1 may not use model `support:hr`")

    engine = ScriptedEngine(
        [call("boom", x="a") + "\n" + call("denied", x="b"), "Sorry, I could not."]
    )
    recorder = Recorder()
    events, result = await run(
        engine,
        [FuncTool("boom", boom), FuncTool("denied", denied)],
        recorder,
        parallel_tool_calls=True,
    )
    bug, refused = (e for e in events if isinstance(e, AgentStep))
    assert not bug.ok and json.loads(bug.result) == {"error": "boom failed with an internal error"}
    assert "secret" not in bug.result
    assert not refused.ok
    assert json.loads(refused.result) == {"error": "API key k1 may not use model `support:hr`"}
    assert result.finish_reason == "stop" and result.answer == "Sorry, I could not."
    assert [type(e.exception) for e in recorder.executed_] == [RuntimeError, PermissionDenied]
    tool_messages = [m for m in engine.prompts[1].messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == [bug.result, refused.result]


async def test_a_tool_that_times_out_gives_an_error_result() -> None:
    async def slow(args: dict[str, Any]) -> str:
        await asyncio.sleep(10)
        return "never"

    engine = ScriptedEngine([call("slow", x="a"), "Too slow."])
    recorder = Recorder()
    events, result = await run(engine, [FuncTool("slow", slow, timeout=0.05)], recorder)
    (step,) = [e for e in events if isinstance(e, AgentStep)]
    assert json.loads(step.result) == {"error": "slow timed out after 0.05 s"}
    assert step.duration_ms < 5000 and result.answer == "Too slow."
    assert isinstance(recorder.executed_[0].exception, TimeoutError)


async def test_the_profile_timeout_applies_to_tools_without_their_own() -> None:
    async def slow(args: dict[str, Any]) -> str:
        await asyncio.sleep(10)
        return "never"

    engine = ScriptedEngine([call("slow", x="a"), "ok"])
    events, _ = await run(engine, [FuncTool("slow", slow)], tool_timeout=0.05)
    (step,) = [e for e in events if isinstance(e, AgentStep)]
    assert "timed out after 0.05 s" in step.result


async def test_an_unknown_tool_or_bad_arguments_are_errors_for_the_model() -> None:
    engine = ScriptedEngine(
        [
            call("nope", x="1"),
            '<tool_call>\n{"name": "calculator", "arguments": ["6*7"]}\n</tool_call>',
            call("calculator", expression="os.system('x')"),
            "Done.",
        ]
    )
    events, result = await run(engine, [CalculatorTool()], max_steps=4)
    unknown, not_object, refused = (e for e in events if isinstance(e, AgentStep))
    assert json.loads(unknown.result) == {
        "error": "there is no tool named 'nope'; the tools are calculator"
    }
    assert json.loads(not_object.result) == {"error": "the arguments must be a JSON object"}
    assert "is not allowed" in json.loads(refused.result)["error"]
    assert result.finish_reason == "stop" and result.turns == 4


async def test_the_step_limit_ends_the_loop() -> None:
    engine = ScriptedEngine([call("calculator", expression="1+1")] * 3)
    _, result = await run(engine, [CalculatorTool()], max_steps=2)
    assert result.finish_reason == "max_steps" and result.turns == 2
    assert len(result.steps) == 1  # the last turn's call is not run: nothing would read it
    assert result.answer == step_limit_message(2)
    assert len(engine.replies) == 1  # no third turn


async def test_the_step_limit_keeps_what_the_model_wrote() -> None:
    engine = ScriptedEngine(
        [
            "  Let me check.\n" + call("calculator", expression="2*3"),
            "\nStill checking. " + call("calculator", expression="6"),
        ]
    )
    _, result = await run(engine, [CalculatorTool()], max_steps=2)
    assert result.finish_reason == "max_steps"
    assert result.answer == "Let me check.\n\nStill checking."


async def test_a_turn_cut_by_max_tokens_ends_with_length_and_runs_no_broken_call() -> None:
    engine = ScriptedEngine([call("calculator", expression="1+1")])
    recorder = Recorder()
    _, result = await run(engine, [CalculatorTool()], recorder, max_tokens=20)
    assert result.finish_reason == "length" and not result.steps and not recorder.executed_


async def test_a_conversation_that_outgrows_the_context_ends_with_length() -> None:
    engine = ScriptedEngine([call("calculator", expression="1+1"), "never"])
    first = len(
        json.dumps(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 6 times 7?"},
            ]
        )
    )
    engine.max_model_len = first + 200  # room for the first turn, not for the second
    loop = AgentLoop(
        profile(max_tokens=100),
        [CalculatorTool()],
        EngineModel(engine),
        ToolContext("t", "r", NoServices()),
    )
    events = [e async for e in loop.run([{"role": "user", "content": "What is 6 times 7?"}])]
    result = events[-1]
    assert isinstance(result, AgentResult) and result.finish_reason == "length"
    assert len(result.steps) == 1 and result.answer == ""
    # On the first turn there is nothing to keep: the error is the caller's.
    engine = ScriptedEngine(["never"], max_model_len=10)
    loop = AgentLoop(profile(), [], EngineModel(engine), ToolContext("t", "r", NoServices()))
    with pytest.raises(ContextLengthExceeded):
        async for _ in loop.run([{"role": "user", "content": "hello"}]):
            pass


async def test_without_tools_the_model_just_answers() -> None:
    engine = ScriptedEngine(["Hello!"])
    _, result = await run(engine, [], question="Hi", system="")
    assert result.answer == "Hello!" and result.finish_reason == "stop"
    assert engine.params[0].structured is None and engine.prompts[0].tools is None
    assert engine.prompts[0].messages == [{"role": "user", "content": "Hi"}]


async def test_caller_system_messages_follow_the_profiles() -> None:
    loop = AgentLoop(
        profile(), [], EngineModel(ScriptedEngine([])), ToolContext("t", "r", NoServices())
    )
    conversation = loop.conversation(
        [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hi"}]
    )
    assert conversation == [
        {"role": "system", "content": "Be brief.\n\nAnswer in French."},
        {"role": "user", "content": "Hi"},
    ]


async def test_a_cancelled_execution_is_reported_and_propagates() -> None:
    started = asyncio.Event()

    async def hang(args: dict[str, Any]) -> str:
        started.set()
        await asyncio.sleep(10)
        return "never"

    engine = ScriptedEngine([call("hang", x="a"), "never"])
    recorder = Recorder()
    task = asyncio.ensure_future(run(engine, [FuncTool("hang", hang)], recorder))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (cancelled,) = recorder.cancelled_
    assert cancelled.step.tool == "hang" and not recorder.executed_
