"""Hybrid retrieval: BM25 and vector candidates fused by reciprocal rank, then hydrated.

Reciprocal rank fusion (Cormack et al., 2009) scores a chunk ``Σ 1 / (k_rrf + rank)`` over
the ranked lists it appears in. It needs no score calibration between BM25 and cosine
similarity, and a chunk that both retrievers like beats one that only one of them likes.

Each :class:`Hit` says where its passage is (document, heading path, character span) and
carries the cosine similarity of the query to the chunk, the signal an app uses to decide
that retrieval is too weak to answer from. With ``neighbors=n`` the hit's ``context`` also
covers the ``n`` chunks before and after it in the same section, for answers that straddle
a chunk boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from llmeco.rag.chunk import SECTION_SEPARATOR
from llmeco.rag.index import KeywordHits, VectorIndex, fts_search

#: The constant of reciprocal rank fusion; 60 is the value of the original paper.
RRF_K = 60


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and where it came from."""

    kb: str
    doc: str
    section: str
    start: int
    end: int
    text: str
    score: float
    similarity: float
    chunk_id: int
    ordinal: int
    context: str
    context_start: int
    context_end: int

    @property
    def heading(self) -> str:
        """The innermost heading over the passage ("" before the first heading)."""
        return self.section.rsplit(SECTION_SEPARATOR, 1)[-1]

    @property
    def anchor(self) -> str:
        """A chunking-independent id of the passage's place: ``doc#innermost heading``."""
        return f"{self.doc}#{self.heading}" if self.heading else self.doc

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (for the CLI, the server and evaluation reports)."""
        return {
            "kb": self.kb,
            "doc": self.doc,
            "section": self.section,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": self.score,
            "similarity": self.similarity,
            "chunk_id": self.chunk_id,
            "ordinal": self.ordinal,
            "context": self.context,
            "context_start": self.context_start,
            "context_end": self.context_end,
        }


def rrf(rankings: Sequence[Sequence[int]], k_rrf: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked id lists by reciprocal rank: (id, score) best first; ties by first seen."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k_rrf + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def hybrid_search(
    session: Session,
    *,
    kb_name: str,
    kb_id: int,
    index: VectorIndex,
    query: str,
    query_vector: np.ndarray,
    k: int,
    candidates: int = 50,
    neighbors: int = 0,
    keyword: KeywordHits | None = None,
) -> list[Hit]:
    """The ``k`` best chunks for ``query`` by BM25 + vector similarity fused with RRF.

    ``keyword`` is the BM25 ranking when the caller already ran it (in parallel with
    embedding the query); otherwise it is computed here.
    """
    pool = max(candidates, k)
    if keyword is None:
        keyword = fts_search(session, kb_id, query, pool, term_df=index.term_df)
    lexical = keyword.ids if keyword.ranked else index.rank_subset(query_vector, keyword.ids, pool)
    semantic = index.search(query_vector, pool)
    fused = rrf([lexical, semantic])[:k]
    if not fused:
        return []
    ids = [chunk_id for chunk_id, _ in fused]
    sims = index.similarities(query_vector, ids)
    rows = {
        int(r.id): r
        for r in session.execute(
            sa.text(
                'SELECT c.id, c.doc_id, c.ordinal, c.start, c."end", c.section, c.text, '
                "d.name AS doc FROM kb_chunks c JOIN kb_documents d ON d.id = c.doc_id "
                "WHERE c.id IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": ids},
        )
    }
    hits: list[Hit] = []
    for (chunk_id, score), sim in zip(fused, sims, strict=True):
        row = rows.get(chunk_id)
        if row is None:  # removed between the index load and now
            continue
        ctx = (row.text, int(row.start), int(row.end))
        if neighbors > 0:
            ctx = _context(session, int(row.doc_id), int(row.ordinal), row.section, neighbors)
        hits.append(
            Hit(
                kb=kb_name,
                doc=row.doc,
                section=row.section,
                start=int(row.start),
                end=int(row.end),
                text=row.text,
                score=score,
                similarity=sim,
                chunk_id=chunk_id,
                ordinal=int(row.ordinal),
                context=ctx[0],
                context_start=ctx[1],
                context_end=ctx[2],
            )
        )
    return hits


def _context(
    session: Session, doc_id: int, ordinal: int, section: str, neighbors: int
) -> tuple[str, int, int]:
    """Text and span of a chunk together with its neighbours under the same heading."""
    span = session.execute(
        sa.text(
            'SELECT MIN(start), MAX("end") FROM kb_chunks WHERE doc_id = :doc '
            "AND ordinal BETWEEN :lo AND :hi AND section = :section"
        ),
        {"doc": doc_id, "lo": ordinal - neighbors, "hi": ordinal + neighbors, "section": section},
    ).one()
    start, end = int(span[0]), int(span[1])
    text = session.execute(
        sa.text("SELECT substr(text, :from_, :len_) FROM kb_documents WHERE id = :doc"),
        {"from_": start + 1, "len_": end - start, "doc": doc_id},
    ).scalar_one()
    return str(text), start, end
