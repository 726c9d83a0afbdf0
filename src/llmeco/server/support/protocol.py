"""Schemas of the feedback and hand-off routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FeedbackRequest(BaseModel):
    """Thumbs up or down on an answer, optionally with the answer it should have given."""

    model_config = ConfigDict(extra="forbid")
    response_id: str = Field(min_length=1, max_length=128, description="The answer's `id`.")
    rating: Literal["up", "down"]
    correction: str | None = Field(default=None, max_length=8000)
    comment: str | None = Field(default=None, max_length=4000)


class FeedbackResponse(BaseModel):
    """The stored feedback's id."""

    id: str
    object: Literal["feedback"] = "feedback"


class HandoffOut(BaseModel):
    """One hand-off, for the support team."""

    id: str
    kb: str
    session_id: str
    response_id: str
    question: str
    reason: str
    created_at: datetime


class HandoffList(BaseModel):
    """The newest hand-offs."""

    object: Literal["list"] = "list"
    data: list[HandoffOut]
