"""Per-key limits: requests per minute, tokens per minute, and a daily token budget.

One counter both enforces the limits and is what usage reports show, so enforcement and
reporting cannot drift apart: :meth:`Limiter.usage` — what ``GET /admin/usage`` shows — reads
the very numbers :meth:`Limiter.reserve` and :meth:`Limiter.consume` check, in Redis when
``LLMECO_REDIS_URL`` is set (shared by every replica, updated by atomic Lua scripts) and in
process memory otherwise.

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
When Redis cannot be reached the Redis limiter fails closed with
:class:`~llmeco.errors.LimitsUnavailable` → 503 ``limits_unavailable``.

Daily usage is also persisted in the store (``api_key_usage``): each process writes what it
charged every ``LLMECO_USAGE_FLUSH_SECONDS`` and on close, and seeds a (key, day) counter from
the store the first time it sees it — so a restart (or a Redis restart) does not reset a
budget; at most the last unflushed second is lost on a crash.

Modules: :mod:`~llmeco.governance.limits.base` (the :class:`Limiter` interface, persistence,
the refusal errors), :mod:`~llmeco.governance.limits.usage` (:class:`Usage` and the store's
:class:`UsageLedger`), :mod:`~llmeco.governance.limits.memory` (one process) and
:mod:`~llmeco.governance.limits.redis` (every replica). :func:`open_limiter` lives here, above
both backends, which never import it.
"""

from __future__ import annotations

from llmeco.governance.limits.base import (
    BUCKET_TTL,
    DAY_TTL,
    Limiter,
    daily_error,
    rpm_error,
    seconds_to_midnight,
    today,
    tpm_error,
)
from llmeco.governance.limits.memory import MemoryLimiter
from llmeco.governance.limits.redis import RedisLimiter, read_usage, redis_unavailable
from llmeco.governance.limits.usage import Usage, UsageLedger
from llmeco.settings import Settings
from llmeco.store import Store

__all__ = [
    "BUCKET_TTL",
    "DAY_TTL",
    "Limiter",
    "MemoryLimiter",
    "RedisLimiter",
    "Usage",
    "UsageLedger",
    "daily_error",
    "open_limiter",
    "read_usage",
    "redis_unavailable",
    "rpm_error",
    "seconds_to_midnight",
    "today",
    "tpm_error",
]


def open_limiter(settings: Settings, store: Store | None) -> Limiter:
    """Redis-backed limits when ``LLMECO_REDIS_URL`` is set, in-process ones otherwise.

    The one place the backend is chosen, so the server and tests get the same limiter for the
    same settings; usage is persisted to ``store`` when one is given.
    """
    ledger = UsageLedger(store) if store is not None else None
    if settings.redis_url:
        return RedisLimiter(settings.redis_url, ledger, settings.usage_flush_seconds)
    return MemoryLimiter(ledger, settings.usage_flush_seconds)
