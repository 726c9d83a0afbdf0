"""Rank fusion, keyword extraction, the retrieval scorer and the shipped question set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmeco.errors import ConfigError
from llmeco.rag.evaluate import Question, check_questions, load_questions, score
from llmeco.rag.index import query_terms
from llmeco.rag.retrieve import Hit, rrf

QUESTIONS = Path("examples/kb-questions")


def test_rrf_rewards_agreement() -> None:
    fused = rrf([[1, 2, 3], [3, 4, 1]])
    ids = [i for i, _ in fused]
    assert ids[:2] == [1, 3]  # in both lists
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 63)
    assert set(ids) == {1, 2, 3, 4}
    assert rrf([]) == []


def test_query_terms_drop_stop_words_and_punctuation() -> None:
    assert query_terms("How long does it take to get my money back?") == [
        "long",
        "take",
        "money",
        "back",
    ]
    assert query_terms("What's the 24-month rate?") == ["24", "month", "rate"]
    assert query_terms("the of and") == []


def _hit(anchor: str, text: str) -> Hit:
    doc, _, heading = anchor.partition("#")
    return Hit("kb", doc, f"Top > {heading}", 0, len(text), text, 1.0, 0.5, 1, 0, text, 0, 0)


def test_score_definitions() -> None:
    qs = [
        Question("a", "q1", ("d.md#A",), "thirty days"),
        Question("b", "q2", ("d.md#B",), ""),
        Question("c", "q3", ("d.md#C",), "never"),
        Question("u", "unanswerable", ()),
    ]
    results = {
        "q1": [_hit("d.md#X", "no"), _hit("d.md#A", "within Thirty\n days")],  # rank 2
        "q2": [_hit("d.md#B", "anything")],  # rank 1
        "q3": [_hit("d.md#C", "wrong chunk of the right section")],  # miss
    }
    result = score(lambda q: results[q], qs, cutoffs=(1, 5))
    assert result.n == 3
    assert result.hits == {1: pytest.approx(1 / 3), 5: pytest.approx(2 / 3)}
    assert result.mrr == pytest.approx((0.5 + 1.0) / 3)
    assert [m.split()[0] for m in result.misses] == ["a", "c"]


def test_shipped_question_set_matches_the_handbook() -> None:
    answerable = load_questions(QUESTIONS / "handbook.jsonl")
    unanswerable = load_questions(QUESTIONS / "unanswerable.jsonl")
    assert len(answerable) >= 100 and all(q.relevant and q.answer for q in answerable)
    assert len(unanswerable) >= 20 and all(not q.relevant for q in unanswerable)
    assert len({q.query for q in answerable + unanswerable}) == len(answerable + unanswerable)
    handbook = Path("examples/corpus/handbook.md").read_text()
    assert check_questions(answerable, {"handbook.md": handbook}) == []
    # every heading of the handbook is asked about
    headings = {a for q in answerable for a in q.relevant}
    assert len(headings) >= 20


def test_calibration_set_matches_the_handbook_and_is_disjoint_from_evaluation() -> None:
    """The support assistant's thresholds are chosen on these, so they must be sound and
    share no question with the evaluation sets."""
    answerable = load_questions(QUESTIONS / "calibration.jsonl")
    unanswerable = load_questions(QUESTIONS / "calibration-unanswerable.jsonl")
    assert len(answerable) >= 40 and all(q.relevant and q.answer for q in answerable)
    assert len(unanswerable) >= 20 and all(not q.relevant for q in unanswerable)
    handbook = Path("examples/corpus/handbook.md").read_text()
    assert check_questions(answerable, {"handbook.md": handbook}) == []
    evaluation = load_questions(QUESTIONS / "handbook.jsonl") + load_questions(
        QUESTIONS / "unanswerable.jsonl"
    )
    seen = {q.query.lower() for q in evaluation}
    assert not seen & {q.query.lower() for q in answerable + unanswerable}


def test_handbook_conversations_match_the_handbook_and_ask_nothing_asked_elsewhere() -> None:
    """Two-turn conversations over the tuning handbook (the second turn is the scored one)."""
    turns = []
    for line in (QUESTIONS / "conversations.jsonl").read_text().splitlines():
        conv = json.loads(line)
        assert len(conv["turns"]) == 2, conv["id"]
        turns += [
            Question(f"{conv['id']}/{i}", t["query"], tuple(t["relevant"]), t["answer"])
            for i, t in enumerate(conv["turns"])
        ]
    assert len(turns) >= 20 and all(q.relevant and q.answer for q in turns)
    handbook = Path("examples/corpus/handbook.md").read_text()
    assert check_questions(turns, {"handbook.md": handbook}) == []
    others = [
        q.query.lower()
        for name in ("handbook", "unanswerable", "calibration", "calibration-unanswerable")
        for q in load_questions(QUESTIONS / f"{name}.jsonl")
    ]
    assert not {q.query.lower() for q in turns} & set(others)


def test_check_questions_and_load_errors(tmp_path: Path) -> None:
    docs = {"d.md": "# T\n\n## A\n\nalpha beta\n\n## B\n\ngamma"}
    qs = [
        Question("1", "q", ("d.md#A",), "gamma"),
        Question("2", "q", ("d.md#Z",), ""),
        Question("3", "q", ("e.md#A",), ""),
    ]
    assert check_questions(qs, docs) == [
        "1: answer 'gamma' is not under 'd.md#A'",
        "2: d.md has no heading 'Z'",
        "3: no document 'e.md'",
    ]
    bad = tmp_path / "q.jsonl"
    bad.write_text(json.dumps({"query": "ok", "relevant": []}) + "\n{oops\n")
    with pytest.raises(ConfigError, match=r"q\.jsonl:2: invalid JSON"):
        load_questions(bad)
