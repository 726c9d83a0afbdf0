"""The evaluation handbooks under ``examples/handbooks/`` still match their question files.

Each handbook is read and chunked exactly as ``llmeco kb add`` does (``expand_paths`` →
``read_document`` → ``chunk_text`` with the knowledge base's default sizes), without an
embedder. Every answerable question and every conversation turn must name an anchor
(``doc#innermost heading``) that some chunk has, and its ``answer`` must be inside one chunk
with that anchor — so a retriever can find it and an edit to a document (or to the parser)
that moves a fact fails here instead of skewing the benchmark. Unanswerable questions must
have no anchor, and no query may repeat across a handbook's files.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from llmeco.rag.chunk import Chunk, chunk_text
from llmeco.rag.evaluate import Question, check_questions, load_questions, normalise
from llmeco.rag.parse import expand_paths, read_document

ROOT = Path(__file__).resolve().parents[3] / "examples" / "handbooks"
HANDBOOKS = sorted(p.parent.name for p in ROOT.glob("*/handbook.json"))
# Defaults of KnowledgeBase (max_chars, overlap_chars): what `llmeco kb add` chunks with.
MAX_CHARS, OVERLAP = 800, 160


def _manifest(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((ROOT / name / "handbook.json").read_text())
    return data


@functools.cache
def _chunks(name: str) -> tuple[dict[str, str], list[tuple[str, Chunk]]]:
    """(document name → parsed text, [(document name, chunk)]) as `llmeco kb add` makes them
    (cached: parsing the PDF is the slow part, and no test changes the result)."""
    docs = _manifest(name)["documents"]
    assert isinstance(docs, list) and docs
    texts: dict[str, str] = {}
    chunks: list[tuple[str, Chunk]] = []
    for path, doc_name in expand_paths([ROOT / name / str(d) for d in docs]):
        parsed = read_document(path, doc_name)
        texts[doc_name] = parsed.text
        chunks.extend(
            (doc_name, c)
            for c in chunk_text(parsed.text, max_chars=MAX_CHARS, overlap_chars=OVERLAP)
        )
    return texts, chunks


def _turns(name: str) -> list[Question]:
    """Every turn of every conversation, as questions (ids ``<conv>/<turn>``)."""
    out: list[Question] = []
    path = ROOT / name / "conversations.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        conv = json.loads(line)
        assert len(conv["turns"]) >= 2, conv["id"]
        for i, turn in enumerate(conv["turns"]):
            out.append(
                Question(
                    f"{conv['id']}/{i}", turn["query"], tuple(turn["relevant"]), turn["answer"]
                )
            )
    return out


def test_the_three_handbooks_are_there_and_one_is_held_out() -> None:
    assert {"clinic", "saas", "hr"} <= set(HANDBOOKS)
    held_out = [h for h in HANDBOOKS if _manifest(h)["held_out"]]
    assert held_out == ["hr"]
    assert (ROOT / "hr" / "HELD_OUT.md").is_file()


@pytest.mark.parametrize("name", HANDBOOKS)
def test_handbook_questions_are_under_their_anchors(name: str) -> None:
    texts, chunks = _chunks(name)
    answerable = load_questions(ROOT / name / "questions.jsonl")
    unanswerable = load_questions(ROOT / name / "unanswerable.jsonl")
    turns = _turns(name)
    assert len(answerable) >= 40 and all(q.relevant and q.answer for q in answerable)
    assert len(unanswerable) >= 15 and all(not q.relevant and not q.answer for q in unanswerable)
    assert len(turns) >= 20 and all(q.relevant and q.answer for q in turns)

    everything = answerable + unanswerable + turns
    assert len({q.id for q in everything}) == len(everything)
    queries = [normalise(q.query) for q in everything]
    assert len(set(queries)) == len(queries), "a query repeats"

    assert check_questions(answerable + turns, texts) == []
    anchors = {f"{doc}#{c.section.split(' > ')[-1]}" if c.section else doc for doc, c in chunks}
    problems: list[str] = []
    for q in answerable + turns:
        for anchor in q.relevant:
            if anchor not in anchors:
                problems.append(f"{q.id}: no chunk has anchor {anchor!r}")
                continue
            doc, _, heading = anchor.partition("#")
            inside = [
                c
                for d, c in chunks
                if d == doc
                and c.section.split(" > ")[-1] == heading
                and normalise(q.answer) in normalise(c.text)
            ]
            if not inside:
                problems.append(f"{q.id}: answer {q.answer!r} is in no chunk under {anchor!r}")
    assert problems == []


@pytest.mark.parametrize("name", HANDBOOKS)
def test_calibration_sets_match_and_share_nothing_with_evaluation(name: str) -> None:
    """Calibration questions (for `llmeco kb calibrate`) obey the same rules, never repeat an
    evaluation query, and the held-out handbook has none."""
    folder = ROOT / name
    files = [folder / "calibration.jsonl", folder / "calibration-unanswerable.jsonl"]
    if _manifest(name)["held_out"]:
        assert not any(f.exists() for f in files)
        return
    if not any(f.exists() for f in files):
        pytest.skip(f"{name} has no calibration set")
    texts, _ = _chunks(name)
    answerable, unanswerable = (load_questions(f) for f in files)
    assert len(answerable) >= 30 and all(q.relevant and q.answer for q in answerable)
    assert len(unanswerable) >= 15 and all(not q.relevant for q in unanswerable)
    assert check_questions(answerable, texts) == []
    evaluation = [
        *load_questions(folder / "questions.jsonl"),
        *load_questions(folder / "unanswerable.jsonl"),
        *_turns(name),
    ]
    seen = {normalise(q.query) for q in evaluation}
    calibration = [normalise(q.query) for q in answerable + unanswerable]
    assert len(set(calibration)) == len(calibration)
    assert not seen & set(calibration)
    assert not {q.id for q in evaluation} & {q.id for q in answerable + unanswerable}
