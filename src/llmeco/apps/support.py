"""The support assistant: answers from a knowledge base, cites its passages, hands off when
the knowledge base does not hold the answer.

A turn goes: retrieve for the conversation → decide whether the passages can answer it →
either hand off (a fixed message, no model call) or ask the model to answer from the numbered
passages only. The retrieved passages are re-ordered so that ``[1]`` is the one holding the
sentence closest to the question.

*Answerability* is judged before generating, by an answerability gate
(:mod:`llmeco.apps.answerability`): a logistic regression over signals a small model cannot
fake, fitted on labelled questions — per knowledge base with ``llmeco kb calibrate``, or the
shipped default fitted on ``examples/kb-questions/calibration*.jsonl``. The signals:

* the best cosine similarity between the question and any single sentence of the top passages
  (sentence level, because chunk-level similarity is diluted by the rest of a chunk);
* for each of the question's content words, whether the top passages contain it literally (a
  shared 5-letter stem), else how close the closest passage word is (embedding cosine), so
  "bike" is covered by "bicycle" while "scooters" is not;
* the token recall of the best passage (:func:`token_recall`): each content word piece of the
  question matched to its closest piece of the passage in context, as BERTScore does.

*Grounding* happens after generating, sentence by sentence (:class:`Grounder`): a sentence of
the answer is kept when a passage sentence says the same thing (cosine ≥ :data:`MIN_SUPPORT`)
and that passage sentence is itself about the question; it then cites that passage as ``[n]``
(markers the model wrote are replaced by the one the evidence supports). Sentences no passage
supports are dropped. When no sentence survives, the answer is *extractive*: the sentence of
passage ``[1]`` closest to the question, quoted with its citation. So every answer names the
passage it comes from, and the streamed answer (a sentence at a time) equals the plain one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from llmeco.apps.answerability import Gate, Signals, default_gate
from llmeco.apps.spec import PromptSpec
from llmeco.engine.request import SamplingParams
from llmeco.governance import redact
from llmeco.rag.retrieve import Hit

#: An answer sentence is supported by a passage sentence at least this similar (cosine).
MIN_SUPPORT = 0.6
#: ... and only when that passage sentence is at least this similar to the question.
MIN_RELEVANCE = 0.35
#: Weight of term coverage next to sentence similarity when ordering the passages.
COVERAGE_WEIGHT = 0.2
#: Passages shown to the model (a 135M model answers better from few, short passages).
PASSAGES = 3
#: Characters of each passage shown to the model.
PASSAGE_CHARS = 800

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
_MARKERS = re.compile(r"\s*\[\d{1,2}\]")
_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")
#: A single line break inside a paragraph: not after a sentence end, not before a blank
#: line, a list item or a heading.
_WRAPPED = re.compile(r"(?<![.!?:\n])[ \t]*\n(?![ \t]*(?:\n|[-*+#|>]|\d+[.)]))")
#: Where a sentence of a (possibly still growing) answer ends: terminal punctuation and any
#: markers after it, once the next sentence has visibly started; or a line break.
_END = re.compile(r"[.!?](?:\s*\[\d{1,2}\])*(?=\s+[^\s\[])|\n(?=\s*\S)")
_TRAILING = re.compile(r"([.!?:;,]*)\s*$")
#: Sentences with fewer content words are connectives ("Yes.", "1."), not claims.
_CLAIM_WORDS = 2


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

    def token_vectors(self, texts: Sequence[str]) -> list[tuple[list[str], np.ndarray]]:
        """Each text's word pieces with one unit contextual vector per piece."""
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


def sentences_of(text: str) -> list[str]:
    """The sentences of a passage that can carry a fact (three words or more); a line break
    inside a hard-wrapped paragraph does not end a sentence."""
    text = _WRAPPED.sub(" ", text)
    return [s.strip() for s in _SENTENCE.split(text) if len(s.split()) >= 3]


def word_similarities(query: str, texts: Sequence[str], embedder: Embeds) -> list[float]:
    """For each content word of ``query``: 1.0 when ``texts`` contain its 5-letter stem
    (refund/refunds/refunded), else the cosine similarity of the closest content word of
    ``texts`` (embedded as single words), 0.0 when ``texts`` have none."""
    words = content_words(focus(query))
    text = " ".join(t.lower() for t in texts)
    missing = sorted({w for w in words if w[:5] not in text})
    closest: dict[str, float] = {}
    vocabulary = sorted(set(content_words(text)))
    if missing and vocabulary:
        vectors = embedder.embed([*missing, *vocabulary])
        sims = vectors[: len(missing)] @ vectors[len(missing) :].T
        closest = {w: float(sims[i].max()) for i, w in enumerate(missing)}
    return [1.0 if w[:5] in text else closest.get(w, 0.0) for w in words]


def token_recall(question: str, passages: Sequence[str], embedder: Embeds) -> float:
    """How well the best of ``passages`` covers ``question`` piece by piece, in context: for
    each content piece of the question (a word piece of 3+ characters that is not a stop word,
    or a word's continuation piece) the best cosine to a piece of the passage, averaged; the
    best passage's average. Unlike sentence similarity it is not diluted by what else a
    passage says, and unlike literal word matches it sees a word's meaning in its sentence."""
    if not passages:
        return 0.0
    (pieces, q), *rest = embedder.token_vectors([question, *passages])
    keep = [
        i
        for i, t in enumerate(pieces)
        if (t.isalnum() and t.lower() not in _STOP and len(t) > 2) or t.startswith("##")
    ]
    rows = q[keep] if keep else q
    recalls = [float((rows @ p.T).max(axis=1).mean()) for _, p in rest if len(p)]
    return max(recalls) if len(rows) and recalls else 0.0


def plan_turn(
    messages: Sequence[dict[str, str]],
    kb: Searcher,
    embedder: Embeds,
    *,
    company: str = "our company",
    max_tokens: int | None = None,
    temperature: float = 0.0,
    seed: int | None = None,
    gate: Gate | None = None,
) -> SupportTurn:
    """Retrieve for the conversation and decide, with ``gate`` (default:
    :func:`~llmeco.apps.answerability.default_gate`): answer from passages, or hand off."""
    nothing = Signals(0.0, ())
    query = query_for(messages)
    if not query:
        return SupportTurn("", [], nothing, handoff_reason="no user question")
    asked = focus(query).strip() or query
    hits = kb.search(asked, k=5)
    if not hits:
        return SupportTurn(
            query,
            [],
            nothing,
            handoff_reason="the knowledge base has no passage for this question",
        )
    per_hit = [sentences_of(h.text) or [h.text.strip()] for h in hits]
    flat = [s for sents in per_hit for s in sents]
    vectors = embedder.embed([asked, *flat])
    relevance = vectors[1:] @ vectors[0]
    best_per_hit: list[float] = []
    offset = 0
    for sents in per_hit:
        best_per_hit.append(float(relevance[offset : offset + len(sents)].max()))
        offset += len(sents)
    similarity = max(best_per_hit)
    # Order the top passages by how well their best sentence and their words match the
    # question, so that [1] is the passage most likely to hold the answer.
    top = list(range(min(PASSAGES, len(hits))))
    words = content_words(asked)

    def rank_key(i: int) -> float:
        text = hits[i].text.lower()
        share = sum(1 for w in words if w[:5] in text) / len(words) if words else 0.0
        return best_per_hit[i] + COVERAGE_WEIGHT * share

    order = sorted(top, key=lambda i: (-rank_key(i), i))
    texts = [hits[i].text for i in top]
    signals = Signals(
        similarity,
        tuple(word_similarities(query, texts, embedder)),
        token_recall(asked, texts, embedder),
    )
    citations = [
        Citation(
            n + 1,
            hits[i].doc,
            hits[i].section,
            hits[i].start,
            hits[i].end,
            hits[i].text,
            hits[i].score,
        )
        for n, i in enumerate(order)
    ]
    gate = gate or default_gate()
    turn = SupportTurn(query, citations, signals, gate.probability(signals))
    if turn.answerability < gate.threshold:
        turn.handoff_reason = (
            f"the passages do not seem to answer it (answerability {turn.answerability:.2f} "
            f"< {gate.threshold:.2f}; best sentence similarity {similarity:.2f}, "
            f"{signals.coverage(0.5):.0%} of the question's words covered)"
        )
        turn.citations = []
        return turn
    starts = np.cumsum([0, *(len(s) for s in per_hit)])
    rows = [
        (n + 1, int(starts[i]) + j) for n, i in enumerate(order) for j in range(len(per_hit[i]))
    ]
    turn.evidence = Evidence(
        sentences=[(n, flat[r]) for n, r in rows],
        vectors=vectors[1:][[r for _, r in rows]],
        relevance=relevance[[r for _, r in rows]],
    )
    passages = "\n\n".join(f"[{c.index}] {c.text[:PASSAGE_CHARS]}" for c in citations)
    system = (
        f"You are the customer support assistant of {company}. Answer the customer's question "
        "in one or two short sentences, using only the facts in the numbered passages below, "
        "and cite the passage you used like [1]. Passage [1] is the most relevant.\n\n"
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


def with_marker(sentence: str, index: int) -> str:
    """``sentence`` without its ``[n]`` markers, citing ``[index]`` before its final
    punctuation: ``"Refunds take ten days [2]."``."""
    bare = _MARKERS.sub("", sentence).rstrip()
    match = _TRAILING.search(bare)
    assert match is not None  # the pattern matches the empty tail of any string
    body, punctuation = bare[: match.start()], match.group(1)
    return f"{body} [{index}]{punctuation}"


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
        while (m := _END.search(self._buffer)) is not None:
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
        if len(content_words(_MARKERS.sub("", text))) < _CLAIM_WORDS:
            text = _MARKERS.sub("", text).strip()  # a connective cites nothing
            if not text:
                return ""
            if self._kept:
                return self._show([(text, space)])
            self._pending.append((text, space))
            return ""
        claim = " ".join(_MARKERS.sub("", text).lower().split())
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
        vector = self.embedder.embed([_MARKERS.sub("", sentence)])[0]
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
