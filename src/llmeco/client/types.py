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

from pydantic import BaseModel, ConfigDict, Field

#: What ``POST /v1/apps/write/{action}`` can do.
WriteAction = Literal["outline", "continue", "rewrite", "shorten", "expand"]
#: Encodings of spoken answers.
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class Request(BaseModel):
    """Base of request bodies: unknown fields are a bug in the client, so they are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Response(BaseModel):
    """Base of response bodies: fields a newer server adds are kept, not refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


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


# ---------------------------------------------------------------- knowledge bases


class CreateKbRequest(Request):
    """``POST /v1/kb``: a new, empty knowledge base (1-200 characters, no '/')."""

    name: str


class AddTextRequest(Request):
    """``POST /v1/kb/{name}/documents/text``: a document given as Markdown or plain text."""

    name: str
    text: str


class DocumentForm(Request):
    """``POST /v1/kb/{name}/documents``: the multipart form (``file`` is the upload;
    ``document`` its name in the knowledge base, default the file name)."""

    file: bytes
    document: str | None = None


class SearchRequest(Request):
    """``POST /v1/kb/{name}/search``: a question; ``k`` passages, widened by ``neighbors``."""

    query: str
    k: int | None = None
    neighbors: int | None = None


class KbSummary(Response):
    """A knowledge base and its size (``created_at``: Unix seconds)."""

    object: str = "knowledge_base"
    name: str
    embed_model: str
    documents: int
    chunks: int
    created_at: int


class KbList(Response):
    """The knowledge bases the calling key may see."""

    object: str = "list"
    data: list[KbSummary]


class DocumentInfo(Response):
    """One document of a knowledge base (``added_at``: Unix seconds)."""

    object: str = "knowledge_base.document"
    name: str
    source: str
    chunks: int
    content_hash: str
    added_at: int


class KbDetails(KbSummary):
    """A knowledge base with its documents."""

    document_list: list[DocumentInfo]


class DocumentAdded(Response):
    """What adding one document did: ``added``, ``updated`` or ``unchanged``."""

    object: str = "knowledge_base.document.result"
    kb: str
    document: str
    status: Literal["added", "updated", "unchanged"]
    chunks: int
    embedded: int


class DocumentDeleted(Response):
    """A removed document."""

    object: str = "knowledge_base.document.deleted"
    kb: str
    document: str
    deleted: bool = True
    chunks: int


class KbDeleted(Response):
    """A deleted knowledge base."""

    object: str = "knowledge_base.deleted"
    name: str
    deleted: bool = True
    documents: int
    chunks: int


class SearchHit(Response):
    """One passage, best first (``anchor``: ``doc#heading``)."""

    rank: int
    doc: str
    section: str
    anchor: str
    start: int
    end: int
    text: str
    context: str
    score: float
    similarity: float


class SearchResponse(Response):
    """The passages of ``kb`` that best answer ``query``."""

    object: str = "list"
    kb: str
    query: str
    data: list[SearchHit]


# ---------------------------------------------------------------- audit ledger


class AuditEntry(Response):
    """One ledger entry: its hashed ``payload`` and indexed copies (bodies when asked)."""

    seq: int
    ts: str
    kind: str
    request_id: str | None = None
    key_id: str | None = None
    route: str | None = None
    status: int | None = None
    payload: dict[str, Any]
    entry_hash: str
    bodies_redacted_at: str | None = None
    request_body: str | None = None
    response_body: str | None = None


class AuditEntryList(Response):
    """A page of entries; pass ``last_seq`` as ``after`` for the next one."""

    object: str = "list"
    data: list[AuditEntry]
    has_more: bool
    first_seq: int | None = None
    last_seq: int | None = None


class VerifyProblem(Response):
    """Something that failed to check (``seq``: the entry, when one is named)."""

    seq: int | None
    message: str


class VerifyResult(Response):
    """The outcome of re-walking the ledger (``llmeco audit verify --json``)."""

    ok: bool
    entries: int
    checkpoints: int
    archived_up_to: int
    archived_checked: int
    unchecked_checkpoints: int
    first_bad_seq: int | None
    problems: list[VerifyProblem]
    notes: list[str]
    public_key: str


class AuditCheckpoint(Response):
    """A signed statement of the tree's size and Merkle root (the export format)."""

    id: int | None = None
    log: str
    size: int
    root_hash: str
    timestamp: str
    public_key: str
    signature: str


class CheckpointList(Response):
    """Stored checkpoints, newest first."""

    object: str = "list"
    data: list[AuditCheckpoint]


class InclusionProof(Response):
    """Proof that entry ``seq`` is in the signed tree of ``tree_size`` entries; check it
    offline with ``llmeco audit verify --proof`` (the JSON is the same)."""

    type: Literal["inclusion"]
    seq: int
    leaf_index: int
    tree_size: int
    entry: str
    leaf_hash: str
    audit_path: list[str]
    checkpoint: AuditCheckpoint
