"""Schemas of the voice support desk."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class SpokenAudio(BaseModel):
    """The spoken answer, inline."""

    format: str
    media_type: str
    #: Base64 of the encoded audio file.
    data: str
    duration: float = Field(description="Seconds.")


class VoiceAnswer(BaseModel):
    """What the desk heard, what it answered (with citations), and the answer spoken."""

    id: str
    object: Literal["voice.answer"] = "voice.answer"
    kb: str
    session_id: str
    transcript: str
    answer: str
    #: ``stop`` (answered) or ``handoff`` (passed to a person).
    finish_reason: str
    citations: list[dict[str, Any]]
    handoff: dict[str, Any] | None = None
    audio: SpokenAudio
