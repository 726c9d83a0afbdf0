"""Request and response schemas of the task endpoints (``/v1/tasks/...``).

Like the OpenAI routes, requests forbid unknown fields, so a misspelt option is a 400 naming it.
``model`` may be left out: the server's first (default) model answers.
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


class ClassifyRequest(TaskRequest):
    """Pick one of ``labels`` for ``text``."""

    labels: list[str] = Field(min_length=2, max_length=50)
    instructions: str | None = Field(default=None, max_length=2000)

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        cleaned = [label.strip() for label in labels]
        if any(not label or len(label) > 100 for label in cleaned):
            raise ValueError("each label must have 1 to 100 characters")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("labels must be distinct")
        return cleaned


class LabelResponse(TaskResponse):
    """The chosen label."""

    label: str


class SentimentRequest(TaskRequest):
    """The sentiment of ``text``."""


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
