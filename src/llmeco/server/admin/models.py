"""``GET /admin/models`` and ``POST /admin/models/{name}/reload``: the served models'
versions and an on-demand hot swap (``admin`` scope when auth is on; see
:mod:`llmeco.server.hotswap`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from llmeco.errors import InvalidRequest
from llmeco.server.auth import current_key
from llmeco.server.errors import ErrorResponse
from llmeco.server.hotswap import ModelFollower, SwapResult
from llmeco.server.state import ServerState, get_state

router = APIRouter(
    tags=["admin"],
    responses={c: {"model": ErrorResponse} for c in (400, 401, 403, 404)},
)


class DrainingVersion(BaseModel):
    """A replaced version still finishing the requests it had."""

    version: str
    leases: int
    seconds: float


class ServedModel(BaseModel):
    """One served model and where it comes from."""

    model: str
    ref: str
    follows: str | None = None
    version: str | None = None
    swaps: int
    draining: list[DrainingVersion]


def get_follower(state: ServerState = Depends(get_state)) -> ModelFollower:
    """The server's alias follower (a FastAPI dependency); 400 when it does not hot-swap."""
    follower = state.follower
    if follower is None:
        raise InvalidRequest("this server does not hot-swap models (started without slots)")
    return follower


@router.get("/admin/models", response_model=list[ServedModel])
async def served_models(follower: ModelFollower = Depends(get_follower)) -> list[dict[str, Any]]:
    """Every served model: its reference, the alias it follows, the version serving now."""
    return follower.status()


@router.post("/admin/models/{name}/reload", response_model=SwapResult)
async def reload_model(
    name: str,
    request: Request,
    follower: ModelFollower = Depends(get_follower),
    force: bool = Query(
        default=False, description="Load the reference again even if its version is current."
    ),
) -> SwapResult:
    """Re-resolve the model's reference now and hot-swap to it if it changed.

    The new version is loaded beside the serving one; requests already running finish on
    the old version, new ones go to the new version once it is ready. Answers when the
    swap is done.
    """
    key = current_key(request)
    return await follower.reload(name, force=force, actor=key.id if key is not None else "local")
