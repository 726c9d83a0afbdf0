"""The :class:`Limiter` interface both backends implement, and what they share.

Shared here, public so that neither backend imports the other's internals: the UTC day
(:func:`today`, :func:`seconds_to_midnight`), the Redis key lifetimes, and the
:class:`~llmeco.errors.LimitExceeded` each kind of refusal raises (:func:`rpm_error`,
:func:`tpm_error`, :func:`daily_error`), so a refusal reads the same from either backend.
The base class also owns persistence: charges are queued and flushed to the store's
:class:`~llmeco.governance.limits.usage.UsageLedger`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta

from llmeco.errors import LimitExceeded
from llmeco.governance.keys import ApiKey
from llmeco.governance.limits.usage import Usage, UsageLedger

#: Seconds a Redis day counter is kept (the day itself plus margin for late readers).
DAY_TTL = 3 * 86400
#: Seconds an idle Redis bucket is kept (an absent bucket is full).
BUCKET_TTL = 3600


def today() -> str:
    """The current UTC day, ``YYYY-MM-DD`` (daily budgets reset at 00:00 UTC)."""
    return datetime.now(UTC).date().isoformat()


def seconds_to_midnight() -> float:
    """Seconds until the next 00:00 UTC."""
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return max(1.0, (midnight - now).total_seconds())


def _retry(seconds: float) -> float:
    return max(1.0, math.ceil(seconds))


def rpm_error(key: ApiKey, wait: float) -> LimitExceeded:
    """The 429 for a key whose RPM bucket is empty; ``wait``: seconds until one request fits."""
    return LimitExceeded(
        f"Rate limit reached for API key {key.id}: {key.rpm} requests per minute (rpm). "
        f"Retry in {_retry(wait):.0f} s.",
        retry_after=_retry(wait),
        limit="rpm",
    )


def tpm_error(key: ApiKey, wait: float) -> LimitExceeded:
    """The 429 for a key whose TPM bucket is empty (or in debt); ``wait`` as for RPM."""
    return LimitExceeded(
        f"Rate limit reached for API key {key.id}: {key.tpm} tokens per minute (tpm). "
        f"Retry in {_retry(wait):.0f} s.",
        retry_after=_retry(wait),
        limit="tpm",
    )


def daily_error(key: ApiKey, used: int, tokens: int, room: int) -> LimitExceeded:
    """The 429 for a request whose ``tokens`` (plus ``room`` for output) do not fit what is
    left of the key's daily budget after ``used``; retry after 00:00 UTC."""
    more = f"{tokens} input tokens" + (" and room for output" if room else "")
    return LimitExceeded(
        f"Daily token budget exhausted for API key {key.id}: {used} of {key.daily_tokens} "
        f"tokens (daily_tokens) used today (UTC) and this request needs {more}. The budget "
        "resets at 00:00 UTC.",
        retry_after=seconds_to_midnight(),
        limit="daily_budget",
    )


class Limiter(ABC):
    """Enforces and reports RPM, TPM and daily budgets; persists daily usage."""

    def __init__(self, ledger: UsageLedger | None, flush_seconds: float = 1.0) -> None:
        self.ledger = ledger
        self.flush_seconds = flush_seconds
        self._pending: dict[tuple[str, str], list[int]] = {}
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._flush_task: asyncio.Task[None] | None = None

    # ---- the interface ---------------------------------------------------------------------

    @abstractmethod
    async def admit(self, key: ApiKey) -> None:
        """Count one request against RPM (and the day's request count); 429 when over."""

    @abstractmethod
    async def reserve(self, key: ApiKey, tokens: int, *, room: int = 1) -> int | None:
        """Admit and charge ``tokens`` input tokens before a call.

        Refused (429) while the TPM bucket is empty, or when the day's usage plus ``tokens``
        plus ``room`` (1 for a generation: space for an output token) is over the budget.
        Returns the daily tokens left afterwards (None: no budget).
        """

    @abstractmethod
    async def consume(self, key: ApiKey, tokens: int) -> int | None:
        """Charge ``tokens`` output tokens (never refused); the daily tokens left, or None."""

    @abstractmethod
    async def refund(self, key: ApiKey, tokens: int) -> None:
        """Give back input tokens charged by :meth:`reserve` for a call that never ran."""

    @abstractmethod
    async def usage(self, key_id: str, day: str | None = None) -> Usage:
        """The counter the limits enforce, for ``key_id`` on ``day`` (default today)."""

    async def aclose(self) -> None:
        """Persist what is pending and release connections."""
        self.flush()

    # ---- persistence -----------------------------------------------------------------------

    def _record(self, key_id: str, day: str, prompt: int, completion: int, requests: int) -> None:
        if self.ledger is None:
            return
        with self._pending_lock:
            row = self._pending.setdefault((key_id, day), [0, 0, 0])
            row[0] += prompt
            row[1] += completion
            row[2] += requests

    def _seed(self, key_id: str, day: str) -> Usage:
        return self.ledger.read(key_id, day) if self.ledger is not None else Usage(key_id, day)

    def flush(self) -> None:
        """Write pending usage to the store now (thread-safe; a failed write is retried)."""
        if self.ledger is None:
            return
        with self._flush_lock:
            with self._pending_lock:
                pending, self._pending = self._pending, {}
            try:
                self.ledger.add(pending)
            except Exception:
                with self._pending_lock:  # put it back for the next flush
                    for k, (p, c, r) in pending.items():
                        row = self._pending.setdefault(k, [0, 0, 0])
                        row[0] += p
                        row[1] += c
                        row[2] += r
                raise
            self._last_flush = time.monotonic()

    def maybe_flush(self) -> None:
        """Start a background flush if one is due (called after each request)."""
        if not self._pending or time.monotonic() - self._last_flush < self.flush_seconds:
            return
        if self._flush_task is not None and not self._flush_task.done():
            return
        self._last_flush = time.monotonic()
        self._flush_task = asyncio.get_running_loop().create_task(self._background_flush())

    async def _background_flush(self) -> None:
        try:
            await asyncio.to_thread(self.flush)
        except Exception as exc:  # the store is down: keep serving, retry on the next flush
            logging.getLogger("llmeco.governance.limits").error(
                "could not persist key usage: %s", exc
            )
