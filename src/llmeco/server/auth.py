"""Authentication and enforcement for every request: keys, scopes, models, limits.

:class:`AuthMiddleware` (pure ASGI, inside the request middleware so refusals get request
ids, access-log lines and metrics) does, for every non-public path:

1. ``Authorization: Bearer sk-llmeco-…`` → the key (:meth:`Authenticator.authenticate`;
   looked up by id, hash compared in constant time, cached ``LLMECO_KEY_CACHE_SECONDS``);
   missing, malformed, unknown, revoked or expired → 401;
2. the path's scope (:func:`llmeco.governance.scopes.requirement`) → 403 without it;
3. one request off the key's RPM bucket → 429 + Retry-After;
4. installs a :class:`KeyGuard` as the request's :data:`~llmeco.server.state.request_guard`:
   the server calls it where a model is resolved (allow-list → 403) and where tokens are
   counted (TPM and daily budget), so every model-taking route is covered without knowing
   about keys.

The key id goes into ``scope["state"]["key_id"]`` (the audit ledger records it). The
secret never appears in a log line or an error message: errors name only the key id.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from llmeco.errors import AuthError, PermissionDenied
from llmeco.governance.keys import ApiKey, KeyStore, server_secret, split_token
from llmeco.governance.limits import Limiter, open_limiter
from llmeco.governance.scopes import requirement
from llmeco.observability import tracing
from llmeco.server.state import request_guard
from llmeco.settings import Settings
from llmeco.store import Store

_KEY_SCOPE = "llmeco_api_key"


class KeyGuard:
    """The :class:`~llmeco.server.state.RequestGuard` of one authenticated request."""

    __slots__ = ("key", "limiter", "on_budget")

    def __init__(
        self,
        key: ApiKey,
        limiter: Limiter,
        on_budget: Callable[[str, float], None] | None = None,
    ) -> None:
        self.key = key
        self.limiter = limiter
        #: Told (key id, share of the daily budget left) after each charge (metrics).
        self.on_budget = on_budget

    def _left(self, left: int | None) -> int | None:
        if left is not None and self.on_budget is not None and self.key.daily_tokens:
            self.on_budget(self.key.id, max(0.0, left / self.key.daily_tokens))
        return left

    def allows_model(self, names: set[str]) -> bool:
        """Whether the key's allow-list names the model (by any of its names)."""
        return self.key.allows_model(names)

    def check_model(self, names: set[str]) -> None:
        """403 naming the model and what the key may use instead."""
        if not self.key.allows_model(names):
            raise PermissionDenied(
                f"API key {self.key.id} may not use model `{'` / `'.join(sorted(names))}`; "
                f"it may use: {', '.join(sorted(self.key.models))}.",
                param="model",
            )

    async def reserve(self, tokens: int, *, room: int = 1) -> int | None:
        """Charge input tokens (TPM, daily budget) before the call."""
        with tracing.span("limits.tokens", tokens=tokens):
            return self._left(await self.limiter.reserve(self.key, tokens, room=room))

    async def consume(self, tokens: int) -> int | None:
        """Charge output tokens as they stream."""
        return self._left(await self.limiter.consume(self.key, tokens))

    async def refund(self, tokens: int) -> None:
        """Give back input tokens of a call that never ran."""
        await self.limiter.refund(self.key, tokens)


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header; 401 when absent or malformed."""
    if not header:
        raise AuthError(
            "Missing API key: send it as `Authorization: Bearer <key>` "
            "(an admin creates keys with `llmeco keys create`)."
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("The Authorization header must be `Bearer <API key>`.")
    return token.strip()


class Authenticator:
    """Keys, limits and a short-lived key cache, shared by every request of one server."""

    def __init__(
        self,
        keys: KeyStore,
        limiter: Limiter,
        *,
        cache_seconds: float = 2.0,
        owns_store: bool = False,
    ) -> None:
        self.keys = keys
        self.limiter = limiter
        self.cache_seconds = cache_seconds
        self._owns_store = owns_store
        self._cache: dict[str, tuple[float, tuple[ApiKey, str] | None]] = {}

    @classmethod
    def open(cls, settings: Settings, store: Store | None = None) -> Authenticator:
        """Keys and limits of the store the settings name (Redis limits with a Redis URL)."""
        own = store is None
        store = store or Store.from_settings(settings)
        keys = KeyStore(store, server_secret(settings))
        return cls(
            keys,
            open_limiter(settings, store),
            cache_seconds=settings.key_cache_seconds,
            owns_store=own,
        )

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The active key an ``Authorization`` header carries; ``AuthError`` (401) otherwise."""
        import time

        token = bearer_token(authorization)
        parts = split_token(token)
        found: tuple[ApiKey, str] | None = None
        if parts is not None:
            now = time.monotonic()
            hit = self._cache.get(parts[0])
            if hit is not None and now - hit[0] <= self.cache_seconds:
                found = hit[1]
            else:
                found = self.keys.lookup(parts[0])
                if found is not None:
                    self._cache[parts[0]] = (now, found)
        return self.keys.verify(token, found)

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after revoking or re-limiting it here)."""
        self._cache.pop(key_id, None)

    async def aclose(self) -> None:
        """Persist pending usage; close Redis and (if opened here) the store."""
        await self.limiter.aclose()
        if self._owns_store:
            self.keys.store.close()


def current_key(conn: HTTPConnection) -> ApiKey | None:
    """The key that authenticated this request (None on public routes or without auth)."""
    key = conn.scope.get(_KEY_SCOPE)
    return key if isinstance(key, ApiKey) else None


class AuthMiddleware:
    """Authenticates and enforces every non-public request (see the module doc)."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (
            kind not in ("http", "websocket")
            or requirement(scope["path"], scope.get("method", "GET")).public
        ):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":  # no websocket route today: refuse rather than skip auth
            try:
                key = await self._admit(scope)
            except (AuthError, PermissionDenied):
                await send({"type": "websocket.close", "code": 1008})
                return
        else:
            key = await self._admit(scope)
        scope.setdefault("state", {})["key_id"] = key.id
        scope[_KEY_SCOPE] = key
        state = getattr(getattr(scope.get("app"), "state", None), "llmeco", None)
        on_budget = state.metrics.set_budget_left if state is not None else None
        token = request_guard.set(KeyGuard(key, self.auth.limiter, on_budget))
        try:
            await self.app(scope, receive, send)
        finally:
            request_guard.reset(token)
            self.auth.limiter.maybe_flush()

    async def _admit(self, scope: Scope) -> ApiKey:
        headers = Headers(scope=scope)
        with tracing.span("auth") as span:
            key = self.auth.authenticate(headers.get("authorization"))
            if span is not None:
                span.set_attribute("llmeco.key_id", key.id)
            needed = requirement(scope["path"], scope.get("method", "GET"))
            if not needed.allows(key.scopes):
                raise PermissionDenied(
                    f"API key {key.id} does not have the `{needed.describe()}` scope "
                    f"that {scope['path']} needs."
                )
        scope.setdefault("state", {})["key_id"] = key.id  # also on a 429 (its metric, audit)
        with tracing.span("limits"):
            await self.auth.limiter.admit(key)
        return key
