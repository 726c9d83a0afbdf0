"""Choosing the next items for a learner: similarity to their gaps plus difficulty progression.

From the history (scores in [0, 1]) each topic gets a mean score and a *mastered level*: the
highest difficulty with an attempt scoring at least :data:`MASTERED`. Topics whose mean is
under :data:`WEAK` are the learner's weak topics.

The *gap vector* is the sum of the embeddings of the items the learner scored under
:data:`WEAK` on, each weighted by how badly (``1 - score``); with no such attempts it is the
embedding of the learner's goals. Every item not yet attempted is scored

    score = cosine(item, gap) + PROGRESSION_WEIGHT * progression(item)

where ``progression`` is 1 when the item's difficulty is the *target* for its topic (one level
above the mastered one, or the learner's level for a topic never tried), 0.5 one level off and
0 otherwise. Topic labels themselves are not part of the score: weak topics are found through
the embedding alone, which is what the evaluation measures. A learner with neither history nor
goals gets the items at their level, lessons first, one topic after another.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from llmeco_learn.library import Item, Library
from llmeco_learn.profiles import Attempt

WEAK = 0.6
MASTERED = 0.8
PROGRESSION_WEIGHT = 0.1


@dataclass(frozen=True)
class TopicStats:
    """A learner's record on one topic."""

    topic: str
    attempts: int
    mean: float
    mastered: int  # highest difficulty scored ≥ MASTERED; 0 for none


@dataclass
class Recommendation:
    """One recommended item, why, and its score parts."""

    item: Item
    score: float
    similarity: float
    target_difficulty: int
    reasons: list[str] = field(default_factory=list)


def topic_stats(library: Library, history: Sequence[Attempt]) -> dict[str, TopicStats]:
    """Per-topic attempt count, mean score and mastered level (unknown items are skipped)."""
    scores: dict[str, list[float]] = defaultdict(list)
    mastered: dict[str, int] = defaultdict(int)
    for attempt in history:
        item = library.item(attempt.item_id)
        if item is None:
            continue
        scores[item.topic].append(attempt.score)
        if attempt.score >= MASTERED:
            mastered[item.topic] = max(mastered[item.topic], item.difficulty)
    return {t: TopicStats(t, len(s), float(np.mean(s)), mastered[t]) for t, s in scores.items()}


def weak_topics(stats: dict[str, TopicStats]) -> list[str]:
    """Topics with a mean score under :data:`WEAK`, weakest first."""
    weak = [s for s in stats.values() if s.mean < WEAK]
    return [s.topic for s in sorted(weak, key=lambda s: (s.mean, s.topic))]


def target_difficulty(topic: str, stats: dict[str, TopicStats], level: int) -> int:
    """The next level up from the mastered one; the learner's level for a new topic."""
    known = stats.get(topic)
    if known is None:
        return level
    return min(3, known.mastered + 1)


def recommend(
    library: Library,
    history: Sequence[Attempt],
    level: int,
    k: int,
    goal_vector: np.ndarray | None = None,
) -> list[Recommendation]:
    """The ``k`` best items the learner has not attempted yet, best first, with reasons."""
    stats = topic_stats(library, history)
    weak = set(weak_topics(stats))
    seen = {a.item_id for a in history}
    low = [(a, library.item(a.item_id)) for a in history if a.score < WEAK]
    low_items = [(a, item) for a, item in low if item is not None]
    gap: np.ndarray | None = None
    if low_items:
        gap = sum(
            ((1.0 - a.score) * library.vector(item.id) for a, item in low_items),
            np.zeros(library.vectors.shape[1], dtype=np.float32),
        )
    elif goal_vector is not None:
        gap = goal_vector
    candidates = [i for i, item in enumerate(library.items) if item.id not in seen]
    if gap is None:
        return _cold_start(library, candidates, stats, level, k)
    norm = float(np.linalg.norm(gap))
    gap = gap / max(norm, 1e-12)
    sims = library.vectors @ gap
    out = []
    for index in candidates:
        item = library.items[index]
        target = target_difficulty(item.topic, stats, level)
        progression = {0: 1.0, 1: 0.5}.get(abs(item.difficulty - target), 0.0)
        sim = float(sims[index])
        out.append(Recommendation(item, sim + PROGRESSION_WEIGHT * progression, sim, target))
    out.sort(key=lambda r: (-r.score, r.item.id))
    chosen = out[:k]
    for rec in chosen:
        rec.reasons = _reasons(rec, stats, weak, low_items, library, bool(low_items))
    return chosen


def _cold_start(
    library: Library, candidates: list[int], stats: dict[str, TopicStats], level: int, k: int
) -> list[Recommendation]:
    """No history, no goals: items at the learner's level, lessons first, topic by topic."""
    ranked = sorted(
        candidates,
        key=lambda i: (
            abs(library.items[i].difficulty - level),
            library.items[i].kind != "lesson",
            library.items[i].topic,
        ),
    )
    by_topic: dict[str, list[int]] = defaultdict(list)
    for i in ranked:
        by_topic[library.items[i].topic].append(i)
    order: list[int] = []
    while len(order) < len(ranked):
        for topic in sorted(by_topic):
            if by_topic[topic]:
                order.append(by_topic[topic].pop(0))
    out = []
    for i in order[:k]:
        item = library.items[i]
        rec = Recommendation(item, 0.0, 0.0, level)
        rec.reasons = [
            f"no history yet: a {item.kind} at difficulty {item.difficulty}, "
            f"near your level {level}, to start on {item.topic}"
        ]
        out.append(rec)
    return out


def _reasons(
    rec: Recommendation,
    stats: dict[str, TopicStats],
    weak: set[str],
    low_items: list[tuple[Attempt, Item]],
    library: Library,
    from_history: bool,
) -> list[str]:
    item = rec.item
    reasons = []
    topic = stats.get(item.topic)
    if item.topic in weak and topic is not None:
        reasons.append(
            f"{item.topic} is a weak topic: mean score {topic.mean:.2f} over "
            f"{topic.attempts} attempt{'s' if topic.attempts != 1 else ''}"
        )
    if from_history:
        vec = library.vector(item.id)
        nearest = max(low_items, key=lambda pair: float(library.vector(pair[1].id) @ vec))
        reasons.append(
            f"close to material you found hard (similarity {rec.similarity:.2f}; nearest: "
            f"'{nearest[1].title}', scored {nearest[0].score:.2f})"
        )
    else:
        reasons.append(f"close to your goals (similarity {rec.similarity:.2f})")
    if topic is None:
        reasons.append(f"difficulty {item.difficulty}: a new topic, started near your level")
    elif topic.mastered == 0:
        reasons.append(
            f"difficulty {item.difficulty}: nothing in {item.topic} mastered yet, so "
            f"level {rec.target_difficulty} comes first"
        )
    else:
        reasons.append(
            f"difficulty {item.difficulty}: level {topic.mastered} of {item.topic} is mastered, "
            f"next is level {rec.target_difficulty}"
        )
    return reasons
