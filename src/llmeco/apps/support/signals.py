"""The retrieval signals the answerability gate reads that need the embedder: how close the
passages' words are to the question's, and how well a passage covers it piece by piece."""

from __future__ import annotations

from collections.abc import Sequence

from llmeco.apps.support.protocols import Embeds
from llmeco.apps.support.text import STOP, content_words, focus


def word_similarities(query: str, texts: Sequence[str], embedder: Embeds) -> list[float]:
    """For each content word of ``query``: 1.0 when ``texts`` contain its 5-letter stem
    (refund/refunds/refunded), else the cosine similarity of the closest content word of
    ``texts`` (embedded as single words), 0.0 when ``texts`` have none."""
    words = content_words(focus(query))
    text = " ".join(t.lower() for t in texts)
    missing = sorted({w for w in words if w[:5] not in text})
    closest: dict[str, float] = {}
    vocabulary = sorted(set(content_words(text)))
    if missing and vocabulary:
        vectors = embedder.embed([*missing, *vocabulary])
        sims = vectors[: len(missing)] @ vectors[len(missing) :].T
        closest = {w: float(sims[i].max()) for i, w in enumerate(missing)}
    return [1.0 if w[:5] in text else closest.get(w, 0.0) for w in words]


def token_recall(question: str, passages: Sequence[str], embedder: Embeds) -> float:
    """How well the best of ``passages`` covers ``question`` piece by piece, in context: for
    each content piece of the question (a word piece of 3+ characters that is not a stop word,
    or a word's continuation piece) the best cosine to a piece of the passage, averaged; the
    best passage's average. Unlike sentence similarity it is not diluted by what else a
    passage says, and unlike literal word matches it sees a word's meaning in its sentence."""
    if not passages:
        return 0.0
    (pieces, q), *rest = embedder.token_vectors([question, *passages])
    keep = [
        i
        for i, t in enumerate(pieces)
        if (t.isalnum() and t.lower() not in STOP and len(t) > 2) or t.startswith("##")
    ]
    rows = q[keep] if keep else q
    recalls = [float((rows @ p.T).max(axis=1).mean()) for _, p in rest if len(p)]
    return max(recalls) if len(rows) and recalls else 0.0
