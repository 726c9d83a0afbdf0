"""The engine boundary: the only thing the server and the apps may use.

The native engine (:mod:`llmeco.engine.async_engine`) implements it; the server's and the
apps' tests implement it with a small fake. Other backends (vLLM, llama.cpp, a remote
OpenAI-compatible server) plug in behind the same protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from llmeco.engine.request import Prompt, RequestOutput, SamplingParams


@dataclass(frozen=True)
class ModelInfo:
    """What a client may know about a served model."""

    name: str
    max_model_len: int
    vocab_size: int
    created: int
    eos_token_ids: tuple[int, ...] = ()
    source: str = ""
    #: Registry version being served (``"support:3"``), empty outside the registry; the
    #: server reports it as ``system_fingerprint`` and in ``/v1/models``.
    version: str = ""
    #: The tool-call format the model's chat template uses (a parser name of
    #: :mod:`llmeco.modeling.tool_parsers`); empty: the default, ``hermes``.
    tool_parser: str = ""


@dataclass(frozen=True)
class EngineStats:
    """A snapshot for metrics and readiness."""

    running: int
    waiting: int
    kv_blocks_used: int
    kv_blocks_total: int
    #: Sequences preempted since the engine started (a counter).
    preemptions: int = 0
    #: Prefix caching counters: prompt tokens looked up at admission, and those found
    #: cached (their K/V reused, not recomputed).
    prefix_queried_tokens: int = 0
    prefix_hit_tokens: int = 0
    #: Speculative decoding counters: draft tokens verified, and those accepted.
    spec_draft_tokens: int = 0
    spec_accepted_tokens: int = 0

    @property
    def kv_usage(self) -> float:
        """Fraction of KV-cache blocks in use, 0..1."""
        return self.kv_blocks_used / self.kv_blocks_total if self.kv_blocks_total else 0.0


@runtime_checkable
class EngineProvider(Protocol):
    """What the server keeps for each served model: the source of an engine per request.

    A plain engine hands out itself; a hot-swappable slot
    (:class:`llmeco.engine.swap.ModelSlot`) hands out a lease on its current engine, so a
    request runs on one model version from start to end even if the model is swapped
    meanwhile. The server calls :meth:`acquire` once per request and never asks which kind
    it holds.
    """

    def acquire(self) -> EngineClient:
        """The engine this request runs on (released when the request lets go of it)."""
        ...


@runtime_checkable
class EngineClient(EngineProvider, Protocol):
    """An engine serving one model to many concurrent requests."""

    @property
    def model_info(self) -> ModelInfo:
        """Name, context length and vocabulary of the served model."""
        ...

    def generate(
        self, prompt: Prompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        """Submit a request and stream its outputs.

        Raises (on first iteration) ``InvalidRequest``/``ContextLengthExceeded`` for a request
        that can never run, ``Overloaded`` when the waiting queue is full and ``EngineDead``
        after shutdown. Closing the iterator (or cancelling its task) aborts the request.
        """
        ...

    async def abort(self, request_id: str) -> None:
        """Stop a request and free its KV memory; unknown ids are ignored."""
        ...

    async def check_health(self) -> None:
        """Return if the engine can serve; raise ``EngineDead`` otherwise."""
        ...

    def stats(self) -> EngineStats:
        """Running/waiting counts and KV-cache usage right now."""
        ...

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids the engine would feed the model for this prompt (chat template applied)."""
        ...

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of token ids."""
        ...

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop accepting, let running requests finish within ``timeout``, then stop."""
        ...


def describe(engine: EngineClient) -> dict[str, Any]:
    """A JSON-able summary of an engine for status pages."""
    s = engine.stats()
    return {
        "model": engine.model_info.name,
        "running": s.running,
        "waiting": s.waiting,
        "kv_usage": round(s.kv_usage, 4),
    }
