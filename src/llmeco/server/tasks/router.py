"""``POST /v1/tasks/{translate,summarize,correct,classify,sentiment,moderate,extract}``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from llmeco.server.errors import ERROR_RESPONSES
from llmeco.server.state import get_state
from llmeco.server.tasks import protocol as p
from llmeco.server.tasks.serving import TaskServing

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=ERROR_RESPONSES)


def _serving(request: Request) -> TaskServing:
    return TaskServing(get_state(request), request)


@router.post("/translate", response_model=p.TranslateResponse)
async def translate(body: p.TranslateRequest, request: Request) -> p.TranslateResponse:
    """Translate text into another language."""
    return await _serving(request).translate(body)


@router.post("/summarize", response_model=p.SummarizeResponse)
async def summarize(body: p.SummarizeRequest, request: Request) -> p.SummarizeResponse:
    """Summarize text as a paragraph or bullets, within a word budget."""
    return await _serving(request).summarize(body)


@router.post("/correct", response_model=p.CorrectResponse)
async def correct(body: p.CorrectRequest, request: Request) -> p.CorrectResponse:
    """Fix spelling and grammar."""
    return await _serving(request).correct(body)


@router.post("/classify", response_model=p.LabelResponse)
async def classify(body: p.ClassifyRequest, request: Request) -> p.LabelResponse:
    """Pick exactly one of the given labels."""
    return await _serving(request).classify(body)


@router.post("/sentiment", response_model=p.LabelResponse)
async def sentiment(body: p.SentimentRequest, request: Request) -> p.LabelResponse:
    """Positive, negative or neutral."""
    return await _serving(request).sentiment(body)


@router.post("/moderate", response_model=p.ModerateResponse)
async def moderate(body: p.ModerateRequest, request: Request) -> p.ModerateResponse:
    """Flag text per moderation category."""
    return await _serving(request).moderate(body)


@router.post("/extract", response_model=p.ExtractResponse)
async def extract(body: p.ExtractRequest, request: Request) -> p.ExtractResponse:
    """Extract a record that always validates against the given JSON schema."""
    return await _serving(request).extract(body)
