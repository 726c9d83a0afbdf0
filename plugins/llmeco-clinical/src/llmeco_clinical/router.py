"""``POST /v1/apps/clinical/analyze``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from llmeco.server.errors import ERROR_RESPONSES
from llmeco_clinical import protocol as p
from llmeco_clinical import serving

router = APIRouter(prefix="/v1/apps/clinical", tags=["apps"], responses=ERROR_RESPONSES)


@router.post("/analyze", response_model=p.AnalyzeResponse)
async def analyze(body: p.AnalyzeRequest, request: Request) -> p.AnalyzeResponse:
    """De-identify a clinical note, extract problems, medications and allergies, flag
    dangerous combinations and summarise it. Not medical advice."""
    return await serving.analyze(request, body)
