"""Schemas of the knowledge-base API (``/v1/kb``), shaped like OpenAI's vector stores:
lists are ``{"object": "list", "data": [...]}``, times are Unix seconds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FORBID = ConfigDict(extra="forbid")


class CreateKbRequest(BaseModel):
    """A new, empty knowledge base (the same name rules as ``llmeco kb create``)."""

    model_config = FORBID
    name: str = Field(
        min_length=1, max_length=200, description="1-200 characters, no '/'; must be new."
    )


class KbSummary(BaseModel):
    """A knowledge base and its size."""

    object: Literal["knowledge_base"] = "knowledge_base"
    name: str
    embed_model: str = Field(description="The embedding model its vectors were made with.")
    documents: int
    chunks: int
    created_at: int = Field(description="Unix seconds.")


class KbList(BaseModel):
    """The knowledge bases the calling key may see, by name."""

    object: Literal["list"] = "list"
    data: list[KbSummary]


class DocumentInfo(BaseModel):
    """One document of a knowledge base."""

    object: Literal["knowledge_base.document"] = "knowledge_base.document"
    name: str
    source: str = Field(description="Where it came from (a path, or upload:<file name>).")
    chunks: int
    content_hash: str = Field(description="SHA-256 of the bytes it was read from.")
    added_at: int = Field(description="Unix seconds.")


class KbDetails(KbSummary):
    """A knowledge base with its documents."""

    document_list: list[DocumentInfo] = Field(description="Its documents, by name.")


class AddTextRequest(BaseModel):
    """A document given as Markdown or plain text (``##`` headings become sections)."""

    model_config = FORBID
    name: str = Field(
        min_length=1, max_length=500, description="Document name, e.g. `faq.md` or `guides/a`."
    )
    text: str = Field(min_length=1, description="The document's Markdown or plain text.")


class DocumentAdded(BaseModel):
    """What adding one document did: ``added``, ``updated`` (replaced) or ``unchanged``."""

    object: Literal["knowledge_base.document.result"] = "knowledge_base.document.result"
    kb: str
    document: str
    status: Literal["added", "updated", "unchanged"]
    chunks: int
    embedded: int = Field(description="Chunks embedded now (the rest came from the cache).")


class DocumentDeleted(BaseModel):
    """A removed document."""

    object: Literal["knowledge_base.document.deleted"] = "knowledge_base.document.deleted"
    kb: str
    document: str
    deleted: bool = True
    chunks: int = Field(description="How many chunks went with it.")


class KbDeleted(BaseModel):
    """A deleted knowledge base."""

    object: Literal["knowledge_base.deleted"] = "knowledge_base.deleted"
    name: str
    deleted: bool = True
    documents: int
    chunks: int


class SearchRequest(BaseModel):
    """A question to a knowledge base."""

    model_config = FORBID
    query: str = Field(min_length=1, max_length=8000)
    k: int = Field(default=5, ge=1, le=50, description="How many passages.")
    neighbors: int = Field(
        default=0, ge=0, le=5, description="Widen each hit's `context` by N chunks either side."
    )


class SearchHit(BaseModel):
    """One passage, best first: BM25 and vector ranks fused (``score``, RRF)."""

    rank: int
    doc: str
    section: str = Field(description="Its heading path ('' before the first heading).")
    anchor: str = Field(description="`doc#innermost heading`: a chunking-independent id.")
    start: int = Field(description="Character offsets of `text` in the document.")
    end: int
    text: str
    context: str = Field(description="`text` widened by `neighbors` chunks (same heading).")
    score: float
    similarity: float = Field(description="Cosine similarity of query and passage.")


class SearchResponse(BaseModel):
    """The passages of ``kb`` that best answer ``query``."""

    object: Literal["list"] = "list"
    kb: str
    query: str
    data: list[SearchHit]
