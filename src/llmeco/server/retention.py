"""The periodic purge inside ``llmeco serve``: retention applied while the server runs.

When any ``LLMECO_RETENTION_*_DAYS`` is set, :func:`retention_running` (entered by
``ServerRuntime.serve``) runs :func:`llmeco.governance.retention.purge` once at start and then
every ``LLMECO_RETENTION_INTERVAL_SECONDS``, in a worker thread, in batches of
``LLMECO_RETENTION_BATCH`` rows per transaction, each purge recorded in the server's audit
ledger. A failing purge is logged and retried at the next interval; it never stops the server.
On shutdown the purge stops after its current batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator

import anyio

import llmeco.apps.conversations  # noqa: F401  (registers the conversation tables)
from llmeco.governance.retention import PurgeResult, RetentionPolicy, purge
from llmeco.server.state import ServerState
from llmeco.store import Store

log = logging.getLogger("llmeco.retention")


class RetentionJob:
    """Purges what is past its retention, every ``interval`` seconds."""

    def __init__(self, state: ServerState, policy: RetentionPolicy, interval: float) -> None:
        self.state = state
        self.policy = policy
        self.interval = interval
        self.runs = 0
        self._stop = threading.Event()
        self._store: Store | None = None
        self._own_store = False

    async def run(self) -> None:
        """Purge now, then every interval, until cancelled."""
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

    async def run_once(self) -> list[PurgeResult]:
        """One purge; errors are logged (and the purge retried next interval), never raised."""
        try:
            results = await anyio.to_thread.run_sync(self._purge)
        except Exception as exc:
            log.error("retention purge failed", exc_info=exc)
            return []
        finally:
            self.runs += 1
        for r in results:
            if r.count:
                log.info(
                    "retention purge",
                    extra={"kind": r.kind, "table": r.table, "count": r.count},
                )
        return results

    def _purge(self) -> list[PurgeResult]:
        ledger = self.state.ledger
        if self._store is None:
            if ledger is not None:
                self._store = ledger.store
            else:
                self._store, self._own_store = Store.from_settings(self.state.settings), True
        return purge(self._store, self.policy, ledger=ledger, should_stop=self._stop.is_set)

    def stop(self) -> None:
        """Ask a running purge to end after its current batch."""
        self._stop.set()

    def close(self) -> None:
        """Release the store the job opened (if it opened one)."""
        if self._own_store and self._store is not None:
            self._store.close()


@contextlib.asynccontextmanager
async def retention_running(state: ServerState) -> AsyncIterator[RetentionJob | None]:
    """Run the periodic purge while the block runs (nothing when no retention is set)."""
    policy = RetentionPolicy.from_settings(state.settings)
    if not policy.configured:
        yield None
        return
    job = RetentionJob(state, policy, state.settings.retention_interval_seconds)
    task = asyncio.create_task(job.run(), name="llmeco-retention")
    try:
        yield job
    finally:
        job.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        job.close()
