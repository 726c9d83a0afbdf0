"""Grounding a generated answer in the turn's passages, sentence by sentence.

A sentence of the answer is kept when a passage sentence says the same thing (cosine ≥
:data:`MIN_SUPPORT`) and that passage sentence is itself about the question (≥
:data:`MIN_RELEVANCE`); it then cites that passage as ``[n]``. Sentences no passage supports
are dropped; when none survives, the answer is the sentence of passage ``[1]`` closest to the
question, quoted with its citation.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmeco.apps.support.protocols import Embeds
from llmeco.apps.support.text import (
    CLAIM_WORDS,
    MARKERS,
    SENTENCE_END,
    content_words,
    with_marker,
)
from llmeco.apps.support.turn import SupportTurn

#: An answer sentence is supported by a passage sentence at least this similar (cosine).
MIN_SUPPORT = 0.6
#: ... and only when that passage sentence is at least this similar to the question.
MIN_RELEVANCE = 0.35


class Grounder:
    """Checks a generated answer against the turn's passages, one sentence at a time.

    :meth:`feed` takes the answer as it is generated and returns the text that is ready to
    show (whole, checked sentences); :meth:`finish` returns the rest. A sentence is kept when
    a passage sentence supports it (cosine ≥ :data:`MIN_SUPPORT`) and is about the question
    (its own similarity to the question ≥ :data:`MIN_RELEVANCE`); it cites that
    passage. Connectives ("Yes.") are kept only next to a kept sentence, and a repeated
    sentence is shown once. When nothing is kept,
    :meth:`finish` answers with the sentence of passage ``[1]`` closest to the question.
    Feeding the same text in any pieces gives the same output.
    """

    def __init__(self, turn: SupportTurn, embedder: Embeds) -> None:
        """Ground answers to ``turn`` (which must not be a hand-off)."""
        self.turn = turn
        self.embedder = embedder
        self._buffer = ""
        self._pending: list[tuple[str, str]] = []  # connectives waiting for a kept claim
        self._gap = ""  # whitespace after the last shown sentence, shown before the next
        self._kept = 0
        self._claims: set[str] = set()

    def feed(self, text: str) -> str:
        """Add generated ``text``; return what is now ready to show."""
        self._buffer += text
        out: list[str] = []
        while (m := SENTENCE_END.search(self._buffer)) is not None:
            rest = self._buffer[m.end() :]
            cut = len(self._buffer) - len(rest.lstrip())
            sentence = self._buffer[: m.end()].rstrip()
            space = self._buffer[len(sentence) : cut]
            self._buffer = self._buffer[cut:]
            out.append(self._sentence(sentence, space))
        return "".join(out)

    def finish(self) -> str:
        """The rest of the answer, once generation has ended."""
        out = self._sentence(self._buffer.strip(), "")
        self._buffer = ""
        if self._kept == 0:
            out += self.extractive()
        return out

    def _sentence(self, sentence: str, space: str) -> str:
        text = sentence.strip()
        if not text:
            return ""
        if len(content_words(MARKERS.sub("", text))) < CLAIM_WORDS:
            text = MARKERS.sub("", text).strip()  # a connective cites nothing
            if not text:
                return ""
            if self._kept:
                return self._show([(text, space)])
            self._pending.append((text, space))
            return ""
        claim = " ".join(MARKERS.sub("", text).lower().split())
        if claim in self._claims:  # a small model repeats itself; say it once
            return ""
        self._claims.add(claim)
        source = self.support(text)
        if source is None:
            return ""
        shown = self._show([*self._pending, (with_marker(text, source), space)])
        self._pending = []
        return shown

    def _show(self, parts: Sequence[tuple[str, str]]) -> str:
        out = ""
        for text, space in parts:
            out += (self._gap if self._kept else "") + text
            self._gap = space or " "
            self._kept += 1
        return out

    def support(self, sentence: str) -> int | None:
        """The passage number supporting ``sentence``, or None when no passage does."""
        evidence = self.turn.evidence
        if evidence is None or not evidence.sentences:
            return None
        vector = self.embedder.embed([MARKERS.sub("", sentence)])[0]
        sims = evidence.vectors @ vector
        best = int(sims.argmax())
        if sims[best] < MIN_SUPPORT or evidence.relevance[best] < MIN_RELEVANCE:
            return None
        return evidence.sentences[best][0]

    def extractive(self) -> str:
        """The sentence of passage ``[1]`` closest to the question, citing ``[1]``."""
        evidence = self.turn.evidence
        if evidence is None or not evidence.sentences:
            return ""
        first = [i for i, (n, _) in enumerate(evidence.sentences) if n == 1]
        best = max(first, key=lambda i: float(evidence.relevance[i]))
        return self._show([(with_marker(evidence.sentences[best][1], 1), "")])


def ground(answer: str, turn: SupportTurn, embedder: Embeds) -> str:
    """The grounded form of a whole ``answer`` (see :class:`Grounder`)."""
    grounder = Grounder(turn, embedder)
    return grounder.feed(answer) + grounder.finish()
