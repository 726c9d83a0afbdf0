"""Knowledge-base tables (migration ``0005_kb``).

* ``kb_bases`` — one row per knowledge base. ``version`` goes up on every change, so a
  process holding an in-memory vector index knows when to reload it (one cheap SELECT).
* ``kb_documents`` — one row per document, named inside its KB (``handbook.md``); the
  SHA-256 of the file's bytes decides whether a re-add is a no-op or a replacement. The
  extracted text is kept so citations and neighbour expansion can show exact spans.
* ``kb_chunks`` — the retrieval units: ``text`` is exactly ``document.text[start:end]``,
  ``section`` the heading path (``Handbook > Returns``), ``ordinal`` the position in the
  document, ``embed_key`` the cache key of its vector. On SQLite an external-content FTS5
  table ``kb_chunks_fts`` (porter stemming) is kept in step by triggers; on PostgreSQL a
  generated ``tsv`` column with a GIN index serves the same purpose. Neither is mapped here.
* ``kb_embeddings`` — the embedding cache: SHA-256 of (model, text) → float32 vector bytes.
  Re-adding a document, or the same passage in another KB, never embeds it twice.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from llmeco.store import Base

#: Name of the SQLite FTS5 table over ``kb_chunks`` (created by the migration).
FTS_TABLE = "kb_chunks_fts"


class KbRow(Base):
    """One knowledge base."""

    __tablename__ = "kb_bases"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    embed_model: Mapped[str] = mapped_column(sa.String(200))
    version: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class KbDocumentRow(Base):
    """One document of a knowledge base."""

    __tablename__ = "kb_documents"
    __table_args__ = (sa.UniqueConstraint("kb_id", "name", name="uq_kb_documents_kb_name"),)
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    kb_id: Mapped[int] = mapped_column(sa.ForeignKey("kb_bases.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(1000))
    source: Mapped[str] = mapped_column(sa.Text)
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    text: Mapped[str] = mapped_column(sa.Text)
    n_chunks: Mapped[int] = mapped_column(sa.Integer)
    added_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class KbChunkRow(Base):
    """One chunk: an exact span of a document's text under a heading path."""

    __tablename__ = "kb_chunks"
    __table_args__ = (
        sa.Index("ix_kb_chunks_doc_ordinal", "doc_id", "ordinal", unique=True),
        sa.Index("ix_kb_chunks_kb", "kb_id"),
    )
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[int] = mapped_column(sa.ForeignKey("kb_documents.id", ondelete="CASCADE"))
    kb_id: Mapped[int] = mapped_column(sa.Integer)
    ordinal: Mapped[int] = mapped_column(sa.Integer)
    start: Mapped[int] = mapped_column(sa.Integer)
    end: Mapped[int] = mapped_column(sa.Integer)
    section: Mapped[str] = mapped_column(sa.Text)
    text: Mapped[str] = mapped_column(sa.Text)
    embed_key: Mapped[str] = mapped_column(sa.String(64))


class KbEmbeddingRow(Base):
    """A cached embedding: key = SHA-256 of the model name and the embedded text."""

    __tablename__ = "kb_embeddings"
    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model: Mapped[str] = mapped_column(sa.String(200))
    dim: Mapped[int] = mapped_column(sa.Integer)
    vector: Mapped[bytes] = mapped_column(sa.LargeBinary)
