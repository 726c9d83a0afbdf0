"""Schemas of the feedback and hand-off routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from llmeco.apps.conversations import Handoff


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


# The fields are the app's hand-off record, defined once there; this subclass gives it the
# API's schema name and description, and pydantic validation and serialisation.
@pydantic_dataclass(frozen=True)
class HandoffOut(Handoff):
    """One hand-off, for the support team."""


class HandoffList(BaseModel):
    """The newest hand-offs."""

    object: Literal["list"] = "list"
    data: list[HandoffOut]
