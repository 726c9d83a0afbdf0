"""Scoring retrieval against a question set: hit@k and mean reciprocal rank.

A question set is JSONL, one object per line::

    {"id": "hb-001", "query": "How long do refunds take?",
     "relevant": ["handbook.md#Refunds"], "answer": "within ten working days"}

``relevant`` names the places that answer the question as ``doc#innermost heading`` (the
:attr:`~llmeco.rag.retrieve.Hit.anchor` of a hit), which does not depend on how the document
was chunked; ``answer`` (optional) is a substring of the answering passage. A retrieved chunk
counts as relevant when its anchor is listed **and**, if an answer is given, the chunk's text
contains it (case and spacing ignored) — so a hit in the right section but the wrong chunk
does not count. Questions with an empty ``relevant`` list are out-of-scope questions and are
skipped by the scorer (they exist for the support assistant's hand-off test).

Definitions (the same as the evaluation engine's ``retrieval`` task): ``hit@k`` is the share
of questions with a relevant chunk among the first ``k``; ``MRR`` the mean of ``1/rank`` of the
first relevant chunk within the first ``k`` (0 when there is none); ``nDCG`` the discounted
gain of the relevant chunks in the first ``k`` (``1/log2(rank + 1)`` each, capped at 1, the
gain of one relevant chunk ranked first).

The evaluation engine (``llmeco eval``, task type ``retrieval`` with ``retriever: kb:NAME``)
compares ids only: :func:`kb_retriever` answers with each hit's anchor, so there a hit in the
right section counts even without the answer substring — a slightly more lenient score than
:func:`score` gives.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmeco.errors import ConfigError
from llmeco.rag.chunk import sections
from llmeco.rag.retrieve import Hit
from llmeco.settings import Settings


@dataclass(frozen=True)
class Question:
    """One held-out question and what answers it."""

    id: str
    query: str
    relevant: tuple[str, ...]
    answer: str = ""


@dataclass
class RetrievalScore:
    """hit@k and MRR over a question set, with the misses listed."""

    k: int
    n: int
    hits: dict[int, float]
    mrr: float
    misses: list[str] = field(default_factory=list)
    #: nDCG@k with binary relevance (every relevant chunk in the first ``k`` counts, the
    #: ideal ranking puts one relevant chunk first).
    ndcg: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        out: dict[str, object] = {
            "n": self.n,
            "k": self.k,
            "mrr": round(self.mrr, 4),
            "ndcg": round(self.ndcg, 4),
        }
        out.update({f"hit@{c}": round(v, 4) for c, v in sorted(self.hits.items())})
        out["misses"] = self.misses
        return out


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL question set (conversations, lines with ``turns``, are skipped).

    Raises:
        ConfigError: a line is not JSON or lacks ``query``/``relevant``; names file and line.
    """
    out: list[Question] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
        if isinstance(obj, dict) and "turns" in obj:
            continue  # a conversation: scored by the support assistant's answer evaluation
        if not isinstance(obj, dict) or not isinstance(obj.get("query"), str):
            raise ConfigError(f"{path}:{number}: needs a 'query' string")
        relevant = obj.get("relevant", [])
        if not isinstance(relevant, list) or not all(isinstance(r, str) for r in relevant):
            raise ConfigError(f"{path}:{number}: 'relevant' must be a list of strings")
        out.append(
            Question(
                id=str(obj.get("id", number)),
                query=obj["query"],
                relevant=tuple(relevant),
                answer=str(obj.get("answer", "")),
            )
        )
    return out


def normalise(text: str) -> str:
    """Lower case with runs of whitespace collapsed: how answers are matched."""
    return re.sub(r"\s+", " ", text).strip().lower()


def is_relevant(hit: Hit, question: Question) -> bool:
    """Whether ``hit`` answers ``question``: right place and, if given, the answer inside."""
    if hit.anchor not in question.relevant:
        return False
    return not question.answer or normalise(question.answer) in normalise(hit.text)


def score(
    search: Callable[[str], Sequence[Hit]],
    questions: Sequence[Question],
    cutoffs: Sequence[int] = (1, 3, 5),
) -> RetrievalScore:
    """hit@c for each cutoff and MRR@max(cutoffs), asking ``search`` once per question."""
    k = max(cutoffs)
    answerable = [q for q in questions if q.relevant]
    found = dict.fromkeys(cutoffs, 0)
    reciprocal = 0.0
    gain = 0.0
    misses: list[str] = []
    for q in answerable:
        hits = list(search(q.query))[:k]
        relevant = [i for i, h in enumerate(hits, 1) if is_relevant(h, q)]
        rank = relevant[0] if relevant else 0
        # one relevant chunk is the ideal (the answer lives in one place), so IDCG = 1
        gain += min(1.0, sum(1.0 / math.log2(i + 1) for i in relevant))
        if rank:
            reciprocal += 1.0 / rank
        for c in cutoffs:
            found[c] += bool(rank and rank <= c)
        if not rank or rank > min(cutoffs):
            misses.append(f"{q.id} (rank {rank or '>' + str(k)}): {q.query}")
    n = len(answerable)
    return RetrievalScore(
        k=k,
        n=n,
        hits={c: found[c] / n if n else 0.0 for c in cutoffs},
        mrr=reciprocal / n if n else 0.0,
        misses=misses,
        ndcg=gain / n if n else 0.0,
    )


def check_questions(questions: Sequence[Question], docs: dict[str, str]) -> list[str]:
    """Problems with a question set against the documents (name → text): an anchor naming no
    heading, or an answer that is not in the section it names. Empty when all is well."""
    problems: list[str] = []
    for q in questions:
        for anchor in q.relevant:
            doc, _, heading = anchor.partition("#")
            if doc not in docs:
                problems.append(f"{q.id}: no document {doc!r}")
                continue
            text = docs[doc]
            bodies = [
                text[s.start : s.end]
                for s in sections(text)
                if (s.path[-1] if s.path else "") == heading
            ]
            if not bodies:
                problems.append(f"{q.id}: {doc} has no heading {heading!r}")
            elif q.answer and not any(normalise(q.answer) in normalise(b) for b in bodies):
                problems.append(f"{q.id}: answer {q.answer!r} is not under {anchor!r}")
    return problems


def kb_retriever(name: str, settings: Settings) -> Callable[[str, int], list[str]]:
    """The ``kb:NAME`` retriever of the evaluation engine: ``(query, k)`` → hit anchors.

    Register it with ``llmeco.evaluation.tasks.register_retriever("kb", kb_retriever)``.
    """
    from llmeco.rag.kb import KnowledgeBase
    from llmeco.store import Store

    kb = KnowledgeBase.open(Store.from_settings(settings), name)
    return lambda query, k: [hit.anchor for hit in kb.search(query, k)]
