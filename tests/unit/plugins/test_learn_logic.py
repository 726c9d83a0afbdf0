"""The learn plugin's logic without a server: library files, profiles, the recommender.

The embedder is a fake with one axis per topic (plus a small per-item part), so which items
are "close to the gaps" is known exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from llmeco_learn.library import Item, Library, default_library_dir, parse_item
from llmeco_learn.profiles import Attempt, ProfileStore
from llmeco_learn.recommend import recommend, target_difficulty, topic_stats, weak_topics

from llmeco.errors import ConfigError, NotFound

TOPICS = ["algebra", "geometry", "loops", "sql"]


class TopicEmbedder:
    """Unit vectors: mostly the topic's axis (read from the document text)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(TOPICS) + 1), dtype=np.float32)
        for i, text in enumerate(texts):
            for j, topic in enumerate(TOPICS):
                if f"Topic: {topic}" in text:
                    out[i, j] = 1.0
            out[i, -1] = 0.01 * (len(text) % 7)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def _library() -> Library:
    items = [
        Item(f"{t}-{d}-{k}", f"{t} {d} {k}", t, d, k, f"text about {t} level {d}")
        for t in TOPICS
        for d in (1, 2, 3)
        for k in ("lesson", "exercise")
    ]
    return Library(items, TopicEmbedder().embed([i.document for i in items]))


def test_parse_item_reads_front_matter_and_rejects_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "a.md"
    good.write_text("---\ntitle: T\ntopic: sql\ndifficulty: 2\nkind: lesson\n---\nBody\n")
    item = parse_item(good)
    assert (item.id, item.topic, item.difficulty, item.kind, item.text) == (
        "a",
        "sql",
        2,
        "lesson",
        "Body",
    )
    for body, message in [
        ("no front matter", "front matter"),
        ("---\ntitle: T\ntopic: sql\nkind: lesson\n---\nBody", "lacks difficulty"),
        ("---\ntitle: T\ntopic: sql\ndifficulty: 4\nkind: lesson\n---\nBody", "difficulty"),
        ("---\ntitle: T\ntopic: sql\ndifficulty: 1\nkind: quiz\n---\nBody", "kind"),
        ("---\ntitle: T\ntopic: sql\ndifficulty: 1\nkind: lesson\n---\n", "no text"),
    ]:
        bad = tmp_path / "bad.md"
        bad.write_text(body)
        with pytest.raises(ConfigError, match=message):
            parse_item(bad)


def test_the_shipped_library_has_40_items_over_8_topics_and_3_levels() -> None:
    items = [parse_item(p) for p in sorted(default_library_dir().glob("*.md"))]
    assert len(items) >= 40
    assert len({i.topic for i in items}) >= 8
    assert {i.difficulty for i in items} == {1, 2, 3}
    assert len({i.id for i in items}) == len(items)


def test_weak_topics_and_target_difficulty() -> None:
    lib = _library()
    history = [
        Attempt("algebra-1-exercise", 0.9),
        Attempt("algebra-2-exercise", 0.2),
        Attempt("sql-1-lesson", 0.2),
        Attempt("sql-1-exercise", 0.4),
        Attempt("unknown-item", 0.0),  # not in the library: ignored
    ]
    stats = topic_stats(lib, history)
    assert set(stats) == {"algebra", "sql"}
    assert stats["algebra"].mastered == 1 and stats["sql"].mastered == 0
    assert weak_topics(stats) == ["sql", "algebra"]  # weakest first (0.3 < 0.55 < 0.6)
    assert target_difficulty("algebra", stats, level=3) == 2  # one above the mastered level
    assert target_difficulty("sql", stats, level=3) == 1
    assert target_difficulty("loops", stats, level=3) == 3  # a new topic: the learner's level


def test_recommend_targets_the_gaps_at_the_next_level_and_skips_seen_items() -> None:
    lib = _library()
    history = [
        Attempt("geometry-1-exercise", 1.0),
        Attempt("geometry-2-exercise", 0.95),
        Attempt("sql-1-lesson", 0.1),
        Attempt("loops-1-exercise", 0.9),
    ]
    recs = recommend(lib, history, level=1, k=3)
    assert len(recs) == 3
    assert all(r.item.topic == "sql" for r in recs)
    assert recs[0].item.difficulty == 1  # nothing mastered in sql yet: level 1 first
    assert "sql-1-lesson" not in {r.item.id for r in recs}
    assert any("weak topic" in reason for reason in recs[0].reasons)
    assert any("hard" in reason for reason in recs[0].reasons)
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)


def test_goals_steer_when_nothing_was_failed_and_cold_start_spreads_topics() -> None:
    lib = _library()
    goal = TopicEmbedder().embed(["Topic: loops"])[0]
    recs = recommend(lib, [Attempt("sql-1-lesson", 0.9)], level=2, k=2, goal_vector=goal)
    assert {r.item.topic for r in recs} == {"loops"}
    assert all(r.item.difficulty == 2 for r in recs)  # loops is new: the learner's level
    cold = recommend(lib, [], level=2, k=4)
    assert {r.item.topic for r in cold} == set(TOPICS)
    assert all(r.item.difficulty == 2 and r.item.kind == "lesson" for r in cold)


def test_profile_store_replaces_records_and_never_half_writes(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "learn.db")
    try:
        with pytest.raises(NotFound):
            store.get("ada")
        with pytest.raises(NotFound):
            store.record("ada", "sql-1-lesson", 0.5)
        p = store.put("ada", 2, ["sql"], [Attempt("sql-1-lesson", 0.5)])
        assert (p.level, p.goals, [a.item_id for a in p.history]) == (2, ["sql"], ["sql-1-lesson"])
        p = store.put("ada", 3, [], None)  # no history given: the old one stays
        assert p.level == 3 and len(p.history) == 1
        p = store.record("ada", "sql-2-lesson", 1.0)
        assert [a.score for a in p.history] == [0.5, 1.0]
        with pytest.raises(Exception):  # noqa: B017 - any database error
            store.put("ada", 1, ["x"], [Attempt("sql-1-lesson", float("nan")), Attempt(None, 1)])  # type: ignore[arg-type]
        p = store.get("ada")  # the failed replace left the profile as it was
        assert p.level == 3 and [a.score for a in p.history] == [0.5, 1.0]
    finally:
        store.close()
