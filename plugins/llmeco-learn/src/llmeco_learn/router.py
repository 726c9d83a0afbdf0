"""``/v1/apps/learn``: learner profiles, feedback and recommendations."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request

from llmeco.server.errors import ERROR_RESPONSES
from llmeco_learn import protocol as p
from llmeco_learn import serving

router = APIRouter(prefix="/v1/apps/learn", tags=["apps"], responses=ERROR_RESPONSES)

LEARNER_ID = Path(pattern=p.ID_PATTERN, description="The learner's id.")


@router.put("/learners/{learner_id}", response_model=p.LearnerOut)
async def put_learner(
    body: p.LearnerIn, request: Request, learner_id: str = LEARNER_ID
) -> p.LearnerOut:
    """Create or replace a learner profile (goals, level, optionally the history)."""
    return await serving.put_learner(request, learner_id, body)


@router.get("/learners/{learner_id}", response_model=p.LearnerOut)
async def get_learner(request: Request, learner_id: str = LEARNER_ID) -> p.LearnerOut:
    """A learner profile with per-topic scores and weak topics."""
    return await serving.get_learner(request, learner_id)


@router.post("/recommend", response_model=p.RecommendResponse)
async def recommend(body: p.RecommendRequest, request: Request) -> p.RecommendResponse:
    """The next items for a learner, with reasons and (``explain``) a model-written sentence."""
    return await serving.recommend_items(request, body)


@router.post("/feedback", response_model=p.LearnerOut)
async def feedback(body: p.FeedbackRequest, request: Request) -> p.LearnerOut:
    """Record a learner's score on an item; returns the updated profile."""
    return await serving.feedback(request, body)
