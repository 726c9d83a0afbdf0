"""Request and response schemas of the task endpoints (``/v1/tasks/...``).

Like the OpenAI routes, requests forbid unknown fields, so a misspelt option is a 400 naming it.
``model`` may be left out: the server's first (default) model answers. On classify and
sentiment, ``model`` may also name a trained classifier (``llmeco serve --classifier
NAME=REF``, listed by ``/v1/models`` with ``task: "classify"``): it answers instead of a
prompted chat model, with every label's probability in ``scores``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmeco.server.openai.shared import Usage

STRICT = ConfigDict(extra="forbid")
TEXT = Field(min_length=1, max_length=32_000, description="The input text.")


class TaskRequest(BaseModel):
    """Fields every task request has."""

    model_config = STRICT
    model: str | None = Field(default=None, description="Served model; default: the first one.")
    text: str = TEXT


class TaskResponse(BaseModel):
    """Fields every task response has."""

    id: str
    object: str
    model: str
    usage: Usage


class TranslateRequest(TaskRequest):
    """Translate ``text`` into ``target_language``."""

    target_language: str = Field(min_length=2, max_length=40, examples=["French"])
    source_language: str | None = Field(default=None, max_length=40)
    max_tokens: int | None = Field(
        default=None, ge=1, le=8192, description="Longest answer; default: 512, within the context."
    )


class TranslateResponse(TaskResponse):
    """The translation."""

    translation: str


class SummarizeRequest(TaskRequest):
    """Summarize ``text``."""

    max_words: int = Field(default=60, ge=5, le=1000)
    style: Literal["paragraph", "bullets"] = "paragraph"
    max_tokens: int | None = Field(
        default=None, ge=1, le=8192, description="Longest answer; default: 512, within the context."
    )


class SummarizeResponse(TaskResponse):
    """The summary."""

    summary: str


class CorrectRequest(TaskRequest):
    """Fix spelling and grammar in ``text``."""

    max_tokens: int | None = Field(
        default=None, ge=1, le=8192, description="Longest answer; default: 512, within the context."
    )


class CorrectResponse(TaskResponse):
    """The corrected text and whether anything changed."""

    corrected: str
    changed: bool


CLASSIFIER_MODEL = (
    "A served chat model (prompted; default: the first one), or the name of a trained "
    "classifier served with `llmeco serve --classifier NAME=REF`."
)


class ClassifyRequest(TaskRequest):
    """Pick one of ``labels`` for ``text``."""

    model: str | None = Field(default=None, description=CLASSIFIER_MODEL)
    labels: list[str] | None = Field(
        default=None,
        min_length=2,
        max_length=50,
        description="The labels to choose from. Required for a chat model. For a trained "
        "classifier: optional, default all of its labels; a subset restricts the answer to it "
        "(probabilities renormalised over it), and a label the classifier does not have is a "
        "400.",
    )
    instructions: str | None = Field(
        default=None, max_length=2000, description="Extra guidance for a chat model (prompt)."
    )

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str] | None) -> list[str] | None:
        if labels is None:
            return None
        cleaned = [label.strip() for label in labels]
        if any(not label or len(label) > 100 for label in cleaned):
            raise ValueError("each label must have 1 to 100 characters")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("labels must be distinct")
        return cleaned


class LabelResponse(TaskResponse):
    """The chosen label."""

    label: str
    scores: dict[str, float] | None = Field(
        default=None,
        description="Trained classifier only: the probability of each label (of the request's "
        "labels when it gave some), summing to 1; null when a chat model answered.",
    )


class SentimentRequest(TaskRequest):
    """The sentiment of ``text``."""

    model: str | None = Field(default=None, description=CLASSIFIER_MODEL)


class ModerateRequest(TaskRequest):
    """Check ``text`` against the moderation categories."""


class ModerateResponse(TaskResponse):
    """Per-category flags; ``flagged`` when any is true."""

    flagged: bool
    categories: dict[str, bool]


class ExtractRequest(TaskRequest):
    """Extract a record matching ``json_schema`` from ``text``."""

    json_schema: dict[str, Any] = Field(
        alias="schema",
        description="JSON schema of the record (an object schema); the answer always matches it.",
    )
    instructions: str | None = Field(default=None, max_length=2000)
    max_tokens: int | None = Field(
        default=None, ge=1, le=8192, description="Longest answer; default: 512, within the context."
    )
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ExtractResponse(TaskResponse):
    """The extracted record, valid against the request's schema."""

    data: dict[str, Any]
