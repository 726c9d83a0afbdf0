"""Request and response schemas of ``/v1/apps/learn/...``.

Requests forbid unknown fields (a misspelt option is a 400 naming it); scores are numbers in
[0, 1] (NaN and infinities refused).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from llmeco.server.openai.shared import Usage

STRICT = ConfigDict(extra="forbid")
#: What a learner or item id may look like (also the path parameter's pattern).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
SCORE = Field(ge=0.0, le=1.0, allow_inf_nan=False, description="Score in [0, 1].")


class AttemptIn(BaseModel):
    """One scored exercise."""

    model_config = STRICT
    item_id: str = Field(min_length=1, max_length=200)
    score: float = SCORE


class LearnerIn(BaseModel):
    """A learner profile to create or replace (``PUT /v1/apps/learn/learners/{id}``)."""

    model_config = STRICT
    level: int = Field(default=1, ge=1, le=3, description="Self-declared level, 1–3.")
    goals: list[str] = Field(default_factory=list, max_length=20)
    history: list[AttemptIn] | None = Field(
        default=None, max_length=2000, description="Replaces the history when given."
    )


class AttemptOut(BaseModel):
    """A recorded attempt."""

    item_id: str
    score: float
    at: float


class TopicOut(BaseModel):
    """The learner's record on one topic."""

    topic: str
    attempts: int
    mean_score: float
    mastered_level: int
    weak: bool


class LearnerOut(BaseModel):
    """A learner profile with its per-topic summary."""

    id: str
    object: str = "learn.learner"
    level: int
    goals: list[str]
    history: list[AttemptOut]
    topics: list[TopicOut]
    weak_topics: list[str]


class RecommendRequest(BaseModel):
    """Ask for the next items of ``learner_id``."""

    model_config = STRICT
    learner_id: str = Field(pattern=ID_PATTERN)
    k: int = Field(default=5, ge=1, le=20)
    explain: bool = Field(default=True, description="Have the model explain each item.")
    model: str | None = Field(default=None, description="Served model; default: the first one.")
    max_tokens: int = Field(default=48, ge=8, le=256, description="Per explanation.")


class RecommendedItem(BaseModel):
    """One recommended item with the reasons it was picked."""

    id: str
    title: str
    topic: str
    difficulty: int
    kind: str
    score: float
    similarity: float
    target_difficulty: int
    reasons: list[str]
    explanation: str | None = None


class RecommendResponse(BaseModel):
    """The next items, best first."""

    id: str
    object: str = "learn.recommendation"
    learner_id: str
    model: str | None
    weak_topics: list[str]
    items: list[RecommendedItem]
    usage: Usage | None = None


class FeedbackRequest(BaseModel):
    """A learner's score on an item."""

    model_config = STRICT
    learner_id: str = Field(pattern=ID_PATTERN)
    item_id: str = Field(min_length=1, max_length=200)
    score: float = SCORE
