"""A scripted EngineClient for the evaluation tasks' tests: the reply is a function of the
prompt's last user message; it counts how many requests were in flight at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from llmeco.engine.protocol import EngineStats, ModelInfo
from llmeco.engine.request import ChatPrompt, Prompt, RequestOutput, SamplingParams, SequenceDelta


def last_user(prompt: Prompt) -> str:
    """The text the reply is scripted on."""
    if isinstance(prompt, ChatPrompt):
        return str([m for m in prompt.messages if m["role"] == "user"][-1]["content"])
    return prompt if isinstance(prompt, str) else ""


@dataclass
class ScriptedEngine:
    """Replies ``answer(last user message)`` in 3-character deltas."""

    answer: Callable[[str], str]
    running: int = 0
    peak: int = 0
    params: list[SamplingParams] = field(default_factory=list)

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo("scripted", 4096, 256, 0)

    async def generate(
        self, prompt: Prompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        self.params.append(params)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            text = self.answer(last_user(prompt))
            chunks = [text[i : i + 3] for i in range(0, len(text), 3)] or [""]
            for i, chunk in enumerate(chunks):
                await asyncio.sleep(0)
                last = i == len(chunks) - 1
                delta = SequenceDelta(0, [1], chunk, finish_reason="stop" if last else None)
                yield RequestOutput(request_id, [1], [delta], finished=last)
        finally:
            self.running -= 1

    async def abort(self, request_id: str) -> None:
        return None

    async def check_health(self) -> None:
        return None

    def acquire(self) -> ScriptedEngine:
        """A plain engine serves every request itself."""
        return self

    def stats(self) -> EngineStats:
        return EngineStats(self.running, 0, 0, 1)

    def encode(self, prompt: Prompt) -> list[int]:
        return [1]

    def decode(self, token_ids: Sequence[int]) -> str:
        return ""

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None
