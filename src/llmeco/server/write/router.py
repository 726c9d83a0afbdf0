"""``POST /v1/apps/write/{outline,continue,rewrite,shorten,expand}``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from llmeco.apps.writer import Action
from llmeco.server.errors import ERROR_RESPONSES
from llmeco.server.state import get_state
from llmeco.server.write import serving
from llmeco.server.write.protocol import WriteRequest, WriteResponse

router = APIRouter(prefix="/v1/apps/write", tags=["apps"], responses=ERROR_RESPONSES)


@router.post("/{action}", response_model=WriteResponse)
async def write(action: Action, body: WriteRequest, request: Request) -> Response:
    """Outline, continue, rewrite, shorten or expand text; ``stream: true`` for SSE."""
    return await serving.write(get_state(request), action, body, request)
