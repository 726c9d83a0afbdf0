"""A served model whose engine can be replaced while it serves (hot swap).

:class:`ModelSlot` is what the server keeps per served name. A request takes a *lease*
(:meth:`ModelSlot.lease`): an :class:`EngineClient` bound to the engine current at that
moment, so every call the request makes — encode, generate, decode — goes to one version and
its response comes wholly from it. :meth:`ModelSlot.swap` installs a new engine atomically
(new leases get it at once); the old one keeps serving the leases already taken and is shut
down when the last of them is gone.

A lease is alive as long as the request handling holds it (the handler, its ``Generation``,
the streaming response); the slot tracks leases in a :class:`weakref.WeakSet`, so a request
that fails before it ever generates releases its lease without any bookkeeping on the error
path. No library offers this for an in-process engine: vLLM and Ollama replace a model by
restarting its server or process, which drops or queues requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from llmeco.engine.protocol import EngineClient, EngineStats, ModelInfo
from llmeco.engine.request import Prompt, RequestOutput, SamplingParams

log = logging.getLogger(__name__)


class Lease:
    """One request's handle on the engine that was current when it started.

    Implements :class:`EngineClient` by delegating to that engine; the slot keeps the engine
    alive until every lease on it has been dropped.
    """

    def __init__(self, engine: EngineClient) -> None:
        self.engine = engine

    def acquire(self) -> EngineClient:
        """A lease is already pinned to one engine: itself."""
        return self

    @property
    def model_info(self) -> ModelInfo:
        """The leased engine's model."""
        return self.engine.model_info

    def generate(
        self, prompt: Prompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        """Generate on the leased engine."""
        return self.engine.generate(prompt, params, request_id)

    async def abort(self, request_id: str) -> None:
        """Abort on the leased engine."""
        await self.engine.abort(request_id)

    async def check_health(self) -> None:
        """The leased engine's health."""
        await self.engine.check_health()

    def stats(self) -> EngineStats:
        """The leased engine's stats."""
        return self.engine.stats()

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids from the leased engine's tokenizer."""
        return self.engine.encode(prompt)

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text from the leased engine's tokenizer."""
        return self.engine.decode(token_ids)

    async def shutdown(self, timeout: float = 30.0) -> None:
        """A lease does not own its engine: the slot shuts engines down."""


@dataclass(eq=False)
class _Retired:
    engine: EngineClient
    leases: weakref.WeakSet[Lease]
    since: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None


class ModelSlot:
    """The engine behind one served name, replaceable without dropping a request.

    Usable wherever an :class:`EngineClient` is (stats sum every engine still alive, so
    metrics show a draining version's KV use), but requests should go through
    :meth:`lease` so that they stay on one version.
    """

    def __init__(self, engine: EngineClient, ref: str, *, drain_timeout: float = 600.0) -> None:
        """Serve ``engine``, loaded from model reference ``ref`` (kept for reloads).

        ``drain_timeout`` bounds how long a replaced engine waits for its leases before it
        is shut down anyway (its remaining requests are then aborted).
        """
        self.ref = ref
        self.drain_timeout = drain_timeout
        self._engine = engine
        self._leases: weakref.WeakSet[Lease] = weakref.WeakSet()
        self._retired: list[_Retired] = []
        self.swaps = 0

    # -- serving ---------------------------------------------------------------------
    @property
    def current(self) -> EngineClient:
        """The engine new requests get."""
        return self._engine

    def lease(self) -> Lease:
        """A handle that pins the calling request to the current engine."""
        lease = Lease(self._engine)
        self._leases.add(lease)
        return lease

    def acquire(self) -> EngineClient:
        """A lease on the current engine (:class:`~llmeco.engine.protocol.EngineProvider`)."""
        return self.lease()

    @property
    def retiring(self) -> list[dict[str, object]]:
        """Replaced engines still finishing their requests (for status pages)."""
        return [
            {
                "version": r.engine.model_info.version,
                "leases": len(r.leases),
                "seconds": round(time.monotonic() - r.since, 1),
            }
            for r in self._retired
        ]

    async def swap(self, engine: EngineClient) -> EngineClient:
        """Make ``engine`` current for every new request; return the engine it replaced.

        The replaced engine is shut down in the background once its last lease is gone
        (or after ``drain_timeout``).
        """
        old, old_leases = self._engine, self._leases
        self._engine, self._leases = engine, weakref.WeakSet()
        self.swaps += 1
        retired = _Retired(old, old_leases)
        retired.task = asyncio.create_task(self._retire(retired), name="llmeco-retire-engine")
        self._retired.append(retired)
        return old

    async def _retire(self, retired: _Retired) -> None:
        deadline = retired.since + self.drain_timeout
        try:
            while len(retired.leases) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            left = len(retired.leases)
            await retired.engine.shutdown(timeout=0.0 if left == 0 else 1.0)
            log.info(
                "replaced engine freed",
                extra={"version": retired.engine.model_info.version, "abandoned_leases": left},
            )
        except Exception:  # an engine that fails to stop must not take the slot down
            log.exception("shutting down a replaced engine failed")
        finally:
            if retired in self._retired:
                self._retired.remove(retired)

    async def wait_retired(self, timeout: float | None = None) -> None:
        """Wait until every replaced engine has been shut down (tests, shutdown)."""
        tasks = [r.task for r in self._retired if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    # -- EngineClient (for status, metrics and shutdown) --------------------------------
    @property
    def model_info(self) -> ModelInfo:
        """The current engine's model."""
        return self._engine.model_info

    def generate(
        self, prompt: Prompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        """Generate on the current engine (prefer :meth:`lease` for multi-call requests)."""
        return self._engine.generate(prompt, params, request_id)

    async def abort(self, request_id: str) -> None:
        """Abort ``request_id`` on whichever engine runs it."""
        for engine in (self._engine, *(r.engine for r in self._retired)):
            await engine.abort(request_id)

    async def check_health(self) -> None:
        """The current engine's health."""
        await self._engine.check_health()

    def stats(self) -> EngineStats:
        """Counts and KV use summed over the current and every draining engine."""
        parts = [self._engine.stats(), *(r.engine.stats() for r in self._retired)]
        return EngineStats(
            running=sum(p.running for p in parts),
            waiting=sum(p.waiting for p in parts),
            kv_blocks_used=sum(p.kv_blocks_used for p in parts),
            kv_blocks_total=sum(p.kv_blocks_total for p in parts),
            preemptions=sum(p.preemptions for p in parts),
            prefix_queried_tokens=sum(p.prefix_queried_tokens for p in parts),
            prefix_hit_tokens=sum(p.prefix_hit_tokens for p in parts),
            spec_draft_tokens=sum(p.spec_draft_tokens for p in parts),
            spec_accepted_tokens=sum(p.spec_accepted_tokens for p in parts),
        )

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids from the current engine's tokenizer."""
        return self._engine.encode(prompt)

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text from the current engine's tokenizer."""
        return self._engine.decode(token_ids)

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Shut down the current engine and any still draining."""
        for r in list(self._retired):
            if r.task is not None:
                r.task.cancel()
        await asyncio.gather(
            self._engine.shutdown(timeout),
            *(r.engine.shutdown(timeout) for r in self._retired),
        )
        self._retired.clear()
