"""Knowledge bases on SQLite: add / re-add / replace / remove, atomicity, cache, hybrid search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmeco.errors import ConfigError, InvalidRequest, NotFound
from llmeco.rag.kb import KnowledgeBase, list_knowledge_bases
from llmeco.store import Store

HANDBOOK = """# Handbook

## Returns

Bicycles may be returned within thirty days. Accessories within sixty days.

## Warranty

Frames carry a lifetime warranty. Motors are covered for three years.

## Batteries

Store the battery between twenty and eighty percent charge. A full charge takes four hours.
"""


def _count(store: Store, sql: str, **params: Any) -> int:
    with store.session() as s:
        return int(s.execute(sa.text(sql), params).scalar_one())


def _fts(store: Store, word: str) -> int:
    return _count(store, "SELECT count(*) FROM kb_chunks_fts WHERE kb_chunks_fts MATCH :w", w=word)


def test_add_unchanged_changed_remove(store: Store, embedder: Any, tmp_path: Path) -> None:
    kb = KnowledgeBase.create(store, "support", embedder)
    path = tmp_path / "handbook.md"
    path.write_text(HANDBOOK)
    first = kb.add_file(path)
    assert (first.status, first.chunks, first.embedded) == ("added", 3, 3)
    assert kb.add_file(path).status == "unchanged"
    assert embedder.calls == [3]  # the unchanged re-add embedded nothing

    path.write_text(HANDBOOK.replace("four hours", "five hours and a bit"))
    second = kb.add_file(path)
    assert (second.status, second.chunks) == ("updated", 3)
    assert second.embedded == 1  # only the edited section is embedded again (cache)
    assert _count(store, "SELECT count(*) FROM kb_chunks") == 3
    assert _fts(store, "five") == 1 and _fts(store, "four") == 0  # old chunks gone from FTS

    [info] = list_knowledge_bases(store)
    assert (info.name, info.documents, info.chunks) == ("support", 1, 3)
    assert [d.name for d in kb.documents()] == ["handbook.md"]

    assert kb.remove("handbook.md") == 3
    assert _count(store, "SELECT count(*) FROM kb_chunks") == 0
    assert _fts(store, "warranty") == 0
    assert kb.search("warranty", 3) == []
    with pytest.raises(NotFound, match=r"no document 'handbook\.md'"):
        kb.remove("handbook.md")


def test_search_returns_positions_and_reloads_after_changes(store: Store, embedder: Any) -> None:
    kb = KnowledgeBase.create(store, "kb", embedder)
    kb.add_text("handbook.md", HANDBOOK)
    [hit, *_] = kb.search("How long is the warranty on frames?", 2)
    assert (hit.doc, hit.section, hit.anchor) == (
        "handbook.md",
        "Handbook > Warranty",
        "handbook.md#Warranty",
    )
    assert HANDBOOK[hit.start : hit.end] == hit.text
    assert 0 < hit.similarity <= 1 and hit.score > 0
    # a second KB instance (another process, say) sees a document added through the first
    other = KnowledgeBase.open(store, "kb", embedder)
    assert other.search("battery charge", 1)[0].heading == "Batteries"
    kb.add_text("shipping.md", "# Shipping\n\nExpress delivery costs fifteen euros.")
    assert other.search("express delivery price", 1)[0].doc == "shipping.md"


def test_neighbours_widen_the_context(store: Store, embedder: Any) -> None:
    text = "# Guide\n\n" + " ".join(f"Step {i} of the long procedure." for i in range(40))
    kb = KnowledgeBase.create(store, "kb", embedder, max_chars=120, overlap_chars=0)
    kb.add_text("guide.md", text)
    [hit] = kb.search("step 20 procedure", 1, neighbors=1)
    assert hit.context_start < hit.start and hit.context_end > hit.end
    assert text[hit.context_start : hit.context_end] == hit.context
    assert hit.text in hit.context


def test_failed_embedding_leaves_the_old_version(store: Store, embedder: Any) -> None:
    kb = KnowledgeBase.create(store, "kb", embedder)
    kb.add_text("h.md", HANDBOOK)

    def broken(texts: Any) -> Any:
        raise RuntimeError("embedding died")

    embedder.embed = broken
    with pytest.raises(RuntimeError):
        kb.add_text("h.md", HANDBOOK + "\n## New\n\nNew text.")
    with pytest.raises(RuntimeError):
        kb.add_text("other.md", "# Other\n\nSomething.")
    assert [(d.name, d.chunks) for d in kb.documents()] == [("h.md", 3)]
    assert _count(store, "SELECT count(*) FROM kb_chunks") == 3


def test_a_failing_write_rolls_back_the_whole_document(
    store: Store, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = KnowledgeBase.create(store, "kb", embedder)
    kb.add_text("h.md", HANDBOOK)

    def fail(self: Any, s: Any) -> None:
        raise RuntimeError("disk full")  # after the chunks were inserted, before commit

    monkeypatch.setattr(KnowledgeBase, "_bump", fail)
    with pytest.raises(RuntimeError):
        kb.add_text("h.md", HANDBOOK.replace("thirty", "forty"))
    with pytest.raises(RuntimeError):
        kb.add_text("new.md", "# New\n\nfresh words")
    assert _count(store, "SELECT count(*) FROM kb_documents") == 1
    assert _count(store, "SELECT count(*) FROM kb_chunks") == 3
    assert _fts(store, "thirty") == 1 and _fts(store, "forty") == 0 and _fts(store, "fresh") == 0


def test_names_models_and_bad_queries(store: Store, embedder: Any) -> None:
    KnowledgeBase.create(store, "kb", embedder)
    with pytest.raises(InvalidRequest, match="already exists"):
        KnowledgeBase.create(store, "kb", embedder)
    with pytest.raises(InvalidRequest, match="bad knowledge-base name"):
        KnowledgeBase.create(store, "a/b", embedder)
    with pytest.raises(NotFound, match=r"known: kb"):
        KnowledgeBase.open(store, "nope", embedder)
    with pytest.raises(ConfigError, match="built with 'hash-embedder'"):
        KnowledgeBase.open(store, "kb", _Other())
    kb = KnowledgeBase.open(store, "kb", embedder)
    with pytest.raises(InvalidRequest):
        kb.search("  ", 5)
    with pytest.raises(InvalidRequest):
        kb.search("x", 0)
    assert kb.search("anything at all", 5) == []  # empty KB
    kb.drop()
    assert list_knowledge_bases(store) == []


class _Other:
    name = "other-model"
    dimensions = 8

    def embed(self, texts: Any) -> Any:  # pragma: no cover - never called
        raise AssertionError


def test_keyword_hits_stay_in_their_kb_when_another_kb_crowds_them(
    store: Store, embedder: Any
) -> None:
    big = KnowledgeBase.create(store, "big", embedder)
    big.add_text("big.md", "\n".join(f"# S{i}\n\nalpha beta gamma {i}.\n" for i in range(150)))
    small = KnowledgeBase.create(store, "small", embedder)
    small.add_text("small.md", "# Only\n\nalpha in the small one.")
    with store.session() as s:
        from llmeco.rag.index import fts_search

        assert len(fts_search(s, big.id, "alpha", 50).ids) == 50
        [only] = fts_search(s, small.id, "alpha", 50).ids  # found past 100 rows of another KB
    assert [h.doc for h in small.search("alpha", 3)] == ["small.md"]
    assert only == small.search("alpha", 1)[0].chunk_id


def test_keyword_plan_bounds_the_rows_scored(store: Store, embedder: Any) -> None:
    from llmeco.rag.index import fts_search, plan_match

    df = {"common": 5000, "usual": 1500, "rare": 20, "unique": 1, "absent": 0}
    assert plan_match(["common", "rare", "usual", "absent"], df, 3000) == (
        '"rare" OR "usual"',
        True,
    )
    assert plan_match(["common", "unique"], df, 100) == ('"unique"', True)
    assert plan_match(["common", "usual"], df, 1000) == ('"usual" AND "common"', False)
    assert plan_match(["absent"], df, 1000) is None
    # through the store: with a tiny budget the common word is left out of the query
    kb = KnowledgeBase.create(store, "kb", embedder)
    kb.add_text(
        "d.md", "\n".join(f"# S{i}\n\nbicycle part {i}.\n" for i in range(30)) + "# X\n\nzebra"
    )
    with store.session() as s:
        cache: dict[str, int] = {}
        hits = fts_search(s, kb.id, "bicycle zebra", 50, term_df=cache, budget=10)
        assert cache["bicycle"] == 30 and cache["zebra"] == 1
        assert hits.ranked and len(hits.ids) == 1  # "bicycle" (30 rows) is over the budget
        assert len(fts_search(s, kb.id, "bicycle zebra", 50, budget=1000).ids) == 31
        common = fts_search(s, kb.id, "bicycle part", 50, term_df=cache, budget=10)
        assert not common.ranked and len(common.ids) == 30  # all terms common: unranked AND
        # unranked keyword hits are ordered by vector similarity; other KBs' ids are dropped
        index = kb._current_index(s)
        query = embedder.embed(["bicycle part 7"])[0]
        order = index.rank_subset(query, [*common.ids, 10_000], 5)
        assert len(order) == 5 and 10_000 not in order
        sims = index.similarities(query, order)
        assert sims == sorted(sims, reverse=True)
