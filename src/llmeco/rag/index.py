"""The two indexes a knowledge base is searched through.

* **Full text (BM25).** SQLite: the FTS5 table ``kb_chunks_fts`` (porter stemming), ranked by
  its built-in ``bm25()``. PostgreSQL: the generated ``tsv`` column with a GIN index, ranked by
  ``ts_rank_cd``. Questions are turned into an OR of their content words (stop words dropped),
  so a chunk needs no exact phrase match and a common word cannot slow the query down.
* **Vectors.** All chunk embeddings of a KB are loaded from the store into one in-memory
  float16 matrix (unit rows), searched by a matrix–vector product and a top-k selection:
  100k chunks × 384 dims is 77 MB and about 9 ms per query on one core. The local PostgreSQL has
  no ``pgvector`` extension, so PostgreSQL uses the same in-memory matrix; the store stays
  the source of truth and the matrix is rebuilt when the KB's ``version`` changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
import torch
from sqlalchemy.orm import Session

from llmeco.rag.tables import FTS_TABLE
from llmeco.rag.threads import solo

#: Words too common to help a keyword search (and that would make it scan every row).
STOP_WORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just let me
    more most my no nor not now of off on once only or other our ours out over own same she should
    so some such than that the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you
    your yours yourself get got don doesn isn aren won didn""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
#: Most rows one keyword query may score on SQLite (~1 µs each); see :func:`plan_match`.
FTS_BUDGET = 3000


def query_terms(query: str) -> list[str]:
    """The distinct content words of ``query``, lower-cased, in order of appearance."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if word.isdigit() or (len(word) > 1 and word not in STOP_WORDS):
            seen.setdefault(word, None)
    return list(seen)


@dataclass(frozen=True)
class KeywordHits:
    """What the keyword index found.

    ``ranked``: ``ids`` are BM25-ordered, best first. Otherwise every query term was common
    (see :func:`plan_match`) and ``ids`` are the KB's chunks that hold all of the rarest ones,
    unordered: the caller orders them by vector similarity.
    """

    ids: list[int]
    ranked: bool = True


#: Most chunks returned by an unranked (all-terms-common) keyword match.
UNRANKED_LIMIT = 2000


def fts_search(
    session: Session,
    kb_id: int,
    query: str,
    limit: int,
    *,
    term_df: dict[str, int] | None = None,
    budget: int = FTS_BUDGET,
) -> KeywordHits:
    """Chunks of KB ``kb_id`` matching ``query``: BM25-ranked, best first (see KeywordHits).

    On SQLite the cost is bounded: BM25 costs a few microseconds for every row that matches,
    so when the terms together match more than ``budget`` rows the commonest ones are left
    out, and when every term is that common no BM25 is computed (see :func:`plan_match`).
    ``term_df`` caches each term's row count between calls.
    """
    terms = query_terms(query)
    if not terms:
        return KeywordHits([])
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        rows = session.execute(
            sa.text(
                "SELECT c.id FROM kb_chunks c, to_tsquery('english', :q) q "
                "WHERE c.kb_id = :kb AND c.tsv @@ q "
                "ORDER BY ts_rank_cd(c.tsv, q, 1) DESC, c.id LIMIT :limit"
            ),
            {"q": " | ".join(terms), "kb": kb_id, "limit": limit},
        )
        return KeywordHits([int(r[0]) for r in rows])
    plan = _sqlite_match(session, terms, term_df if term_df is not None else {}, budget)
    if plan is None:
        return KeywordHits([])
    match, ranked = plan
    if not ranked:  # rowids only: no BM25, no join (the caller keeps this KB's chunks)
        rows = session.execute(
            sa.text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match LIMIT :n"),
            {"match": match, "n": UNRANKED_LIMIT},
        )
        return KeywordHits([int(r[0]) for r in rows], ranked=False)
    # Rank in the FTS index alone (no join per matching row), then keep this KB's rows;
    # only when other KBs crowd them out is the filtered (slower) query needed.
    best = [
        int(r[0])
        for r in session.execute(
            sa.text(
                f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match "
                f"ORDER BY bm25({FTS_TABLE}, 0.5, 1.0) LIMIT :limit"
            ),
            {"match": match, "limit": 2 * limit},
        )
    ]
    if not best:
        return KeywordHits([])
    mine = set(
        session.execute(
            sa.text("SELECT id FROM kb_chunks WHERE kb_id = :kb AND id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"kb": kb_id, "ids": best},
        ).scalars()
    )
    if len(mine) >= limit or len(best) < 2 * limit:
        return KeywordHits([i for i in best if i in mine][:limit])
    rows = session.execute(
        sa.text(
            f"SELECT c.id FROM {FTS_TABLE} f JOIN kb_chunks c ON c.id = f.rowid "
            f"WHERE {FTS_TABLE} MATCH :match AND c.kb_id = :kb "
            f"ORDER BY bm25({FTS_TABLE}, 0.5, 1.0) LIMIT :limit"
        ),
        {"match": match, "kb": kb_id, "limit": limit},
    )
    return KeywordHits([int(r[0]) for r in rows])


def _sqlite_match(
    session: Session, terms: list[str], term_df: dict[str, int], budget: int
) -> tuple[str, bool] | None:
    """(FTS5 MATCH expression, rank it?) for ``terms`` under the row budget."""
    total = term_df.get("\0rows")
    if total is None:
        total = int(session.execute(sa.text("SELECT count(*) FROM kb_chunks")).scalar_one())
        term_df["\0rows"] = total
    if total <= budget:  # small store: no term can exceed the budget, skip the counting
        return " OR ".join(f'"{t}"' for t in terms), True
    for term in terms:
        if term not in term_df:
            term_df[term] = int(
                session.execute(
                    sa.text(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :t"),
                    {"t": f'"{term}"'},
                ).scalar_one()
            )
    return plan_match(terms, term_df, budget)


def plan_match(terms: list[str], df: dict[str, int], budget: int) -> tuple[str, bool] | None:
    """(FTS5 expression, rank it by BM25?) touching at most about ``budget`` rows for BM25.

    The rarest terms are OR-ed and BM25-ranked while their row counts add up to at most
    ``budget``: they carry nearly all of BM25's weight (a term in 30% of the chunks has an
    IDF of ~1.2 against ~7 for a term in 0.1%). When even the rarest term matches more rows
    than that, BM25 over tens of thousands of rows would cost tens of milliseconds, so the
    chunks holding all of the rarest three terms are asked for instead, unranked (listing
    rowids costs ~0.3 µs a row), and ordered by vector similarity by the caller. Terms found
    nowhere are dropped; None when nothing is left.
    """
    known = sorted((df.get(t, 1), t) for t in terms if df.get(t, 1) > 0)
    if not known:
        return None
    chosen: list[str] = []
    rows = 0
    for count, term in known:
        if rows + count > budget:
            break
        chosen.append(term)
        rows += count
    if chosen:
        return " OR ".join(f'"{t}"' for t in chosen), True
    return " AND ".join(f'"{t}"' for _, t in known[:3]), False


@dataclass
class VectorIndex:
    """Unit-length chunk vectors of one KB, rows in ascending chunk-id order.

    Held as float16: half the memory traffic of float32 for the full scan (9 ms instead of
    28 ms for 100k x 384 on one core here), at a cosine error of about 1e-3. Scored with torch
    on the single-threaded worker (:mod:`llmeco.rag.threads`), not numpy: a second (BLAS)
    thread pool spinning next to torch's slows both down on a small machine.
    """

    ids: np.ndarray  # (n,) int64, sorted
    matrix: torch.Tensor  # (n, dim) float16, unit rows
    version: int
    #: Rows each keyword matches in the full-text index, cached for this version.
    term_df: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, kb_id: int, dim: int, version: int) -> VectorIndex:
        """Read every chunk vector of the KB from the store into one matrix."""
        rows = session.execute(
            sa.text(
                "SELECT c.id, e.vector FROM kb_chunks c JOIN kb_embeddings e "
                "ON e.key = c.embed_key WHERE c.kb_id = :kb ORDER BY c.id"
            ),
            {"kb": kb_id},
        ).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.empty((len(rows), dim), dtype=np.float16)
        for i, row in enumerate(rows):
            matrix[i] = np.frombuffer(row[1], dtype=np.float32)
        return cls(ids=ids, matrix=torch.from_numpy(matrix), version=version)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def search(self, query: np.ndarray, limit: int) -> list[int]:
        """Ids of the ``limit`` chunks most similar to the unit vector ``query``, best first."""
        n = len(self)
        if n == 0 or limit <= 0:
            return []
        top = solo(self._top, query, min(limit, n))
        return [int(i) for i in self.ids[top]]

    def _top(self, query: np.ndarray, limit: int) -> np.ndarray:
        with torch.inference_mode():
            q = torch.from_numpy(np.asarray(query, dtype=np.float16))
            scores = torch.mv(self.matrix, q).float()
            return torch.topk(scores, limit).indices.numpy()

    def rank_subset(self, query: np.ndarray, chunk_ids: list[int], limit: int) -> list[int]:
        """This KB's chunks among ``chunk_ids`` (others dropped), most similar first."""
        if not chunk_ids or len(self) == 0:
            return []
        wanted = np.asarray(chunk_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.ids, wanted), 0, len(self) - 1)
        pos = pos[self.ids[pos] == wanted]
        if pos.size == 0:
            return []
        order = solo(self._top_of, query, pos, limit)
        return [int(i) for i in self.ids[pos[order]]]

    def _top_of(self, query: np.ndarray, pos: np.ndarray, limit: int) -> np.ndarray:
        with torch.inference_mode():
            q = torch.from_numpy(np.asarray(query, dtype=np.float16))
            rows = self.matrix.index_select(0, torch.from_numpy(pos))
            scores = torch.mv(rows, q).float()
            return torch.topk(scores, min(limit, int(pos.size))).indices.numpy()

    def similarities(self, query: np.ndarray, chunk_ids: list[int]) -> list[float]:
        """Cosine similarity of ``query`` to each of ``chunk_ids`` (0.0 for unknown ids)."""
        if not chunk_ids or len(self) == 0:
            return [0.0] * len(chunk_ids)
        wanted = np.asarray(chunk_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.ids, wanted), 0, len(self) - 1)
        found = self.ids[pos] == wanted
        rows = self.matrix.numpy()[pos].astype(np.float32)
        sims = (rows * np.asarray(query, dtype=np.float32)).sum(axis=1)
        return [float(s) if ok else 0.0 for s, ok in zip(sims, found, strict=True)]
