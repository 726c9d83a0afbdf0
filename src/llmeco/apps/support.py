"""The support assistant: answers from a knowledge base, cites its passages, hands off when
the knowledge base does not hold the answer.

A turn goes: retrieve for the conversation → decide whether the passages can answer it →
either hand off (a fixed message, no model call) or ask the model to answer from the numbered
passages only. The citations are part of the answer's contract (streamed or not): the model is
asked to mark them as ``[n]``; markers that point at no passage are dropped, and an answer
with no marker is attributed to the passage it overlaps most (post-hoc attribution), so every
answer names its sources.

*Answerability* is judged before generating, from two signals a small model cannot fake:
the best cosine similarity between the question and any single sentence of the top passages
(sentence level, because chunk-level similarity is diluted by the rest of a chunk), and the
share of the question's content words the top passages contain (so "Do you sell scooters?"
is not answered from a passage about bicycles). Thresholds were set on the shipped
handbook question sets (``examples/kb-questions/``); see :data:`MIN_SENTENCE_SIMILARITY`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from llmeco.apps.spec import PromptSpec
from llmeco.engine.request import SamplingParams
from llmeco.governance import redact
from llmeco.rag.retrieve import Hit

#: Hand off below this best question–sentence cosine similarity (all-MiniLM-L6-v2).
MIN_SENTENCE_SIMILARITY = 0.42
#: Hand off when the top passages contain less than this share of the question's content words.
MIN_TERM_COVERAGE = 0.5
#: Passages shown to the model (a 135M model answers better from few, short passages).
PASSAGES = 3
#: Characters of each passage shown to the model.
PASSAGE_CHARS = 700

HANDOFF_MESSAGE = (
    "I'm sorry, I can't find the answer to that in our documentation. I've passed your "
    "question to a member of our support team, who will get back to you."
)

_STOP_WORDS = (
    "a an the is are was were be been being do does did you your yours we our us i me my can "
    "could would should will shall may might must of to in on at for from with by about how "
    "what when where which who whom whose why if or and not no it its this that these those "
    "there their them they he she his her have has had any some much many more most get got "
    "please tell know need want use using also just than then so very too all long take takes "
    "often soon happen happens work works possible there"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MARKER = re.compile(r"\[(\d{1,2})\]")
_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")


class Searcher(Protocol):
    """What the assistant needs from a knowledge base (``rag.kb.KnowledgeBase`` is one)."""

    name: str

    def search(
        self, query: str, k: int = 5, *, neighbors: int = 0, candidates: int = 50
    ) -> list[Hit]:
        """The ``k`` best passages for ``query``."""
        ...


class Embeds(Protocol):
    """Unit-length sentence embeddings (``rag.embed.Embedder`` is one)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text."""
        ...


@dataclass(frozen=True)
class Citation:
    """A passage the answer may cite as ``[index]``."""

    index: int
    doc: str
    section: str
    start: int
    end: int
    text: str
    score: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for API responses."""
        return {
            "index": self.index,
            "doc": self.doc,
            "section": self.section,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": round(self.score, 6),
        }


@dataclass
class SupportTurn:
    """What to do with one user turn: hand off, or run ``spec`` and cite ``citations``."""

    query: str
    citations: list[Citation]
    sentence_similarity: float
    term_coverage: float
    spec: PromptSpec | None = None
    handoff_reason: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def handoff(self) -> bool:
        """Whether this turn goes to a person instead of the model."""
        return self.spec is None


def content_words(text: str) -> list[str]:
    """Lower-case words of ``text`` that carry meaning (no stop words, no 1–2 letter words)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2]


def query_for(messages: Sequence[dict[str, str]]) -> str:
    """The retrieval query for a conversation: the last user message, with the previous user
    message prepended when the last one is a short follow-up ("and in winter?")."""
    users = [m["content"] for m in messages if m.get("role") == "user" and m.get("content")]
    if not users:
        return ""
    last = users[-1].strip()
    if len(content_words(last)) < 3 and len(users) > 1:
        return f"{users[-2].strip()} {last}"
    return last


def focus(query: str) -> str:
    """The part of a message that asks: its questions ("…?") when it has any, with personal
    data replaced by placeholders, which carry no meaning for retrieval."""
    text = _PLACEHOLDER.sub(" ", redact.redact(query))
    asks = [s for s in _SENTENCE.split(text) if s.strip().endswith("?")]
    return " ".join(asks) if asks else text


def _coverage(query: str, hits: Sequence[Hit]) -> float:
    words = content_words(focus(query))
    if not words:
        return 0.0
    text = " ".join(h.text.lower() for h in hits)
    return sum(1 for w in words if w[:5] in text) / len(words)  # 5-letter stem: refund(s/ed)


def _sentence_similarity(query: str, hits: Sequence[Hit], embedder: Embeds) -> float:
    sentences = [s for h in hits for s in _SENTENCE.split(h.text) if len(s.split()) >= 3]
    if not sentences:
        return 0.0
    vectors = embedder.embed([query, *sentences])
    return float((vectors[1:] @ vectors[0]).max())


def plan_turn(
    messages: Sequence[dict[str, str]],
    kb: Searcher,
    embedder: Embeds,
    *,
    company: str = "our company",
    max_tokens: int | None = None,
    temperature: float = 0.0,
    seed: int | None = None,
) -> SupportTurn:
    """Retrieve for the conversation and decide: answer from passages, or hand off."""
    query = query_for(messages)
    if not query:
        return SupportTurn("", [], 0.0, 0.0, handoff_reason="no user question")
    asked = focus(query).strip() or query
    hits = kb.search(asked, k=5)
    top = hits[:PASSAGES]
    similarity = _sentence_similarity(asked, hits, embedder) if hits else 0.0
    coverage = _coverage(query, top)
    citations = [
        Citation(i + 1, h.doc, h.section, h.start, h.end, h.text, h.score)
        for i, h in enumerate(top)
    ]
    turn = SupportTurn(query, citations, similarity, coverage)
    if not hits:
        turn.handoff_reason = "the knowledge base has no passage for this question"
    elif similarity < MIN_SENTENCE_SIMILARITY:
        turn.handoff_reason = f"best passage similarity {similarity:.2f} is too low"
    elif coverage < MIN_TERM_COVERAGE:
        turn.handoff_reason = f"the passages cover only {coverage:.0%} of the question's terms"
    if turn.handoff_reason is not None:
        turn.citations = []
        return turn
    passages = "\n\n".join(
        f"[{c.index}] ({c.section or c.doc}) {c.text[:PASSAGE_CHARS]}" for c in citations
    )
    system = (
        f"You are the customer support assistant of {company}. Answer the customer's question "
        "using only the numbered passages below, in one or two sentences, and cite the passage "
        "you used like [1]. If the passages do not answer it, say you don't know.\n\n"
        f"Passages:\n{passages}"
    )
    history = [m for m in messages if m.get("role") in {"user", "assistant"}][-6:]
    turn.spec = PromptSpec(
        [{"role": "system", "content": system}, *history],
        SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed),
    )
    return turn


def cited(answer: str, citations: Sequence[Citation]) -> list[int]:
    """Passage numbers the answer's ``[n]`` markers point at (valid ones, in order)."""
    valid = {c.index for c in citations}
    seen: list[int] = []
    for m in _MARKER.finditer(answer):
        n = int(m.group(1))
        if n in valid and n not in seen:
            seen.append(n)
    return seen


def attribution_suffix(answer: str, citations: Sequence[Citation]) -> str:
    """Text to append so the answer cites the passage it comes from: ``" [n]"`` for the passage
    sharing the most content words with the answer, unless the answer already cites a passage
    that shares as many; else ``""``. Only ever appends, so a streamed answer (whose markers
    are already on screen) and a plain one end up identical."""
    if not citations:
        return ""
    words = set(content_words(answer))
    overlap = {c.index: len(words & set(content_words(c.text))) for c in citations}
    best = max(citations, key=lambda c: (overlap[c.index], -c.index)).index
    marks = cited(answer, citations)
    if marks and max(overlap[m] for m in marks) >= overlap[best]:
        return ""
    return f" [{best}]"
