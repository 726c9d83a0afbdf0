"""Client-side shapes of the knowledge-base routes (``/v1/kb``), re-exported by
:mod:`llmeco.client.types`.
"""

from __future__ import annotations

from typing import Literal

from llmeco.client._types_base import Request, Response


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
