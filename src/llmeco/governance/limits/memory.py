"""The limits of one process: token buckets and day counters in a dict (no Redis).

Used when ``LLMECO_REDIS_URL`` is empty. Each check-and-charge runs under one lock, so
concurrent requests of this process cannot both take the last unit of a bucket; other
replicas do not see these counters (use Redis for limits shared between replicas).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from llmeco.governance.keys import ApiKey
from llmeco.governance.limits.base import Limiter, daily_error, rpm_error, today, tpm_error
from llmeco.governance.limits.usage import Usage, UsageLedger


class _Bucket:
    """A token bucket's state: ``level`` tokens at monotonic time ``ts``."""

    __slots__ = ("level", "ts")

    def __init__(self, level: float, ts: float) -> None:
        self.level = level
        self.ts = ts

    def refill(self, capacity: float, rate: float, now: float) -> float:
        self.level = min(capacity, self.level + max(0.0, now - self.ts) * rate)
        self.ts = now
        return self.level


class MemoryLimiter(Limiter):
    """The limits of one process (no Redis): buckets and day counters in a dict."""

    def __init__(
        self,
        ledger: UsageLedger | None,
        flush_seconds: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        day: Callable[[], str] = today,
    ) -> None:
        super().__init__(ledger, flush_seconds)
        self._clock = clock
        self._day = day
        self._lock = threading.Lock()
        self._rpm: dict[str, _Bucket] = {}
        self._tpm: dict[str, _Bucket] = {}
        self._days: dict[tuple[str, str], Usage] = {}

    def _bucket(self, table: dict[str, _Bucket], key_id: str, capacity: int) -> _Bucket:
        now = self._clock()
        bucket = table.get(key_id)
        if bucket is None:
            bucket = table[key_id] = _Bucket(float(capacity), now)
        bucket.refill(float(capacity), capacity / 60.0, now)
        return bucket

    def _counter(self, key_id: str, day: str) -> Usage:
        counter = self._days.get((key_id, day))
        if counter is None:
            seeded = self._seed(key_id, day)
            counter = self._days.setdefault((key_id, day), seeded)
        return counter

    async def admit(self, key: ApiKey) -> None:
        """See :meth:`Limiter.admit`."""
        day = self._day()
        counter = self._counter(key.id, day)
        with self._lock:
            if key.rpm is not None:
                bucket = self._bucket(self._rpm, key.id, key.rpm)
                if bucket.level < 1.0:
                    raise rpm_error(key, (1.0 - bucket.level) * 60.0 / key.rpm)
                bucket.level -= 1.0
            counter.requests += 1
        self._record(key.id, day, 0, 0, 1)

    async def reserve(self, key: ApiKey, tokens: int, *, room: int = 1) -> int | None:
        """See :meth:`Limiter.reserve`."""
        day = self._day()
        counter = self._counter(key.id, day)
        with self._lock:
            budget = key.daily_tokens
            if budget is not None and counter.total_tokens + tokens + room > budget:
                raise daily_error(key, counter.total_tokens, tokens, room)
            if key.tpm is not None:
                bucket = self._bucket(self._tpm, key.id, key.tpm)
                if bucket.level <= 0.0:
                    raise tpm_error(key, (1.0 - bucket.level) * 60.0 / key.tpm)
                bucket.level -= tokens
            counter.prompt_tokens += tokens
            left = None if budget is None else budget - counter.total_tokens
        self._record(key.id, day, tokens, 0, 0)
        return left

    async def consume(self, key: ApiKey, tokens: int) -> int | None:
        """See :meth:`Limiter.consume`."""
        day = self._day()
        counter = self._counter(key.id, day)
        with self._lock:
            if key.tpm is not None:
                self._bucket(self._tpm, key.id, key.tpm).level -= tokens
            counter.completion_tokens += tokens
            left = None if key.daily_tokens is None else key.daily_tokens - counter.total_tokens
        self._record(key.id, day, 0, tokens, 0)
        return left

    async def refund(self, key: ApiKey, tokens: int) -> None:
        """See :meth:`Limiter.refund`."""
        day = self._day()
        counter = self._counter(key.id, day)
        with self._lock:
            if key.tpm is not None:
                bucket = self._bucket(self._tpm, key.id, key.tpm)
                bucket.level = min(float(key.tpm), bucket.level + tokens)
            counter.prompt_tokens -= tokens
        self._record(key.id, day, -tokens, 0, 0)

    async def usage(self, key_id: str, day: str | None = None) -> Usage:
        """See :meth:`Limiter.usage`."""
        c = self._counter(key_id, day or self._day())
        return Usage(c.key_id, c.day, c.prompt_tokens, c.completion_tokens, c.requests)
