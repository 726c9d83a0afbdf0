"""Admin routes (``admin`` scope, enforced by the auth middleware) and ``/v1/usage``.

Every write goes through :class:`~llmeco.governance.keys.KeyStore` with the calling key as
``actor``, so the no-escalation rules apply here exactly as in the library; every write is
appended to the audit ledger when the app has one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse, Response

from llmeco.errors import AuthError, InvalidRequest, NotFound, PermissionDenied
from llmeco.governance.keys import ApiKey, parse_duration, utc_now
from llmeco.governance.limits import today
from llmeco.governance.scopes import Grant, excess, parse_models, parse_scopes
from llmeco.server.admin.protocol import (
    AliasInfo,
    AliasRequest,
    CreatedKey,
    CreateKeyRequest,
    KeyInfo,
    KeyList,
    KeyUsage,
    UpdateLimitsRequest,
    UsageList,
)
from llmeco.server.auth import Authenticator, current_key
from llmeco.server.errors import ErrorResponse
from llmeco.server.state import ServerState, get_state

router = APIRouter(
    tags=["admin"],
    responses={c: {"model": ErrorResponse} for c in (400, 401, 403, 404, 429)},
)

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Caller:
    """The authenticated key calling an admin route, and the server state it acts on."""

    auth: Authenticator
    key: ApiKey
    state: ServerState

    async def audit(self, action: str, details: dict[str, Any]) -> None:
        """Append the admin action to the audit ledger (when the server has one)."""
        if self.state.ledger is not None:
            await self.state.ledger.arecord_admin(self.key.id, action, details)


def get_caller(request: Request, state: ServerState = Depends(get_state)) -> Caller:
    """The route's :class:`Caller` (a FastAPI dependency)."""
    key = current_key(request)
    if state.auth is None or key is None:  # only reachable if the middleware were bypassed
        raise AuthError("this route needs an API key")
    return Caller(state.auth, key, state)


def _day(day: str | None) -> str:
    if day is None:
        return today()
    if not _DAY.match(day):
        raise InvalidRequest("day must be YYYY-MM-DD (UTC)", param="day")
    return day


@router.post("/admin/keys", status_code=201, response_model=CreatedKey)
async def create_key(body: CreateKeyRequest, caller: Caller = Depends(get_caller)) -> Response:
    """Create a key holding at most what the calling key holds; its secret is shown once."""
    auth, actor = caller.auth, caller.key
    expires = utc_now() + parse_duration(body.expires_in) if body.expires_in else None
    grant = Grant(
        scopes=parse_scopes(body.scopes),
        models=parse_models(body.models),
        rpm=body.rpm,
        tpm=body.tpm,
        daily_tokens=body.daily_tokens,
        expires_at=expires,
    )
    key, token = auth.keys.create(body.name, grant, actor=actor)
    await caller.audit("key.create", {k: v for k, v in key.as_dict().items()})
    created = CreatedKey(key=token, **key.as_dict())
    return JSONResponse(created.model_dump(mode="json"), status_code=201)


@router.get("/admin/keys", response_model=KeyList)
async def list_keys(include_revoked: bool = False, caller: Caller = Depends(get_caller)) -> KeyList:
    """Keys the calling key may manage: itself and every key it dominates."""
    auth, actor = caller.auth, caller.key
    keys = auth.keys.visible_to(actor, include_revoked=include_revoked)
    return KeyList(data=[KeyInfo(**k.as_dict()) for k in keys])


def _managed(auth: Authenticator, actor: ApiKey, key_id: str, what: str) -> ApiKey:
    target = auth.keys.get(key_id)
    if target.id != actor.id and excess(actor, target):
        raise PermissionDenied(f"API key {actor.id} may not {what} key {key_id}")
    return target


@router.get("/admin/keys/{key_id}", response_model=KeyInfo)
async def get_key(key_id: str, caller: Caller = Depends(get_caller)) -> KeyInfo:
    """One key the calling key may manage."""
    auth, actor = caller.auth, caller.key
    return KeyInfo(**_managed(auth, actor, key_id, "see").as_dict())


@router.patch("/admin/keys/{key_id}", response_model=KeyInfo)
async def update_key(
    key_id: str, body: UpdateLimitsRequest, caller: Caller = Depends(get_caller)
) -> KeyInfo:
    """Change a key's limits, never beyond the calling key's own."""
    auth, actor = caller.auth, caller.key
    limits = {f: getattr(body, f) for f in body.model_fields_set}
    if not limits:
        raise InvalidRequest("send at least one of rpm, tpm, daily_tokens")
    key = auth.keys.update_limits(key_id, limits, actor=actor)
    auth.forget(key_id)
    await caller.audit("key.update", {"key_id": key_id, **limits})
    return KeyInfo(**key.as_dict())


@router.delete("/admin/keys/{key_id}", response_model=KeyInfo)
async def revoke_key(key_id: str, caller: Caller = Depends(get_caller)) -> KeyInfo:
    """Revoke a key the calling key dominates (takes effect at once on this server)."""
    auth, actor = caller.auth, caller.key
    key = auth.keys.revoke(key_id, actor=actor)
    auth.forget(key_id)
    await caller.audit("key.revoke", {"key_id": key_id, "name": key.name})
    return KeyInfo(**key.as_dict())


async def _usage(auth: Authenticator, key: ApiKey, day: str) -> KeyUsage:
    u = await auth.limiter.usage(key.id, day)
    budget = key.daily_tokens
    return KeyUsage(
        key_id=key.id,
        name=key.name,
        day=day,
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.total_tokens,
        requests=u.requests,
        daily_tokens=budget,
        remaining_tokens=None if budget is None else max(0, budget - u.total_tokens),
    )


@router.get("/admin/usage", response_model=UsageList)
async def usage(
    caller: Caller = Depends(get_caller),
    key_id: str | None = Query(default=None, description="One key (default: all visible)."),
    day: str | None = Query(default=None, description="UTC day YYYY-MM-DD (default today)."),
) -> UsageList:
    """Token and request usage per key — the same counters the limits enforce."""
    auth, actor = caller.auth, caller.key
    d = _day(day)
    if key_id is not None:
        keys = [_managed(auth, actor, key_id, "read the usage of")]
    else:
        keys = auth.keys.visible_to(actor, include_revoked=True)
    return UsageList(data=[await _usage(auth, k, d) for k in keys])


@router.get("/v1/usage", response_model=KeyUsage)
async def own_usage(
    caller: Caller = Depends(get_caller),
    day: str | None = Query(default=None, description="UTC day YYYY-MM-DD (default today)."),
) -> KeyUsage:
    """The calling key's own usage and budget (any valid key; never another key's)."""
    auth, actor = caller.auth, caller.key
    return await _usage(auth, actor, _day(day))


@router.get("/admin/aliases", response_model=list[AliasInfo])
async def list_aliases(state: ServerState = Depends(get_state)) -> list[AliasInfo]:
    """The server's serving aliases (extra names for served models)."""
    return [AliasInfo(alias=a, model=m) for a, m in sorted(state.aliases.items())]


@router.put("/admin/aliases/{alias:path}", response_model=AliasInfo)
async def move_alias(
    alias: str, body: AliasRequest, caller: Caller = Depends(get_caller)
) -> AliasInfo:
    """Point ``alias`` at a served model; the caller must be allowed both old and new model."""
    actor, state = caller.key, caller.state
    if body.model not in state.engines:
        raise NotFound(f"`{body.model}` is not a served model", param="model")
    if alias in state.engines:
        raise InvalidRequest(f"`{alias}` is a served model's own name, not an alias")
    old = state.aliases.get(alias)
    for name in (body.model, old):
        if name is not None and not actor.allows_model(state.names_of(name)):
            raise PermissionDenied(f"API key {actor.id} may not use model `{name}`")
    state.aliases[alias] = body.model
    await caller.audit("alias.move", {"alias": alias, "from": old, "to": body.model})
    return AliasInfo(alias=alias, model=body.model)
