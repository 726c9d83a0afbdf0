"""Knowledge bases on PostgreSQL: tsvector full-text search + in-memory vectors, same API."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from llmeco.rag.kb import KnowledgeBase, TextEmbedder
from llmeco.store import Store

pytestmark = pytest.mark.slow


def test_postgres_add_search_replace_remove(postgres_url: str, minilm: TextEmbedder) -> None:
    store = Store(postgres_url)
    store.migrate()
    try:
        kb = KnowledgeBase.create(store, "support", minilm)
        assert kb.add_file(Path("examples/corpus/handbook.md")).status == "added"
        assert kb.add_file(Path("examples/corpus/handbook.md")).status == "unchanged"
        [hit, *_] = kb.search("How long is the password reset link valid?", 3)
        assert hit.heading == "Your account" and "one hour" in hit.text
        text = Path("examples/corpus/handbook.md").read_text()
        assert text[hit.start : hit.end] == hit.text

        edited = text.replace("valid for one hour", "valid for one fortnight")
        result = kb.add_text("handbook.md", edited)
        assert result.status == "updated" and result.embedded == 1
        with store.session() as s:
            fts = s.execute(
                sa.text(
                    "SELECT count(*) FROM kb_chunks WHERE tsv @@ to_tsquery('english', 'fortnight')"
                )
            ).scalar_one()
        assert fts == 1
        hit = kb.search("How long is the password reset link valid?", 1)[0]
        assert "one fortnight" in hit.text

        assert kb.remove("handbook.md") > 20
        assert kb.search("password reset", 3) == []
    finally:
        store.close()
