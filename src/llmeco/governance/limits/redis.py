"""Limits shared by every replica: the buckets and day counters live in Redis.

Each check-and-charge is one Lua script, so it is atomic however many replicas race: two
servers cannot both take the last request of a bucket. Time is Redis's own ``TIME``, so
replicas with skewed clocks still agree. Keys:

* ``llmeco:rpm:<key id>`` / ``llmeco:tpm:<key id>`` — hash ``level``, ``ts`` (expires when
  idle; an absent bucket is full);
* ``llmeco:usage:<key id>:<YYYY-MM-DD>`` — hash ``prompt``, ``completion``, ``requests``
  (kept three days). When it is missing (first use today, or Redis lost it) a script seeds it
  from the store's persisted totals, which this process reads once per key and day.

If Redis cannot be reached, requests fail closed rather than run unmetered: every Redis error
becomes :class:`~llmeco.errors.LimitsUnavailable` (→ 503 ``limits_unavailable``), naming the
Redis URL without its credentials.

This module is named after the backend; ``import redis`` in it is an absolute import and
means the redis-py library (imported where it is used, so a server without Redis never loads
it).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from llmeco.errors import LimitsUnavailable
from llmeco.governance.keys import ApiKey
from llmeco.governance.limits.base import (
    BUCKET_TTL,
    DAY_TTL,
    Limiter,
    daily_error,
    rpm_error,
    today,
    tpm_error,
)
from llmeco.governance.limits.usage import Usage, UsageLedger


def display_url(url: str) -> str:
    """``url`` without user, password or query string (a query may carry a password too), so
    that an error message or log line can name the Redis server safely."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a number: leave it out rather than fail while reporting
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def redis_unavailable(url: str, exc: BaseException) -> LimitsUnavailable:
    """The 503 raised when the shared limits store at ``url`` cannot be reached (fail closed).

    The message names the server (credentials removed) and the kind of failure, so an
    operator sees at once that Redis, not the engine, is down.
    """
    return LimitsUnavailable(
        f"the shared limits store (Redis at {display_url(url)}) is unavailable: "
        f"{type(exc).__name__}; requests are refused until it is back"
    )


_PRELUDE = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function seed(key, p, c, r)
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'prompt', p, 'completion', c, 'requests', r)
    redis.call('EXPIRE', key, ARGV[1])
  end
end
local function level_of(key, cap, rate, t)
  local v = redis.call('HMGET', key, 'level', 'ts')
  local level = tonumber(v[1])
  if level == nil then return cap end
  return math.min(cap, level + math.max(0, t - tonumber(v[2])) * rate)
end
local function save(key, level, t)
  redis.call('HSET', key, 'level', tostring(level), 'ts', tostring(t))
  redis.call('EXPIRE', key, ARGV[2])
end
"""

# KEYS: rpm bucket, day hash. ARGV: day ttl, bucket ttl, seed p, c, r, rpm (0 = none).
# Returns {1} or {0, seconds to wait}.
ADMIT = (
    _PRELUDE
    + """
seed(KEYS[2], ARGV[3], ARGV[4], ARGV[5])
local cap = tonumber(ARGV[6])
if cap > 0 then
  local t = now()
  local rate = cap / 60
  local level = level_of(KEYS[1], cap, rate, t)
  if level < 1 then return {0, tostring((1 - level) / rate)} end
  save(KEYS[1], level - 1, t)
end
redis.call('HINCRBY', KEYS[2], 'requests', 1)
return {1, '0'}
"""
)

# KEYS: tpm bucket, day hash. ARGV: day ttl, bucket ttl, seed p, c, r, tpm (0 = none),
# tokens, field (prompt|completion), mode (gate|force|refund), budget (0 = none), room.
# Returns {1, '', used after} or {0, 'daily'|'tpm', used | seconds to wait}.
CHARGE = (
    _PRELUDE
    + """
seed(KEYS[2], ARGV[3], ARGV[4], ARGV[5])
local cap = tonumber(ARGV[6])
local tokens = tonumber(ARGV[7])
local mode = ARGV[9]
local budget = tonumber(ARGV[10])
local v = redis.call('HMGET', KEYS[2], 'prompt', 'completion')
local used = tonumber(v[1]) + tonumber(v[2])
local t = 0
local level = 0
local rate = cap / 60
if cap > 0 then
  t = now()
  level = level_of(KEYS[1], cap, rate, t)
end
if mode == 'gate' then
  if budget > 0 and used + tokens + tonumber(ARGV[11]) > budget then
    return {0, 'daily', tostring(used)}
  end
  if cap > 0 and level <= 0 then return {0, 'tpm', tostring((1 - level) / rate)} end
end
if mode == 'refund' then tokens = -tokens end
if cap > 0 then save(KEYS[1], math.min(cap, level - tokens), t) end
redis.call('HINCRBY', KEYS[2], ARGV[8], tokens)
return {1, '', tostring(used + tokens)}
"""
)


class RedisLimiter(Limiter):
    """Limits shared across replicas through Redis (see the module doc)."""

    def __init__(self, url: str, ledger: UsageLedger | None, flush_seconds: float = 1.0) -> None:
        super().__init__(ledger, flush_seconds)
        self.url = url
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admit: Any = None
        self._charge: Any = None
        self._seeds: dict[tuple[str, str], Usage] = {}

    def _connect(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # a client belongs to one loop
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(self.url)
            self._loop = loop
            self._admit = self._client.register_script(ADMIT)
            self._charge = self._client.register_script(CHARGE)
        return self._client

    async def _seed_args(self, key_id: str, day: str) -> list[Any]:
        seed = self._seeds.get((key_id, day))
        if seed is None:
            seed = await asyncio.to_thread(self._seed, key_id, day)
            self._seeds[(key_id, day)] = seed
        return [DAY_TTL, BUCKET_TTL, seed.prompt_tokens, seed.completion_tokens, seed.requests]

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> list[Any]:
        import redis

        self._connect()
        fn = self._admit if script == "admit" else self._charge
        try:
            result = await fn(keys=keys, args=args)
        except redis.RedisError as exc:
            raise redis_unavailable(self.url, exc) from exc
        return [x.decode() if isinstance(x, bytes) else x for x in result]

    @staticmethod
    def _keys(kind: str, key_id: str, day: str) -> list[str]:
        return [f"llmeco:{kind}:{key_id}", f"llmeco:usage:{key_id}:{day}"]

    async def admit(self, key: ApiKey) -> None:
        """See :meth:`Limiter.admit`."""
        day = today()
        args = [*await self._seed_args(key.id, day), key.rpm or 0]
        ok, wait = await self._run("admit", self._keys("rpm", key.id, day), args)
        if not int(ok):
            raise rpm_error(key, float(wait))
        self._record(key.id, day, 0, 0, 1)

    async def _charge_tokens(
        self, key: ApiKey, tokens: int, field: str, mode: str, room: int = 0
    ) -> int | None:
        day = today()
        args = [
            *await self._seed_args(key.id, day),
            key.tpm or 0,
            tokens,
            field,
            mode,
            key.daily_tokens or 0,
            room,
        ]
        ok, reason, value = await self._run("charge", self._keys("tpm", key.id, day), args)
        if not int(ok):
            if reason == "daily":
                raise daily_error(key, int(float(value)), tokens, room)
            raise tpm_error(key, float(value))
        sign = -1 if mode == "refund" else 1
        prompt, completion = (sign * tokens, 0) if field == "prompt" else (0, tokens)
        self._record(key.id, day, prompt, completion, 0)
        used = int(float(value))
        return None if key.daily_tokens is None else key.daily_tokens - used

    async def reserve(self, key: ApiKey, tokens: int, *, room: int = 1) -> int | None:
        """See :meth:`Limiter.reserve`."""
        return await self._charge_tokens(key, tokens, "prompt", "gate", room)

    async def consume(self, key: ApiKey, tokens: int) -> int | None:
        """See :meth:`Limiter.consume`."""
        return await self._charge_tokens(key, tokens, "completion", "force")

    async def refund(self, key: ApiKey, tokens: int) -> None:
        """See :meth:`Limiter.refund`."""
        await self._charge_tokens(key, tokens, "prompt", "refund")

    async def usage(self, key_id: str, day: str | None = None) -> Usage:
        """See :meth:`Limiter.usage` (the Redis counter; the store's copy when Redis has none)."""
        import redis

        day = day or today()
        client = self._connect()
        try:
            raw = await client.hgetall(f"llmeco:usage:{key_id}:{day}")
        except redis.RedisError as exc:
            raise redis_unavailable(self.url, exc) from exc
        if not raw:
            return await asyncio.to_thread(self._seed, key_id, day)
        values = {k.decode(): int(v) for k, v in raw.items()}
        return Usage(
            key_id,
            day,
            values.get("prompt", 0),
            values.get("completion", 0),
            values.get("requests", 0),
        )

    async def aclose(self) -> None:
        """Persist pending usage and close the Redis connection."""
        await super().aclose()
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None


def read_usage(url: str, key_id: str, day: str) -> Usage | None:
    """The Redis counter of one key and day, synchronously (for the CLI); None if absent."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        raw = client.hgetall(f"llmeco:usage:{key_id}:{day}")
    except redis.RedisError as exc:
        raise redis_unavailable(url, exc) from exc
    finally:
        client.close()
    if not raw:
        return None
    values = {k.decode(): int(v) for k, v in raw.items()}  # type: ignore[union-attr]
    return Usage(
        key_id,
        day,
        values.get("prompt", 0),
        values.get("completion", 0),
        values.get("requests", 0),
    )
