"""Request and response shapes of llmeco's non-OpenAI routes, on the client side.

These mirror the server's pydantic schemas (same class and field names) without importing
any server code, so the client installs and runs without torch, FastAPI or the engine.
``tests/unit/client/test_openapi_drift.py`` compares them with the server's OpenAPI schema:
a renamed or newly required field on the server fails that test, naming the route.

Request models carry no value constraints (lengths, ranges): the server is the one
authority, and its 400 answer names the parameter. Response models accept extra fields, so
a newer server that adds fields does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from llmeco.client._types_audit import (
    AuditCheckpoint,
    AuditEntry,
    AuditEntryList,
    CheckpointList,
    InclusionProof,
    VerifyProblem,
    VerifyResult,
)
from llmeco.client._types_base import (
    Request,
    Response,
)
from llmeco.client._types_kb import (
    AddTextRequest,
    CreateKbRequest,
    DocumentAdded,
    DocumentDeleted,
    DocumentForm,
    DocumentInfo,
    KbDeleted,
    KbDetails,
    KbList,
    KbSummary,
    SearchHit,
    SearchRequest,
    SearchResponse,
)

#: What ``POST /v1/apps/write/{action}`` can do.
WriteAction = Literal["outline", "continue", "rewrite", "shorten", "expand"]
#: Encodings of spoken answers.
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


# ---------------------------------------------------------------- requests


class CreateKeyRequest(Request):
    """``POST /admin/keys``: a new key holding at most what the calling key holds."""

    name: str
    scopes: list[str]
    models: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    daily_tokens: int | None = None
    expires_in: str | None = None


class UpdateLimitsRequest(Request):
    """``PATCH /admin/keys/{key_id}``: fields left out keep their value, null removes it."""

    rpm: int | None = None
    tpm: int | None = None
    daily_tokens: int | None = None


class AliasRequest(Request):
    """``PUT /admin/aliases/{alias}``: point an alias at a served model."""

    model: str


class TaskRequest(Request):
    """Fields every ``/v1/tasks/*`` request has."""

    model: str | None = None
    text: str


class TranslateRequest(TaskRequest):
    """``POST /v1/tasks/translate``."""

    target_language: str
    source_language: str | None = None
    max_tokens: int | None = None


class SummarizeRequest(TaskRequest):
    """``POST /v1/tasks/summarize``."""

    max_words: int | None = None
    style: Literal["paragraph", "bullets"] | None = None
    max_tokens: int | None = None


class CorrectRequest(TaskRequest):
    """``POST /v1/tasks/correct``."""

    max_tokens: int | None = None


class ClassifyRequest(TaskRequest):
    """``POST /v1/tasks/classify``."""

    labels: list[str] | None = None
    instructions: str | None = None


class SentimentRequest(TaskRequest):
    """``POST /v1/tasks/sentiment``."""


class ModerateRequest(TaskRequest):
    """``POST /v1/tasks/moderate``."""


class ExtractRequest(TaskRequest):
    """``POST /v1/tasks/extract`` (the JSON field is ``schema``)."""

    json_schema: dict[str, Any] = Field(alias="schema")
    instructions: str | None = None
    max_tokens: int | None = None


class WriteRequest(Request):
    """``POST /v1/apps/write/{action}`` (non-streamed)."""

    model: str | None = None
    text: str
    tone: str | None = None
    style: str | None = None
    audience: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None


class FeedbackRequest(Request):
    """``POST /v1/feedback``: a rating of a support answer."""

    response_id: str
    rating: Literal["up", "down"]
    correction: str | None = None
    comment: str | None = None


class TokenizeCompletionRequest(Request):
    """``POST /tokenize`` of plain text."""

    model: str
    prompt: str


class TokenizeChatRequest(Request):
    """``POST /tokenize`` of a conversation, rendered with the model's chat template."""

    model: str
    messages: list[dict[str, Any]]
    add_generation_prompt: bool | None = None
    tools: list[dict[str, Any]] | None = None


class DetokenizeRequest(Request):
    """``POST /detokenize``."""

    model: str
    tokens: list[int]


class VoiceForm(Request):
    """``POST /v1/apps/voice/{kb}``: the multipart form (``file`` is the audio upload)."""

    file: bytes
    voice: str | None = None
    response_format: SpeechFormat | None = None
    model: str | None = None
    speech_model: str | None = None
    user: str | None = None


# ---------------------------------------------------------------- responses


class KeyInfo(Response):
    """An API key as the server shows it (never its secret)."""

    id: str
    name: str
    scopes: list[str]
    models: list[str]
    rpm: int | None
    tpm: int | None
    daily_tokens: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str
    status: str


class CreatedKey(KeyInfo):
    """A new key with its secret, shown this once."""

    key: str


class KeyList(Response):
    """Keys the caller may manage."""

    object: str = "list"
    data: list[KeyInfo]


class KeyUsage(Response):
    """One key's usage on one UTC day."""

    key_id: str
    name: str
    day: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    requests: int
    daily_tokens: int | None
    remaining_tokens: int | None


class UsageList(Response):
    """Usage of the keys the caller may see."""

    object: str = "list"
    data: list[KeyUsage]


class AliasInfo(Response):
    """One serving alias."""

    alias: str
    model: str


class DrainingVersion(Response):
    """A replaced model version still finishing its requests."""

    version: str
    leases: int
    seconds: float


class ServedModel(Response):
    """A served model, its reference and the version serving now."""

    model: str
    ref: str
    follows: str | None = None
    version: str | None = None
    swaps: int
    draining: list[DrainingVersion]


class SwapResult(Response):
    """What a reload did; ``swapped`` is false when the version was already current."""

    model: str
    ref: str
    previous_version: str
    version: str
    swapped: bool
    seconds: float


class ForgetResult(Response):
    """What erasing a support session removed."""

    subject: str
    subject_sha256: str
    counts: dict[str, int]
    total: int


class Usage(Response):
    """Token counts of one request."""

    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class TaskResponse(Response):
    """Fields every task response has."""

    id: str
    object: str
    model: str
    usage: Usage


class TranslateResponse(TaskResponse):
    """The translation."""

    translation: str


class SummarizeResponse(TaskResponse):
    """The summary."""

    summary: str


class CorrectResponse(TaskResponse):
    """The corrected text and whether anything changed."""

    corrected: str
    changed: bool


class LabelResponse(TaskResponse):
    """The chosen label (and, from a trained classifier, every label's probability)."""

    label: str
    scores: dict[str, float] | None = None


class ModerateResponse(TaskResponse):
    """Per-category flags; ``flagged`` when any is true."""

    flagged: bool
    categories: dict[str, bool]


class ExtractResponse(TaskResponse):
    """The extracted record, valid against the request's schema."""

    data: dict[str, Any]


class WriteResponse(Response):
    """The written text."""

    id: str
    object: str
    model: str
    text: str
    finish_reason: str | None
    usage: Usage


class FeedbackResponse(Response):
    """The stored feedback's id."""

    id: str
    object: str = "feedback"


class HandoffOut(Response):
    """A question the support assistant passed to a person."""

    id: str
    kb: str
    session_id: str
    response_id: str
    question: str
    reason: str
    created_at: datetime


class HandoffList(Response):
    """The newest hand-offs."""

    object: str = "list"
    data: list[HandoffOut]


class SpokenAudio(Response):
    """A spoken answer, inline (``data`` is base64)."""

    format: str
    media_type: str
    data: str
    duration: float


class VoiceAnswer(Response):
    """What the voice desk heard, answered (with citations) and spoke."""

    id: str
    object: str = "voice.answer"
    kb: str
    session_id: str
    transcript: str
    answer: str
    finish_reason: str
    citations: list[dict[str, Any]]
    handoff: dict[str, Any] | None = None
    audio: SpokenAudio


class TokenizeResponse(Response):
    """Token ids, their count, and the model's context length."""

    count: int
    max_model_len: int
    tokens: list[int]


class DetokenizeResponse(Response):
    """The text of the token ids."""

    prompt: str


class Health(Response):
    """``GET /health``: the process lives."""

    status: str


class Readiness(Response):
    """``GET /ready``: every engine can serve (a server that is not ready answers 503)."""

    status: str
    models: list[str]


__all__ = [
    "AddTextRequest",
    "AliasInfo",
    "AliasRequest",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditEntryList",
    "CheckpointList",
    "ClassifyRequest",
    "CorrectRequest",
    "CorrectResponse",
    "CreateKbRequest",
    "CreateKeyRequest",
    "CreatedKey",
    "DetokenizeRequest",
    "DetokenizeResponse",
    "DocumentAdded",
    "DocumentDeleted",
    "DocumentForm",
    "DocumentInfo",
    "DrainingVersion",
    "ExtractRequest",
    "ExtractResponse",
    "FeedbackRequest",
    "FeedbackResponse",
    "ForgetResult",
    "HandoffList",
    "HandoffOut",
    "Health",
    "InclusionProof",
    "KbDeleted",
    "KbDetails",
    "KbList",
    "KbSummary",
    "KeyInfo",
    "KeyList",
    "KeyUsage",
    "LabelResponse",
    "ModerateRequest",
    "ModerateResponse",
    "Readiness",
    "Request",
    "Response",
    "SearchHit",
    "SearchRequest",
    "SearchResponse",
    "SentimentRequest",
    "ServedModel",
    "SpeechFormat",
    "SpokenAudio",
    "SummarizeRequest",
    "SummarizeResponse",
    "SwapResult",
    "TaskRequest",
    "TaskResponse",
    "TokenizeChatRequest",
    "TokenizeCompletionRequest",
    "TokenizeResponse",
    "TranslateRequest",
    "TranslateResponse",
    "UpdateLimitsRequest",
    "Usage",
    "UsageList",
    "VerifyProblem",
    "VerifyResult",
    "VoiceAnswer",
    "VoiceForm",
    "WriteAction",
    "WriteRequest",
    "WriteResponse",
]
