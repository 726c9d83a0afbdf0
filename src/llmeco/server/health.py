"""Operational routes: ``/health`` (alive), ``/ready`` (every model can serve), ``/metrics``."""

from __future__ import annotations

import asyncio

import anyio
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from llmeco.server.errors import error_response
from llmeco.server.state import ServerState, get_state

router = APIRouter(tags=["operations"])

READY_TIMEOUT = 5.0


@router.get("/health")
async def health() -> dict[str, str]:
    """200 while the process lives (a liveness probe)."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "Not ready: draining or an engine down."}})
async def ready(request: Request) -> Response:
    """200 only when every engine passes its health check and the server is not draining."""
    state = get_state(request)
    if state.draining:
        return error_response(
            503, "the server is shutting down", "service_unavailable_error", code="draining"
        )
    problems = await _engine_problems(state)
    if problems:
        return error_response(
            503, "; ".join(problems), "service_unavailable_error", code="engine_unavailable"
        )
    names = list(state.engines)
    return JSONResponse({"status": "ready", "models": [*names, *state.embedder_names()[:1]]})


async def _engine_problems(state: ServerState) -> list[str]:
    """Why each engine that fails its health check is not ready (empty: all are)."""

    async def check(name: str) -> str | None:
        try:
            await asyncio.wait_for(state.engines[name].check_health(), READY_TIMEOUT)
        except Exception as exc:  # any failure means "not ready", with its reason
            return f"{name}: {getattr(exc, 'message', None) or type(exc).__name__}"
        return None

    return [p for p in await asyncio.gather(*(check(n) for n in state.engines)) if p]


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus exposition text (rendered in a thread: collectors may read the store)."""
    state = get_state(request)
    ready = not state.draining and not await _engine_problems(state)
    state.metrics.ready.set(1.0 if ready else 0.0)
    body, content_type = await anyio.to_thread.run_sync(state.metrics.render)
    return Response(body, media_type=content_type)
