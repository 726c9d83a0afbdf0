"""A deterministic EngineClient for the server's tests (no model, no torch).

Tokens are characters: ``encode`` maps each character to its code point and ``decode``
back (a chat renders as ``role: content`` lines, after a ``tools: NAMES`` line when the prompt
has tools). Every sequence "generates" the scripted ``reply`` one character per step, cut at
``max_tokens`` (finish "length") or at a stop string (finish "stop"). The fake records the
requests it saw and the ones that were aborted, and keeps a ``running`` count that drops when
a stream is closed early, so tests can check that a disconnect cancels generation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmeco.engine.protocol import EngineStats, ModelInfo
from llmeco.engine.request import (
    ChatPrompt,
    Prompt,
    RequestOutput,
    SamplingParams,
    SequenceDelta,
    TokenLogprob,
)
from llmeco.errors import ContextLengthExceeded, EngineDead, GenerateError, Overloaded

VOCAB = 0x10000


@dataclass
class FakeEngine:
    """Scripted engine; tweak the public fields to make it slow, full, or dead."""

    name: str = "fake-model"
    reply: str = "Hello from the fake engine."
    max_model_len: int = 256
    #: Seconds between steps (0 still yields to the event loop).
    delay: float = 0.0
    #: Raise Overloaded when this many requests already run (None: unbounded).
    max_running: int | None = None
    retry_after: float = 2.0
    healthy: bool = True
    #: Raise GenerateError after this many steps (mid-stream failure).
    fail_after: int | None = None
    dead: bool = False
    #: Registry version it pretends to serve (``ModelInfo.version``).
    version: str = ""
    #: Prompt tokens it reports as served from its prefix cache (at most the prompt).
    cached_tokens: int = 0
    running: int = 0
    requests: list[str] = field(default_factory=list)
    params: list[SamplingParams] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            max_model_len=self.max_model_len,
            vocab_size=VOCAB,
            created=1_700_000_000,
            source="fake",
            version=self.version,
        )

    def encode(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, ChatPrompt):
            text = ""
            if prompt.tools:
                text += "tools: " + ", ".join(t["function"]["name"] for t in prompt.tools) + "\n"
            text += "".join(_message_line(m) for m in prompt.messages)
            if prompt.add_generation_prompt:
                text += "assistant: "
            return [ord(c) for c in text]
        if isinstance(prompt, str):
            return [ord(c) for c in prompt]
        return list(prompt)

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(chr(t) for t in token_ids)

    def _script(self, params: SamplingParams) -> tuple[str, str, str | None]:
        """Text each sequence will produce, its finish reason and stop reason."""
        text, finish, stop_reason = self.reply, "stop", None
        for s in params.stop:
            cut = text.find(s)
            if cut >= 0:
                text, stop_reason = text[:cut], s
        if params.max_tokens is not None and len(text) > params.max_tokens:
            text, finish, stop_reason = text[: params.max_tokens], "length", None
        return text, finish, stop_reason

    async def generate(
        self, prompt: Prompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        if self.dead:
            raise EngineDead("the fake engine is dead")
        if self.max_running is not None and self.running >= self.max_running:
            raise Overloaded("the waiting queue is full", retry_after=self.retry_after)
        ids = self.encode(prompt)
        if len(ids) + (params.max_tokens or 0) > self.max_model_len:
            raise ContextLengthExceeded(len(ids), params.max_tokens or 0, self.max_model_len)
        self.requests.append(request_id)
        self.params.append(params)
        self.prompts.append(self.decode(ids))
        self.running += 1
        arrival = time.perf_counter()
        finished = False
        try:
            text, finish, stop_reason = self._script(params)
            steps = max(1, len(text))
            for step in range(steps):
                await asyncio.sleep(self.delay)
                if self.fail_after is not None and step >= self.fail_after:
                    raise GenerateError("the fake engine failed mid-generation")
                last = step == steps - 1
                deltas = []
                for index in range(params.n):
                    ch = text[step] if text else ""
                    deltas.append(
                        SequenceDelta(
                            index=index,
                            token_ids=[ord(ch)] if ch else [],
                            text=ch,
                            logprobs=_logprobs(ch, params.logprobs) if ch else None,
                            finish_reason=finish if last else None,  # type: ignore[arg-type]
                            stop_reason=stop_reason if last else None,
                        )
                    )
                out = RequestOutput(request_id, ids, deltas, finished=last)
                out.num_cached_tokens = min(self.cached_tokens, len(ids))
                if step == 0:
                    out.queue_time = 0.0
                    out.time_to_first_token = time.perf_counter() - arrival
                finished = last
                if last:
                    self.completed.append(request_id)
                yield out
        finally:
            self.running -= 1
            if not finished and request_id not in self.aborted:
                self.aborted.append(request_id)

    async def abort(self, request_id: str) -> None:
        if request_id in self.requests and request_id not in self.aborted:
            self.aborted.append(request_id)

    async def check_health(self) -> None:
        if self.dead or not self.healthy:
            raise EngineDead("the fake engine is unhealthy")

    def acquire(self) -> FakeEngine:
        """A plain engine serves every request itself."""
        return self

    def stats(self) -> EngineStats:
        return EngineStats(
            running=self.running, waiting=0, kv_blocks_used=4 * self.running, kv_blocks_total=64
        )

    async def shutdown(self, timeout: float = 30.0) -> None:
        self.dead = True


def _message_line(message: dict[str, Any]) -> str:
    """One message of a fake-rendered chat: ``role: content`` and any tool-call details."""
    line = f"{message['role']}: {message['content']}"
    for call in message.get("tool_calls") or []:
        line += f" [call {call['id']} {call['function']['name']} {call['function']['arguments']}]"
    if message.get("tool_call_id"):
        line += f" [answers {message['tool_call_id']}]"
    return line + "\n"


def _logprobs(ch: str, top: int | None) -> list[TokenLogprob] | None:
    if top is None:
        return None
    alternatives = [(ord(ch), ch, -0.25)] + [
        (ord(c), c, -1.0 - i) for i, c in enumerate("xyzuvw"[: max(0, top - 1)])
    ]
    return [TokenLogprob(ord(ch), ch, -0.25, alternatives[:top])]
