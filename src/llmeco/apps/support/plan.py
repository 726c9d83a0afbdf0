"""Planning one support turn: retrieve passages for the conversation, measure what they say
about the question, let the answerability gate decide between answering and handing off, and
write the prompt that answers from the numbered passages only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from llmeco.apps.answerability import Gate, Signals, default_gate
from llmeco.apps.spec import PromptSpec
from llmeco.apps.support.protocols import Embeds, Searcher
from llmeco.apps.support.signals import token_recall, word_similarities
from llmeco.apps.support.text import (
    SHORT_WORDS,
    content_words,
    conversation_turn,
    focus,
    in_context,
    query_for,
    sentences_of,
)
from llmeco.apps.support.turn import Citation, Evidence, SupportTurn
from llmeco.engine.request import SamplingParams
from llmeco.rag.retrieve import Hit

#: Weight of term coverage next to sentence similarity when ordering the passages.
COVERAGE_WEIGHT = 0.2
#: Passages shown to the model (a 135M model answers better from few, short passages).
PASSAGES = 3
#: The evidence sentences of a follow-up that asks something of its own (not a short one
#: like "and on Wednesdays?") are scored half against the whole question (with the message
#: it follows) and half against its own words: "which time zone are those hours in?"
#: after a question on reply times is answered by the sentence on time zones, not the one on
#: reply times that the whole question resembles most.
OWN_WEIGHT = 0.5
#: Characters of each passage shown to the model.
PASSAGE_CHARS = 800


@dataclass(frozen=True)
class Retrieval:
    """The passages retrieved for a question, split into sentences and embedded once."""

    hits: list[Hit]
    #: The fact-carrying sentences of each hit (its whole text when it has none).
    per_hit: list[list[str]]
    #: The sentences of ``per_hit``, in order.
    flat: list[str]
    #: The question's vector, then one vector per sentence of ``flat``.
    vectors: np.ndarray
    #: Cosine similarity of each sentence of ``flat`` to the question.
    relevance: np.ndarray
    #: Each hit's best sentence similarity to the question.
    best_per_hit: list[float]


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
    query = query_for(messages)
    if not query:
        return SupportTurn("", [], Signals(0.0, ()), handoff_reason="no user question")
    asked = focus(query).strip() or query
    found = retrieve(asked, kb, embedder)
    if found is None:
        return SupportTurn(
            query,
            [],
            Signals(0.0, ()),
            handoff_reason="the knowledge base has no passage for this question",
        )
    order = rank(found, asked)
    signals = measure(query, asked, found, embedder)
    turn = decide(query, citations_for(found.hits, order), signals, gate or default_gate())
    if turn.handoff_reason is not None:
        return turn
    turn.evidence = evidence_for(found, order)
    last, context = conversation_turn(messages)
    own_question = focus(last).strip() or last
    turn.extra["last"] = own_question
    turn.extra["context"] = context
    if context and len(content_words(last)) >= SHORT_WORDS:
        own = embedder.embed([own_question])[0]
        ev = turn.evidence
        turn.evidence = replace(
            ev, relevance=(1 - OWN_WEIGHT) * ev.relevance + OWN_WEIGHT * (ev.vectors @ own)
        )
    sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    turn.spec = prompt_for(messages, turn.citations, company, sampling)
    return turn


def retrieve(asked: str, kb: Searcher, embedder: Embeds) -> Retrieval | None:
    """The passages ``kb`` finds for the question ``asked``, with their sentences embedded
    (together with the question, in one batch; a sentence that points back, after the one
    before it: :func:`~llmeco.apps.support.text.in_context`); None when it finds none."""
    hits = kb.search(asked, k=5)
    if not hits:
        return None
    per_hit = [sentences_of(h.text) or [h.text.strip()] for h in hits]
    flat = [s for sents in per_hit for s in sents]
    vectors = embedder.embed([asked, *(s for sents in per_hit for s in in_context(sents))])
    relevance = vectors[1:] @ vectors[0]
    return Retrieval(hits, per_hit, flat, vectors, relevance, best_per_hit(relevance, per_hit))


def best_per_hit(relevance: np.ndarray, per_hit: Sequence[Sequence[str]]) -> list[float]:
    """Each hit's highest sentence similarity, from the similarities of all sentences in
    order (``relevance``) and the sentences of each hit (``per_hit``)."""
    best: list[float] = []
    offset = 0
    for sents in per_hit:
        best.append(float(relevance[offset : offset + len(sents)].max()))
        offset += len(sents)
    return best


def rank(found: Retrieval, asked: str) -> list[int]:
    """Indexes of the top :data:`PASSAGES` hits, ordered by how well their best sentence and
    their words match the question, so that ``[1]`` is the passage most likely to hold the
    answer (ties keep retrieval order)."""
    top = list(range(min(PASSAGES, len(found.hits))))
    words = content_words(asked)

    def rank_key(i: int) -> float:
        text = found.hits[i].text.lower()
        share = sum(1 for w in words if w[:5] in text) / len(words) if words else 0.0
        return found.best_per_hit[i] + COVERAGE_WEIGHT * share

    return sorted(top, key=lambda i: (-rank_key(i), i))


def measure(query: str, asked: str, found: Retrieval, embedder: Embeds) -> Signals:
    """What the top :data:`PASSAGES` hits say about the question (the gate's input): the best
    sentence similarity, the similarity of each of the question's words, the token recall."""
    texts = [h.text for h in found.hits[:PASSAGES]]
    return Signals(
        max(found.best_per_hit),
        tuple(word_similarities(query, texts, embedder)),
        token_recall(asked, texts, embedder),
    )


def citations_for(hits: Sequence[Hit], order: Sequence[int]) -> list[Citation]:
    """The hits at ``order`` as citations numbered from ``[1]``."""
    return [
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


def decide(query: str, citations: list[Citation], signals: Signals, gate: Gate) -> SupportTurn:
    """The turn as ``gate`` judges ``signals``: to be answered from ``citations``, or (below
    the gate's threshold) handed off, with the reason and no citations."""
    turn = SupportTurn(query, citations, signals, gate.probability(signals))
    if turn.answerability < gate.threshold:
        turn.handoff_reason = (
            f"the passages do not seem to answer it (answerability {turn.answerability:.2f} "
            f"< {gate.threshold:.2f}; best sentence similarity "
            f"{signals.sentence_similarity:.2f}, "
            f"{signals.coverage(0.5):.0%} of the question's words covered)"
        )
        turn.citations = []
    return turn


def evidence_for(found: Retrieval, order: Sequence[int]) -> Evidence:
    """The sentences of the hits at ``order`` (cited as ``[1]``, ``[2]``, …) with their
    vectors and their similarity to the question, for grounding the answer."""
    starts = np.cumsum([0, *(len(s) for s in found.per_hit)])
    rows = [
        (n + 1, int(starts[i]) + j)
        for n, i in enumerate(order)
        for j in range(len(found.per_hit[i]))
    ]
    return Evidence(
        sentences=[(n, found.flat[r]) for n, r in rows],
        vectors=found.vectors[1:][[r for _, r in rows]],
        relevance=found.relevance[[r for _, r in rows]],
    )


def prompt_for(
    messages: Sequence[dict[str, str]],
    citations: Sequence[Citation],
    company: str,
    sampling: SamplingParams,
) -> PromptSpec:
    """The model call that answers the conversation from the numbered passages only (the
    last six user and assistant messages after a system prompt holding the passages)."""
    passages = "\n\n".join(f"[{c.index}] {c.text[:PASSAGE_CHARS]}" for c in citations)
    system = (
        f"You are the customer support assistant of {company}. Answer the customer's question "
        "in one or two short sentences, using only the facts in the numbered passages below, "
        "and cite the passage you used like [1]. Passage [1] is the most relevant.\n\n"
        f"Passages:\n{passages}"
    )
    history = [m for m in messages if m.get("role") in {"user", "assistant"}][-6:]
    return PromptSpec([{"role": "system", "content": system}, *history], sampling)
