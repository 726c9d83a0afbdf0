"""``POST /v1/feedback`` and ``GET /admin/handoffs``."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Query, Request

from llmeco.apps.conversations import Origin
from llmeco.server.audit import key_id_of
from llmeco.server.errors import ERROR_RESPONSES
from llmeco.server.state import get_context, get_state
from llmeco.server.support.protocol import (
    FeedbackRequest,
    FeedbackResponse,
    HandoffList,
    HandoffOut,
)
from llmeco.server.support.serving import APP, desk_of

router = APIRouter(tags=["support"], responses=ERROR_RESPONSES)


@router.post("/v1/feedback", response_model=FeedbackResponse)
async def feedback(body: FeedbackRequest, request: Request) -> FeedbackResponse:
    """Record a rating (and optional correction) of a support answer."""
    desk = desk_of(get_state(request))
    rating = 1 if body.rating == "up" else -1
    origin = Origin(key_id_of(request.scope), None, get_context(request).request_id)
    uid = await anyio.to_thread.run_sync(
        desk.log.record_feedback, body.response_id, rating, body.correction, body.comment, origin
    )
    get_state(request).metrics.app_feedback.labels(APP, body.rating).inc()
    return FeedbackResponse(id=uid)


@router.get("/admin/handoffs", response_model=HandoffList)
async def handoffs(
    request: Request,
    kb: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=100, ge=1, le=1000),
) -> HandoffList:
    """Questions the assistant passed to a person, newest first."""
    desk = desk_of(get_state(request))
    rows = await anyio.to_thread.run_sync(lambda: desk.log.handoffs(kb, limit))
    return HandoffList(data=[HandoffOut(**vars(h)) for h in rows])
