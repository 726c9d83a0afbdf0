"""Per-key limits: requests per minute, tokens per minute, and a daily token budget.

One counter enforces and is reported (PITFALLS, Governance): :meth:`Limiter.usage` — what
``GET /admin/usage`` shows — reads the very numbers :meth:`Limiter.reserve` and
:meth:`Limiter.consume` check, in Redis when ``LLMECO_REDIS_URL`` is set (shared by every
replica, updated by atomic Lua scripts) and in process memory otherwise.

* **RPM** — a token bucket of ``rpm`` requests refilled at ``rpm/60`` per second; every
  authenticated request takes one (:meth:`Limiter.admit`).
* **TPM** — a token bucket of ``tpm`` tokens refilled at ``tpm/60`` per second. A request is
  admitted while the bucket is positive; its prompt tokens are taken before the call and its
  output tokens as they stream, so a large request may drive the bucket into debt, which
  later requests wait out. The rate is kept on average; no stream is cut for TPM.
* **Daily budget** — prompt + completion tokens per UTC day. Before the call the prompt must
  fit with room for one output token; output is charged as it streams and the caller stops
  a stream once :meth:`Limiter.consume` reports nothing left (the server also caps
  ``max_tokens`` at what is left, so a lone stream ends exactly on the budget).

Refusals raise :class:`~llmeco.errors.LimitExceeded` naming the limit with ``retry_after``
(until a request fits the bucket, or until 00:00 UTC for the budget) → 429 + Retry-After.

Daily usage is also persisted in the store (``api_key_usage``): each process writes what it
charged every ``LLMECO_USAGE_FLUSH_SECONDS`` and on close, and seeds a (key, day) counter from
the store the first time it sees it — so a restart (or a Redis restart) does not reset a
budget; at most the last unflushed second is lost on a crash.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from llmeco.errors import EngineDead, LimitExceeded
from llmeco.governance.keys import ApiKey
from llmeco.governance.tables import ApiKeyUsageRow
from llmeco.settings import Settings
from llmeco.store import Store

DAY_TTL = 3 * 86400
BUCKET_TTL = 3600


def today() -> str:
    """The current UTC day, ``YYYY-MM-DD`` (daily budgets reset at 00:00 UTC)."""
    return datetime.now(UTC).date().isoformat()


def seconds_to_midnight() -> float:
    """Seconds until the next 00:00 UTC."""
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return max(1.0, (midnight - now).total_seconds())


@dataclass
class Usage:
    """Tokens and requests of one key on one UTC day."""

    key_id: str
    day: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens: what the daily budget counts."""
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "key_id": self.key_id,
            "day": self.day,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "requests": self.requests,
        }


class UsageLedger:
    """Daily usage in the store: read, add (an upsert that sums), prune."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def read(self, key_id: str, day: str) -> Usage:
        """One key's usage on one day (zeros when there is none)."""
        with self.store.session() as s:
            row = s.get(ApiKeyUsageRow, (key_id, day))
            if row is None:
                return Usage(key_id, day)
            return Usage(key_id, day, row.prompt_tokens, row.completion_tokens, row.requests)

    def read_day(self, day: str) -> list[Usage]:
        """Every key's usage on ``day``."""
        query = sa.select(ApiKeyUsageRow).where(ApiKeyUsageRow.day == day)
        with self.store.session() as s:
            return [
                Usage(r.key_id, r.day, r.prompt_tokens, r.completion_tokens, r.requests)
                for r in s.scalars(query)
            ]

    def add(self, deltas: dict[tuple[str, str], list[int]]) -> None:
        """Add ``(key_id, day) → [prompt, completion, requests]`` to the stored totals."""
        if not deltas:
            return
        rows = [
            {
                "key_id": k,
                "day": d,
                "prompt_tokens": p,
                "completion_tokens": c,
                "requests": r,
            }
            for (k, d), (p, c, r) in sorted(deltas.items())
        ]
        if self.store.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            ins: Any = pg_insert(ApiKeyUsageRow)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            ins = sqlite_insert(ApiKeyUsageRow)
        cols = ("prompt_tokens", "completion_tokens", "requests")
        stmt = ins.on_conflict_do_update(
            index_elements=["key_id", "day"],
            set_={c: getattr(ApiKeyUsageRow, c) + ins.excluded[c] for c in cols},
        )
        with self.store.session() as s:
            s.execute(stmt, rows)

    def prune(self, before_day: str) -> int:
        """Delete usage rows older than ``before_day``; returns how many (retention)."""
        query = sa.delete(ApiKeyUsageRow).where(ApiKeyUsageRow.day < before_day)
        with self.store.session() as s:
            result = s.execute(query)
            return int(getattr(result, "rowcount", 0) or 0)


def _retry(seconds: float) -> float:
    return max(1.0, math.ceil(seconds))


def _rpm_error(key: ApiKey, wait: float) -> LimitExceeded:
    return LimitExceeded(
        f"Rate limit reached for API key {key.id}: {key.rpm} requests per minute (rpm). "
        f"Retry in {_retry(wait):.0f} s.",
        retry_after=_retry(wait),
    )


def _tpm_error(key: ApiKey, wait: float) -> LimitExceeded:
    return LimitExceeded(
        f"Rate limit reached for API key {key.id}: {key.tpm} tokens per minute (tpm). "
        f"Retry in {_retry(wait):.0f} s.",
        retry_after=_retry(wait),
    )


def _daily_error(key: ApiKey, used: int, tokens: int, room: int) -> LimitExceeded:
    more = f"{tokens} input tokens" + (" and room for output" if room else "")
    return LimitExceeded(
        f"Daily token budget exhausted for API key {key.id}: {used} of {key.daily_tokens} "
        f"tokens (daily_tokens) used today (UTC) and this request needs {more}. The budget "
        "resets at 00:00 UTC.",
        retry_after=seconds_to_midnight(),
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
        import logging

        try:
            await asyncio.to_thread(self.flush)
        except Exception as exc:  # the store is down: keep serving, retry on the next flush
            logging.getLogger("llmeco.governance.limits").error(
                "could not persist key usage: %s", exc
            )


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
                    raise _rpm_error(key, (1.0 - bucket.level) * 60.0 / key.rpm)
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
                raise _daily_error(key, counter.total_tokens, tokens, room)
            if key.tpm is not None:
                bucket = self._bucket(self._tpm, key.id, key.tpm)
                if bucket.level <= 0.0:
                    raise _tpm_error(key, (1.0 - bucket.level) * 60.0 / key.tpm)
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


def open_limiter(settings: Settings, store: Store | None) -> Limiter:
    """Redis-backed limits when ``LLMECO_REDIS_URL`` is set, in-process ones otherwise."""
    ledger = UsageLedger(store) if store is not None else None
    if settings.redis_url:
        from llmeco.governance.limits_redis import RedisLimiter

        return RedisLimiter(settings.redis_url, ledger, settings.usage_flush_seconds)
    return MemoryLimiter(ledger, settings.usage_flush_seconds)


def redis_unavailable(exc: BaseException) -> EngineDead:
    """The 503 raised when the shared limits store cannot be reached (fail closed)."""
    return EngineDead(f"the shared limits store (Redis) is unavailable: {type(exc).__name__}")
