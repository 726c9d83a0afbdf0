"""``POST /v1/apps/explain``: JSON by default, the highlighted-text page on request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import HTMLResponse

from llmeco.server.errors import ERROR_RESPONSES
from llmeco.server.state import get_state
from llmeco_explain.protocol import (
    ClassificationExplainRequest,
    ExplainRequest,
    ExplainResponse,
)
from llmeco_explain.render import render_html
from llmeco_explain.service import explain_classification, explain_generation

router = APIRouter(prefix="/v1/apps", tags=["apps"], responses=ERROR_RESPONSES)


def wants_html(request: Request, fmt: str | None) -> bool:
    """``?format=`` decides; without it, an ``Accept`` that names ``text/html`` before (or
    without) ``application/json`` — what a browser sends — gets the page."""
    if fmt is not None:
        return fmt == "html"
    accept = request.headers.get("accept", "").lower()
    html = accept.find("text/html")
    json_at = accept.find("application/json")
    return html >= 0 and (json_at < 0 or html < json_at)


@router.post(
    "/explain",
    response_model=ExplainResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def explain(
    body: Annotated[ExplainRequest, Body()],
    request: Request,
    format: Annotated[
        Literal["json", "html"] | None,
        Query(description="html: the highlighted-text page (also for Accept: text/html)."),
    ] = None,
) -> Any:
    """Explain a classification or a generated answer: per-token attributions of the input
    (integrated gradients or occlusion), plus label probabilities or the answer's per-token
    log-probabilities and alternatives."""
    state = get_state(request)
    if isinstance(body, ClassificationExplainRequest):
        result = await explain_classification(state, request, body)
    else:
        result = await explain_generation(state, request, body)
    if wants_html(request, format):
        return HTMLResponse(render_html(result))
    return result
