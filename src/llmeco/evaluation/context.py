"""What a task runs in and hands back: :class:`EvalContext` and :class:`TaskResult`.

What a task may use, all through :class:`EvalContext` (created lazily, shared by the tasks
of a run):

* ``ctx.scorer()`` — log-likelihoods from the model itself (:mod:`.scoring`; the engine has
  no scoring API);
* ``await ctx.generate(prompts, params, task)`` — generations through the engine
  (:class:`~llmeco.engine.protocol.EngineClient`), submitted concurrently so the engine
  batches them;
* ``ctx.retriever(spec)`` — a retriever for the ``retrieval`` task (:data:`Retriever`),
  passed in by the caller or built by a factory in :data:`RETRIEVERS`.

This module knows no task type: the table of task types is :mod:`.tasks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmeco.errors import ConfigError, Overloaded
from llmeco.settings import Settings

if TYPE_CHECKING:
    from llmeco.engine.protocol import EngineClient
    from llmeco.engine.request import Prompt, SamplingParams
    from llmeco.evaluation.scoring import Scorer

#: ``progress(task_name, done, total)``.
ProgressFn = Callable[[str, int, int], None]
#: A retriever: ``(query, k)`` → up to ``k`` document/chunk ids, best first.
Retriever = Callable[[str, int], Sequence[str]]
#: Builds a retriever from the part of a spec after ``scheme:`` (e.g. ``kb:handbook``).
RetrieverFactory = Callable[[str, Settings], Retriever]

#: Retriever factories by scheme (``kb`` → the knowledge-base retriever, once registered).
RETRIEVERS: dict[str, RetrieverFactory] = {}


def register_retriever(scheme: str, factory: RetrieverFactory) -> None:
    """Let suites name retrievers as ``scheme:ARG`` (e.g. ``kb:handbook``)."""
    RETRIEVERS[scheme] = factory


@dataclass
class TaskResult:
    """What one task measured: metrics (numbers), details (tables) and per-item predictions."""

    n: int
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    predictions: list[dict[str, Any]] = field(default_factory=list)


class EvalContext:
    """Shared, lazily created resources of one evaluation run (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        model_path: Path,
        model_name: str,
        *,
        batch_tokens: int = 4096,
        concurrency: int = 32,
        retrievers: Mapping[str, Retriever] | None = None,
        progress: ProgressFn | None = None,
        engine: EngineClient | None = None,
        scoring_url: str | None = None,
    ) -> None:
        self.settings = settings
        #: Score through this server's prompt logprobs instead of a local HF model.
        self.scoring_url = scoring_url
        self.model_path = model_path
        self.model_name = model_name
        self.batch_tokens = batch_tokens
        self.concurrency = concurrency
        self.retrievers = dict(retrievers or {})
        self.progress = progress
        self._scorer: Scorer | None = None
        self._engine = engine
        self._own_engine = engine is None

    def report(self, task: str, done: int, total: int) -> None:
        """Forward progress to the caller's callback, if any."""
        if self.progress is not None:
            self.progress(task, done, total)

    def scorer(self) -> Scorer:
        """The log-likelihood scorer over the run's model (loaded on first use)."""
        if self._scorer is None and self.scoring_url:
            from llmeco.evaluation.server_scoring import ServerScorer
            from llmeco.modeling.load import load_config, load_tokenizer

            config = load_config(self.model_path)
            self._scorer = ServerScorer(
                self.scoring_url,
                self.model_name,
                load_tokenizer(self.model_path),
                max_length=int(getattr(config, "max_position_embeddings", 2048) or 2048),
                api_key=self.settings.api_key.get_secret_value() or None,
            )
        if self._scorer is None:
            from llmeco.evaluation.scoring import Scorer

            self._scorer = Scorer.load(
                self.model_path, self.settings, batch_tokens=self.batch_tokens
            )
        return self._scorer

    def engine(self) -> EngineClient:
        """The engine serving the run's model (started on first use)."""
        if self._engine is None:
            from llmeco.engine.async_engine import AsyncEngine

            self._engine = AsyncEngine.from_ref(
                str(self.model_path), self.settings, self.model_name
            )
        return self._engine

    async def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, task: str
    ) -> list[str]:
        """Generate one completion per prompt through the engine, ``concurrency`` at a time.

        All requests are in flight together so the engine batches them; a full queue
        (``Overloaded``) is retried after a short wait instead of failing the run.
        """
        engine = self.engine()
        limit = asyncio.Semaphore(max(1, self.concurrency))
        done = 0
        run_tag = uuid.uuid4().hex[:8]

        async def one(index: int, prompt: Prompt) -> str:
            nonlocal done
            async with limit:
                for attempt in range(100):
                    try:
                        text = await _collect(engine, prompt, params, f"eval-{run_tag}-{index}")
                        break
                    except Overloaded:
                        if attempt == 99:
                            raise
                        await asyncio.sleep(0.05)
            done += 1
            self.report(task, done, len(prompts))
            return text

        return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))

    def retriever(self, spec: str) -> Retriever:
        """The retriever named ``spec``: one passed in by the caller, or ``scheme:arg`` built by
        a registered factory.

        Raises:
            ConfigError: nothing provides ``spec`` (the message lists what does exist).
        """
        if spec in self.retrievers:
            return self.retrievers[spec]
        scheme, _, arg = spec.partition(":")
        if scheme in RETRIEVERS:
            self.retrievers[spec] = RETRIEVERS[scheme](arg, self.settings)
            return self.retrievers[spec]
        known = sorted(self.retrievers) + [f"{s}:…" for s in sorted(RETRIEVERS)]
        raise ConfigError(
            f"no retriever {spec!r} (available: {', '.join(known) or 'none registered'})"
        )

    async def close(self) -> None:
        """Shut down the engine this context started (a passed-in engine is left running)."""
        if self._engine is not None and self._own_engine:
            with contextlib.suppress(Exception):
                await self._engine.shutdown(timeout=0)
        self._engine = None
        self._scorer = None


async def _collect(engine: EngineClient, prompt: Prompt, params: SamplingParams, rid: str) -> str:
    """The full text of sequence 0 of one request."""
    parts: list[str] = []
    async for output in engine.generate(prompt, params, rid):
        parts.extend(d.text for d in output.deltas if d.index == 0)
    return "".join(parts)
