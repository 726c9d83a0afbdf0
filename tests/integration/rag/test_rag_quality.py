"""Retrieval quality on the shipped handbook with the real embedding model (issue 7 must-show 1).

hit@5 >= 0.90 and MRR >= 0.75 on the held-out question set in ``examples/kb-questions``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmeco.rag.evaluate import load_questions, score
from llmeco.rag.kb import KnowledgeBase, TextEmbedder
from llmeco.settings import Settings
from llmeco.store import Store

pytestmark = pytest.mark.slow


def test_handbook_retrieval_quality(tmp_path: Path, minilm: TextEmbedder) -> None:
    store = Store.from_settings(Settings(home=tmp_path))
    kb = KnowledgeBase.create(store, "handbook", minilm)
    kb.add_file(Path("examples/corpus/handbook.md"))
    questions = load_questions(Path("examples/kb-questions/handbook.jsonl"))
    result = score(lambda q: kb.search(q, 5), questions)
    print(json.dumps(result.to_dict(), indent=1))
    assert result.n >= 100
    assert result.hits[5] >= 0.90, result.misses
    assert result.mrr >= 0.75, result.misses


def test_query_path_matches_batch_embedding(minilm: TextEmbedder) -> None:
    """The single-threaded query encoder gives the same vectors as the batch path."""
    import numpy as np

    from llmeco.rag.embed import Embedder

    assert isinstance(minilm, Embedder)
    texts = ["How long do refunds take?", "a longer question about the warranty on batteries"]
    cosine = (minilm.embed_query(texts) * minilm.embed(texts)).sum(axis=1)
    assert np.all(cosine > 0.9999), cosine


def test_through_the_evaluation_engines_retrieval_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm: TextEmbedder
) -> None:
    """`kb:NAME` plugs into `llmeco eval`'s generic retrieval task (section-level ids)."""
    import asyncio

    from llmeco.evaluation import tasks
    from llmeco.evaluation.builtin_tasks import RetrievalConfig, run_retrieval
    from llmeco.rag.evaluate import kb_retriever

    settings = Settings(home=tmp_path)
    kb = KnowledgeBase.create(Store.from_settings(settings), "handbook", minilm)
    kb.add_file(Path("examples/corpus/handbook.md"))
    monkeypatch.setitem(tasks.RETRIEVERS, "kb", kb_retriever)
    config = RetrievalConfig(
        name="handbook_retrieval",
        type="retrieval",
        data=Path("examples/kb-questions/handbook.jsonl").resolve(),
        retriever="kb:handbook",
    )
    ctx = tasks.EvalContext(settings, tmp_path, "none")
    result = asyncio.run(run_retrieval(config, ctx))
    print(result.metrics)
    assert result.n >= 100
    assert result.metrics["hit@5"] >= 0.90 and result.metrics["mrr"] >= 0.75
