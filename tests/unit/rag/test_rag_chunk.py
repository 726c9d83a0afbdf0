"""Chunking: heading paths, sentence boundaries, overlap and exact source positions."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from llmeco.rag.chunk import chunk_text, sections, sentence_spans

DOC = """# Guide

Intro sentence one. Intro sentence two.

## Returns

You may return a bike within thirty days. Refunds take ten days.

### Accessories

Accessories can be returned within sixty days, e.g. helmets and locks. Dr. Smith agrees.

## Warranty

Frames carry a lifetime warranty.
"""


def test_sections_carry_the_full_heading_path() -> None:
    got = [(s.path, DOC[s.start : s.end].strip()[:20]) for s in sections(DOC)]
    assert got == [
        (("Guide",), "Intro sentence one. "),
        (("Guide", "Returns"), "You may return a bik"),
        (("Guide", "Returns", "Accessories"), "Accessories can be r"),
        (("Guide", "Warranty"), "Frames carry a lifet"),
    ]


def test_chunks_are_exact_spans_and_never_cross_a_heading() -> None:
    chunks = chunk_text(DOC, max_chars=60, overlap_chars=30)
    for c in chunks:
        assert DOC[c.start : c.end] == c.text
        assert "#" not in c.text
        assert len(c.text) <= 60
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    by_section = {c.section for c in chunks}
    assert "Guide > Returns > Accessories" in by_section
    assert chunks[-1].section == "Guide > Warranty"
    assert chunks[-1].embed_text.startswith("Guide > Warranty\n")


def test_sentences_respect_abbreviations_and_lines() -> None:
    text = "Use e.g. a brush. Ask Dr. Who! Then stop?\n- item one\n- item two"
    spans = [text[s:e] for s, e, _ in sentence_spans(text, 0, len(text))]
    assert spans == ["Use e.g. a brush.", "Ask Dr. Who!", "Then stop?", "- item one", "- item two"]


def test_overlap_repeats_the_previous_sentence() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    chunks = chunk_text(text, max_chars=120, overlap_chars=40)
    assert len(chunks) > 2
    for prev, cur in itertools.pairwise(chunks):
        assert cur.start < prev.end  # overlapping
        assert cur.end > prev.end  # but always advancing
        assert cur.start > prev.start


def test_long_sentence_is_cut_at_spaces() -> None:
    text = "word " * 500
    chunks = chunk_text(text.strip(), max_chars=100, overlap_chars=0)
    assert all(len(c.text) <= 100 for c in chunks)
    assert all(not c.text.startswith(" ") and not c.text.endswith(" ") for c in chunks)
    assert " ".join(c.text for c in chunks).split() == text.split()


def test_paragraph_break_preferred_once_half_full() -> None:
    para = "A short sentence here. " * 4
    text = f"{para.strip()}\n\n{para.strip()}"
    chunks = chunk_text(text, max_chars=150, overlap_chars=0)
    assert chunks[0].end == len(para.strip())


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError):
        chunk_text("x", max_chars=100, overlap_chars=100)


def test_handbook_chunks_fit_the_embedding_window() -> None:
    text = Path("examples/corpus/handbook.md").read_text()
    chunks = chunk_text(text)
    assert len(chunks) >= 20
    assert all(c.text == text[c.start : c.end] and len(c.text) <= 800 for c in chunks)
    assert all(c.section.startswith("Lumen Cycles customer handbook") for c in chunks)
