"""Schemas of ``GET /v1/models``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ModelCard(BaseModel):
    """One served model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmeco"
    max_model_len: int
    root: str | None = None
    #: llmeco extra: the registry version served now (``"support:3"``) for a model served
    #: from the registry; it changes when a followed alias moves (hot swap).
    version: str | None = None
    #: llmeco extra: what the model serves ("generate": chat/completions, "embed":
    #: /v1/embeddings, "support": the support assistant, "classify": a trained classifier
    #: for /v1/tasks/classify and /sentiment, "agent": an agent that calls tools, served on
    #: /v1/chat/completions as ``agent:<name>``, "transcribe": speech-to-text on
    #: /v1/audio/transcriptions, "speech": text-to-speech on /v1/audio/speech).
    task: Literal["generate", "embed", "support", "classify", "agent", "transcribe", "speech"] = (
        "generate"
    )
    #: llmeco extra, classifiers only: the labels it can produce.
    labels: list[str] | None = None


class ModelList(BaseModel):
    """Every served model."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
