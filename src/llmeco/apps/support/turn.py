"""The outcome of planning one support turn: the passages it may cite, the evidence its
answer is grounded on, and whether it goes to a person."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmeco.apps.answerability import Signals
from llmeco.apps.spec import PromptSpec

#: What the customer is told when the turn is handed off (no model call).
HANDOFF_MESSAGE = (
    "I'm sorry, I can't find the answer to that in our documentation. I've passed your "
    "question to a member of our support team, who will get back to you."
)


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


@dataclass(frozen=True)
class Evidence:
    """The sentences of the cited passages, embedded once per turn for grounding."""

    #: ``(citation index, sentence)`` for every sentence of the cited passages.
    sentences: list[tuple[int, str]]
    #: One unit vector per sentence (rows of ``sentences``).
    vectors: np.ndarray
    #: Cosine similarity of each sentence to the question.
    relevance: np.ndarray


@dataclass
class SupportTurn:
    """What to do with one user turn: hand off, or run ``spec`` and cite ``citations``."""

    query: str
    citations: list[Citation]
    #: What retrieval says about the question (the gate's input).
    signals: Signals
    #: The gate's probability that the passages answer the question.
    answerability: float = 0.0
    spec: PromptSpec | None = None
    handoff_reason: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    evidence: Evidence | None = None

    @property
    def handoff(self) -> bool:
        """Whether this turn goes to a person instead of the model."""
        return self.spec is None
