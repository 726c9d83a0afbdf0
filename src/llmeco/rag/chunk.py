"""Chunking that follows the document's structure: headings, paragraphs, sentences.

A document is cut into *sections* at Markdown headings; each section's body is cut into
sentences (and list items / lines), and sentences are packed greedily into chunks of at most
``max_chars``. A chunk never crosses a heading, prefers to end at a paragraph break once it is
half full, and starts with the last sentences of the previous chunk (up to ``overlap_chars``)
so an answer spanning a boundary is whole in at least one chunk. A sentence longer than
``max_chars`` is cut at spaces.

Every chunk keeps where it came from: ``text == document[start:end]`` exactly, and
``section`` is the heading path (``Handbook > Returns``). 800 characters of English stay well
under the embedding model's 256-token window, heading path included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
# A sentence ends at . ! ? (plus closing quotes/brackets) before whitespace, or at a newline.
_BOUNDARY = re.compile(r"(?<=[.!?])([\"')\]]*)\s+|\n+")
_ABBREVIATIONS = {"e.g", "i.e", "etc", "mr", "mrs", "ms", "dr", "vs", "approx", "st", "fig"}

SECTION_SEPARATOR = " > "


@dataclass(frozen=True)
class Chunk:
    """One retrieval unit: ``text`` is exactly ``document[start:end]`` under ``section``."""

    ordinal: int
    start: int
    end: int
    section: str
    text: str

    @property
    def embed_text(self) -> str:
        """What gets embedded and indexed: the heading path, then the passage."""
        return f"{self.section}\n{self.text}" if self.section else self.text


@dataclass(frozen=True)
class Section:
    """A run of body text under one heading path."""

    path: tuple[str, ...]
    start: int
    end: int


def sections(text: str) -> list[Section]:
    """Split ``text`` at Markdown headings; each section knows its full heading path."""
    out: list[Section] = []
    stack: list[tuple[int, str]] = []
    pos = 0
    path: tuple[str, ...] = ()
    for match in _HEADING.finditer(text):
        if text[pos : match.start()].strip():
            out.append(Section(path, pos, match.start()))
        level = len(match.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, match.group(2).strip()))
        path = tuple(title for _, title in stack)
        pos = match.end()
    if text[pos:].strip():
        out.append(Section(path, pos, len(text)))
    return out


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    """(start, end, starts_paragraph) of each sentence in ``text[start:end]``, whitespace
    trimmed; a sentence starts a paragraph when a blank line precedes it. Lines (list items)
    are sentences of their own; "e.g." and initials do not end a sentence."""
    spans: list[tuple[int, int, bool]] = []
    pos = start
    paragraph = True
    for match in _BOUNDARY.finditer(text, start, end):
        sep = match.group(0)
        cut = match.start() + len(match.group(1) or "")
        if "\n" not in sep:
            words = text[pos:cut].rstrip(".!?\"')]").rsplit(None, 1)
            word = words[-1].lower() if words else ""
            if word in _ABBREVIATIONS or len(word) == 1:
                continue  # "e.g. this" or "J. Smith": not the end of a sentence
        _append(spans, text, pos, cut, paragraph)
        paragraph = sep.count("\n") >= 2
        pos = match.end()
    _append(spans, text, pos, end, paragraph)
    return spans


def _append(
    spans: list[tuple[int, int, bool]], text: str, start: int, end: int, paragraph: bool
) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    s = start + lead
    spans.append((s, s + len(stripped), paragraph))


def _split_long(start: int, end: int, text: str, max_chars: int) -> list[tuple[int, int]]:
    """Cut one over-long sentence at spaces into pieces of at most ``max_chars``."""
    pieces: list[tuple[int, int]] = []
    pos = start
    while end - pos > max_chars:
        cut = text.rfind(" ", pos + 1, pos + max_chars)
        if cut <= pos:
            cut = pos + max_chars
        pieces.append((pos, cut))
        pos = cut
        while pos < end and text[pos].isspace():
            pos += 1
    if pos < end:
        pieces.append((pos, end))
    return pieces


def chunk_text(text: str, *, max_chars: int = 800, overlap_chars: int = 160) -> list[Chunk]:
    """Chunks of ``text`` that respect headings and sentences, with overlap and positions.

    Raises:
        ValueError: ``max_chars`` is not positive or the overlap is not smaller than it.
    """
    if max_chars <= 0 or not 0 <= overlap_chars < max_chars:
        raise ValueError("need max_chars > 0 and 0 <= overlap_chars < max_chars")
    chunks: list[Chunk] = []
    for section in sections(text):
        label = SECTION_SEPARATOR.join(section.path)
        units: list[tuple[int, int, bool]] = []
        for s, e, para in sentence_spans(text, section.start, section.end):
            for i, (ps, pe) in enumerate(_split_long(s, e, text, max_chars)):
                units.append((ps, pe, para and i == 0))
        for s, e in _pack(units, max_chars, overlap_chars):
            chunks.append(Chunk(len(chunks), s, e, label, text[s:e]))
    return chunks


def _pack(
    units: list[tuple[int, int, bool]], max_chars: int, overlap_chars: int
) -> list[tuple[int, int]]:
    """Greedy packing of sentence spans into (start, end) chunks with sentence overlap."""
    out: list[tuple[int, int]] = []
    prev_first = -1  # index of the first sentence of the previous chunk
    i, n = 0, len(units)
    while i < n:
        first = i
        if out:
            # Overlap: step back over whole sentences of the previous chunk that fit the
            # budget, never back to its first sentence (that would repeat it entirely).
            back = i
            while back - 1 > prev_first and units[i - 1][1] - units[back - 1][0] <= overlap_chars:
                back -= 1
            first = back
        start = units[first][0]
        j = i
        while j < n and units[j][1] - start <= max_chars:
            if j > i and units[j][2] and units[j - 1][1] - start >= max_chars // 2:
                break  # a new paragraph and the chunk is already half full: cut here
            j += 1
        if j == i:  # the overlap left no room for the next sentence: drop the overlap
            first, start, j = i, units[i][0], i + 1
        out.append((start, units[j - 1][1]))
        prev_first, i = first, j
    return out
