"""Knowledge bases: named collections of documents, chunked, embedded and searchable.

::

    store = Store.from_settings(settings)
    kb = KnowledgeBase.create(store, "support")          # or KnowledgeBase.open(store, "support")
    kb.add_file(Path("examples/corpus/handbook.md"))     # added / updated / unchanged
    for hit in kb.search("How long do refunds take?", k=5):
        print(hit.doc, hit.section, hit.start, hit.end, hit.score)

Adding a document is all-or-nothing: the file is parsed, chunked and embedded first, then
its rows (document, chunks, full-text entries, cached vectors) are written in **one
transaction**, replacing an older version of the same document if there is one. A crash or
an error leaves the previous state, never half a document. Re-adding a file whose bytes are
unchanged is a no-op that does not even load the embedding model.

Embeddings are cached in the store by SHA-256 of (model, text): editing one section of a
long document re-embeds only the chunks that changed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from llmeco.errors import ConfigError, InvalidRequest, NotFound
from llmeco.rag.chunk import Chunk, chunk_text
from llmeco.rag.embed import DEFAULT_NAME
from llmeco.rag.index import KeywordHits, VectorIndex, fts_search
from llmeco.rag.parse import ParsedFile, read_document
from llmeco.rag.retrieve import Hit, hybrid_search
from llmeco.rag.tables import KbChunkRow, KbDocumentRow, KbEmbeddingRow, KbRow
from llmeco.store import Store

#: Called with (chunks embedded so far, chunks to embed) while a document is embedded.
Progress = Callable[[int, int], None]
_EMBED_BATCH = 128
#: Threads that run keyword searches next to query embedding.
_KEYWORD_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="llmeco-kb-keyword")
_LOOKUP_BATCH = 500


class TextEmbedder(Protocol):
    """What a knowledge base needs from an embedding model (``rag.embed.Embedder`` is one)."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, shape (len(texts), dimensions)."""
        ...


if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder

_default: Embedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> Embedder:
    """The packaged all-MiniLM-L6-v2, loaded once per process on first use."""
    global _default
    with _default_lock:
        if _default is None:
            from transformers.utils import logging as hf_logging

            from llmeco.rag.embed import Embedder

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            _default = Embedder()
        return _default


def embed_key(model: str, text: str) -> str:
    """Cache key of an embedding: SHA-256 of the model name and the exact text."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


@dataclass(frozen=True)
class AddResult:
    """What adding one document did."""

    doc: str
    status: Literal["added", "updated", "unchanged"]
    chunks: int
    embedded: int  # chunks whose vectors were computed now (not found in the cache)


@dataclass(frozen=True)
class KbInfo:
    """A knowledge base and its size."""

    name: str
    embed_model: str
    documents: int
    chunks: int
    created_at: datetime


@dataclass(frozen=True)
class DocInfo:
    """One document of a knowledge base."""

    name: str
    source: str
    chunks: int
    content_hash: str
    added_at: datetime


class KnowledgeBase:
    """One knowledge base in the store: ingestion, removal and hybrid search."""

    def __init__(
        self,
        store: Store,
        name: str,
        kb_id: int,
        embed_model: str,
        embedder: TextEmbedder | None = None,
        *,
        max_chars: int = 800,
        overlap_chars: int = 160,
    ) -> None:
        """Use :meth:`create` or :meth:`open`; this binds an existing row."""
        if embedder is not None and embedder.name != embed_model:
            raise ConfigError(
                f"knowledge base {name!r} was built with {embed_model!r}, not "
                f"{embedder.name!r}; use the same embedding model or a new knowledge base"
            )
        self.store = store
        self.name = name
        self.id = kb_id
        self.embed_model = embed_model
        self.max_chars = max_chars
        self.overlap_chars = overlap_chars
        self._embedder = embedder
        self._index: VectorIndex | None = None
        self._lock = threading.Lock()
        #: When the row was created (set by :meth:`create`/:meth:`open`; see :meth:`exists`).
        self.created_at: datetime | None = None

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def create(
        cls, store: Store, name: str, embedder: TextEmbedder | None = None, **kwargs: int
    ) -> KnowledgeBase:
        """Create an empty knowledge base named ``name``.

        Raises:
            InvalidRequest: the name is empty, too long, or already taken.
        """
        name = name.strip()
        if not name or len(name) > 200 or "/" in name:
            raise InvalidRequest(
                f"bad knowledge-base name {name!r}: use 1-200 characters without '/'"
            )
        model = embedder.name if embedder is not None else DEFAULT_NAME
        with store.session() as s:
            if s.execute(sa.select(KbRow.id).where(KbRow.name == name)).first():
                raise InvalidRequest(f"knowledge base {name!r} already exists")
            created = datetime.now(UTC)
            row = KbRow(name=name, embed_model=model, version=0, created_at=created)
            s.add(row)
            s.flush()
            kb_id = int(row.id)
        kb = cls(store, name, kb_id, model, embedder, **kwargs)
        kb.created_at = created
        return kb

    @classmethod
    def open(
        cls, store: Store, name: str, embedder: TextEmbedder | None = None, **kwargs: int
    ) -> KnowledgeBase:
        """The existing knowledge base named ``name``.

        Raises:
            NotFound: there is none; the message lists the ones there are.
        """
        with store.session() as s:
            row = s.execute(
                sa.select(KbRow.id, KbRow.embed_model, KbRow.created_at).where(KbRow.name == name)
            ).first()
            if row is None:
                names = s.execute(sa.select(KbRow.name).order_by(KbRow.name)).scalars().all()
                known = ", ".join(names) or "none yet; create one with `llmeco kb create NAME`"
                raise NotFound(f"no knowledge base named {name!r} (known: {known})")
        kb = cls(store, name, int(row[0]), str(row[1]), embedder, **kwargs)
        kb.created_at = row[2]
        return kb

    def exists(self) -> bool:
        """Whether this knowledge base is still in the store: not deleted since it was
        opened, by this process or another, nor deleted and created again (a store may reuse
        the row id, so the creation time is compared too)."""
        with self.store.session() as s:
            created = s.execute(
                sa.select(KbRow.created_at).where(KbRow.id == self.id)
            ).scalar_one_or_none()
        if created is None:
            return False
        return self.created_at is None or _naive(created) == _naive(self.created_at)

    def drop(self) -> None:
        """Delete this knowledge base with all its documents and chunks (cached vectors stay)."""
        with self.store.session() as s:
            s.execute(sa.delete(KbChunkRow).where(KbChunkRow.kb_id == self.id))
            s.execute(sa.delete(KbDocumentRow).where(KbDocumentRow.kb_id == self.id))
            s.execute(sa.delete(KbRow).where(KbRow.id == self.id))
        self._index = None

    @property
    def embedder(self) -> TextEmbedder:
        """The embedding model (the packaged one unless another was given), loaded lazily."""
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    # ----------------------------------------------------------------- documents

    def documents(self) -> list[DocInfo]:
        """The documents of this knowledge base, by name."""
        with self.store.session() as s:
            rows = s.execute(
                sa.select(
                    KbDocumentRow.name,
                    KbDocumentRow.source,
                    KbDocumentRow.n_chunks,
                    KbDocumentRow.content_hash,
                    KbDocumentRow.added_at,
                )
                .where(KbDocumentRow.kb_id == self.id)
                .order_by(KbDocumentRow.name)
            ).all()
        return [DocInfo(r[0], r[1], int(r[2]), r[3], r[4]) for r in rows]

    def add_file(
        self, path: Path, name: str | None = None, *, progress: Progress | None = None
    ) -> AddResult:
        """Parse, chunk, embed and store one file (``name`` defaults to the file name).

        Raises:
            ConfigError: the file cannot be read or has no text; the message names the file.
        """
        return self.add_document(read_document(path, name), progress=progress)

    def add_text(self, name: str, text: str, *, source: str = "") -> AddResult:
        """Add (or replace) a document given as Markdown/plain text."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        return self.add_document(ParsedFile(name, source or name, text, digest))

    def add_document(self, parsed: ParsedFile, *, progress: Progress | None = None) -> AddResult:
        """Store a parsed document in one transaction: added, replaced, or left unchanged."""
        with self.store.session() as s:
            old = s.execute(
                sa.select(KbDocumentRow.id, KbDocumentRow.content_hash, KbDocumentRow.n_chunks)
                .where(KbDocumentRow.kb_id == self.id)
                .where(KbDocumentRow.name == parsed.name)
            ).first()
        if old is not None and old[1] == parsed.content_hash:
            return AddResult(parsed.name, "unchanged", int(old[2]), 0)
        chunks = chunk_text(parsed.text, max_chars=self.max_chars, overlap_chars=self.overlap_chars)
        if not chunks:
            raise ConfigError(f"{parsed.source}: no text to index (only headings?)")
        keys = [embed_key(self.embed_model, c.embed_text) for c in chunks]
        vectors = self._embed_missing(chunks, keys, progress)
        now = datetime.now(UTC)
        with self.store.session() as s:
            _insert_vectors(s, self.embed_model, vectors)
            if old is not None:
                doc_id = int(old[0])
                s.execute(sa.delete(KbChunkRow).where(KbChunkRow.doc_id == doc_id))
                s.execute(
                    sa.update(KbDocumentRow)
                    .where(KbDocumentRow.id == doc_id)
                    .values(
                        source=parsed.source,
                        content_hash=parsed.content_hash,
                        text=parsed.text,
                        n_chunks=len(chunks),
                        added_at=now,
                    )
                )
            else:
                doc = KbDocumentRow(
                    kb_id=self.id,
                    name=parsed.name,
                    source=parsed.source,
                    content_hash=parsed.content_hash,
                    text=parsed.text,
                    n_chunks=len(chunks),
                    added_at=now,
                )
                s.add(doc)
                s.flush()
                doc_id = int(doc.id)
            s.execute(
                sa.insert(KbChunkRow),
                [
                    {
                        "doc_id": doc_id,
                        "kb_id": self.id,
                        "ordinal": c.ordinal,
                        "start": c.start,
                        "end": c.end,
                        "section": c.section,
                        "text": c.text,
                        "embed_key": key,
                    }
                    for c, key in zip(chunks, keys, strict=True)
                ],
            )
            self._bump(s)
        status: Literal["added", "updated"] = "updated" if old is not None else "added"
        return AddResult(parsed.name, status, len(chunks), len(vectors))

    def remove(self, doc: str) -> int:
        """Remove document ``doc`` and its chunks; returns how many chunks went.

        Raises:
            NotFound: no such document in this knowledge base.
        """
        with self.store.session() as s:
            row = s.execute(
                sa.select(KbDocumentRow.id, KbDocumentRow.n_chunks)
                .where(KbDocumentRow.kb_id == self.id)
                .where(KbDocumentRow.name == doc)
            ).first()
            if row is None:
                raise NotFound(f"knowledge base {self.name!r} has no document {doc!r}")
            s.execute(sa.delete(KbChunkRow).where(KbChunkRow.doc_id == row[0]))
            s.execute(sa.delete(KbDocumentRow).where(KbDocumentRow.id == row[0]))
            self._bump(s)
        return int(row[1])

    def _bump(self, s: Session) -> None:
        s.execute(sa.update(KbRow).where(KbRow.id == self.id).values(version=KbRow.version + 1))

    def _embed_missing(
        self, chunks: Sequence[Chunk], keys: Sequence[str], progress: Progress | None
    ) -> dict[str, np.ndarray]:
        """Vectors of the chunks whose key is not in the cache yet, computed in batches."""
        cached: set[str] = set()
        unique = list(dict.fromkeys(keys))
        with self.store.session() as s:
            for i in range(0, len(unique), _LOOKUP_BATCH):
                batch = unique[i : i + _LOOKUP_BATCH]
                cached.update(
                    s.execute(sa.select(KbEmbeddingRow.key).where(KbEmbeddingRow.key.in_(batch)))
                    .scalars()
                    .all()
                )
        todo = {k: c.embed_text for c, k in zip(chunks, keys, strict=True) if k not in cached}
        items = list(todo.items())
        out: dict[str, np.ndarray] = {}
        if progress is not None:
            progress(0, len(items))
        for i in range(0, len(items), _EMBED_BATCH):
            pairs = items[i : i + _EMBED_BATCH]
            vecs = self.embedder.embed([text for _, text in pairs])
            for (key, _), vec in zip(pairs, vecs, strict=True):
                out[key] = np.ascontiguousarray(vec, dtype=np.float32)
            if progress is not None:
                progress(min(i + _EMBED_BATCH, len(items)), len(items))
        return out

    # ----------------------------------------------------------------- search

    def search(
        self, query: str, k: int = 5, *, neighbors: int = 0, candidates: int = 50
    ) -> list[Hit]:
        """The ``k`` passages that best answer ``query``: BM25 and vectors fused by RRF.

        ``neighbors`` widens each hit's ``context`` by that many chunks either side (same
        heading); ``candidates`` is how deep each retriever looks before fusion.

        Raises:
            InvalidRequest: an empty query or ``k`` < 1.
        """
        if not query.strip():
            raise InvalidRequest("the query is empty", param="query")
        if k < 1 or neighbors < 0:
            raise InvalidRequest("k must be at least 1 and neighbors at least 0", param="k")
        with self.store.session() as s:
            index = self._current_index(s)
        pool = max(candidates, k)
        # The keyword search (SQLite/PostgreSQL, no GIL held) runs while the query is embedded.
        keyword = _KEYWORD_POOL.submit(self._keyword, query, pool, index)
        embedder = self.embedder
        embed_query = getattr(embedder, "embed_query", embedder.embed)
        vector = embed_query([query])[0]
        with self.store.session() as s:
            return hybrid_search(
                s,
                kb_name=self.name,
                kb_id=self.id,
                index=index,
                query=query,
                query_vector=vector,
                k=k,
                candidates=candidates,
                neighbors=neighbors,
                keyword=keyword.result(),
            )

    def _keyword(self, query: str, limit: int, index: VectorIndex) -> KeywordHits:
        with self.store.session() as s:
            return fts_search(s, self.id, query, limit, term_df=index.term_df)

    def retriever(self, k: int = 5) -> Callable[[str], list[str]]:
        """A ``query -> [anchor, …]`` callable (``doc#heading``), best first, for evaluation."""
        return lambda query: [hit.anchor for hit in self.search(query, k)]

    def _current_index(self, s: Session) -> VectorIndex:
        """The in-memory vector index, reloaded when the KB changed since it was built."""
        version = s.execute(
            sa.select(KbRow.version).where(KbRow.id == self.id)
        ).scalar_one_or_none()
        if version is None:
            raise NotFound(f"knowledge base {self.name!r} was deleted")
        with self._lock:
            if self._index is None or self._index.version != version:
                self._index = VectorIndex.load(s, self.id, self.embedder.dimensions, int(version))
            return self._index


def _naive(value: datetime) -> datetime:
    """UTC without tzinfo (SQLite hands back naive datetimes, PostgreSQL aware ones)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _insert_vectors(s: Session, model: str, vectors: dict[str, np.ndarray]) -> None:
    """Add vectors to the embedding cache, ignoring keys another writer added meanwhile."""
    if not vectors:
        return
    rows = [
        {"key": key, "model": model, "dim": int(vec.shape[0]), "vector": vec.tobytes()}
        for key, vec in vectors.items()
    ]
    table = KbEmbeddingRow
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        s.execute(pg_insert(table).on_conflict_do_nothing(index_elements=["key"]), rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        s.execute(sqlite_insert(table).on_conflict_do_nothing(index_elements=["key"]), rows)


def open_or_create(store: Store, name: str, embedder: TextEmbedder | None = None) -> KnowledgeBase:
    """Open knowledge base ``name``, creating it empty when it does not exist yet."""
    try:
        return KnowledgeBase.open(store, name, embedder)
    except NotFound:
        return KnowledgeBase.create(store, name, embedder)


def list_knowledge_bases(store: Store) -> list[KbInfo]:
    """Every knowledge base with its document and chunk counts, by name."""
    docs = (
        sa.select(sa.func.count(KbDocumentRow.id))
        .where(KbDocumentRow.kb_id == KbRow.id)
        .scalar_subquery()
    )
    chunks = (
        sa.select(sa.func.coalesce(sa.func.sum(KbDocumentRow.n_chunks), 0))
        .where(KbDocumentRow.kb_id == KbRow.id)
        .scalar_subquery()
    )
    with store.session() as s:
        rows = s.execute(
            sa.select(KbRow.name, KbRow.embed_model, docs, chunks, KbRow.created_at).order_by(
                KbRow.name
            )
        ).all()
    return [KbInfo(r[0], r[1], int(r[2]), int(r[3]), r[4]) for r in rows]
