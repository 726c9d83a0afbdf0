"""Grounding a generated answer in the turn's passages, sentence by sentence and fact by fact.

A sentence of the answer is kept when a passage sentence says the same thing (cosine ≥
:data:`MIN_SUPPORT`) with the same polarity (both negative, or neither:
:func:`~llmeco.apps.support.text.negated`), that passage sentence is itself about the question
(≥ :data:`MIN_RELEVANCE`), and every fact the sentence states (number, time, amount,
duration, date, proper name: :func:`~llmeco.apps.support.facts.facts_of`) appears in that
passage sentence; it then cites that passage as ``[n]``. A small model cites the right passage
and then writes a count off by ten, a closing time that appears nowhere, or "Yes, you can pay
in cash" beside "we do not accept cash", which sentence similarity alone lets through: the
fact and polarity checks do not. Sentences that fail are dropped.

The *answer sentence* (:func:`answer_sentence`) is the passage sentence most likely to hold
what was asked: closest to the question, sharing its words (the words of the last message count
most, so a follow-up's new subject wins), naming the question's subject (its proper names, or
those of the question it follows up: "is there a daily cap too?" after a question about
Business is answered by the Business row), and stating the kind of fact the question asks for
(a number for "how much / how long / when", a name for "who / where"; an elliptical follow-up,
"And on Wednesdays?", asks for what its question asked for, one that opens a question of its
own, "What should I bring to it?", for its own kind). Every answer quotes it, with its
citation, after the generated sentences that held, unless they state it already (one of them
rests on it and it has facts, or they hold :data:`RESTATED` of its words, and they hold all of
its facts): when nothing held it is the whole answer, and when the model answered beside the
point ("it varies"), picked another row of a table or paraphrased a rule, the reader still gets
the passage's own words. When another sentence scores nearly as well
(:data:`RUNNER_UP_MARGIN`), it is quoted after the first: the scores cannot tell which of the
two answers, so the reader gets both. Measured on the tuning handbooks, the generated sentences
never held a fact that these sentences lacked. Quoting is appended, never inserted, so a
streamed answer equals the plain one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmeco.apps.support.facts import facts_of, missing_facts, proper_names
from llmeco.apps.support.protocols import Embeds
from llmeco.apps.support.text import (
    CLAIM_WORDS,
    CONNECTIVE_WORDS,
    MARKERS,
    SENTENCE_END,
    content_words,
    negated,
    points_back,
    with_marker,
)
from llmeco.apps.support.turn import SupportTurn

#: An answer sentence is supported by a passage sentence at least this similar (cosine).
MIN_SUPPORT = 0.6
#: ... and only when that passage sentence is at least this similar to the question.
MIN_RELEVANCE = 0.35
#: Weight of the last message's word overlap when choosing the answer sentence.
LAST_WORDS_WEIGHT = 0.3
#: Weight of the earlier question's word overlap (a follow-up's context).
CONTEXT_WORDS_WEIGHT = 0.1
#: Weight of naming the question's subject: the proper names of the last message, or of the
#: question it follows up when it names none ("is there a daily cap too?" after "… a Business
#: workspace …" is still about Business, and a table's Business row answers it).
SUBJECT_WEIGHT = 0.15
#: Bonus for a sentence stating the kind of fact the question asks for.
KIND_WEIGHT = 0.15
#: Bonus for passage [1] (the one retrieval ranked first).
FIRST_PASSAGE_WEIGHT = 0.03
#: Content words a kept sentence may use that neither its supporting passage sentence nor the
#: question has (by 5-letter stem): a small model's paraphrase that brings its own words
#: ("at the end of the billing period" for "at once") says something the passage does not.
MAX_NEW_WORDS = 0
#: A second sentence is quoted beside the answer sentence when its score is at most this far
#: below: the scores cannot tell the two apart, and quoting both gives the reader the fact
#: either way instead of a coin flip. On the tuning handbooks' calibration questions the
#: right sentence was among the two in 15 more of 195 answers, at a second sentence in a
#: third of them.
RUNNER_UP_MARGIN = 0.1
#: The answer sentence counts as already said when the kept sentences hold this share of its
#: content words (and all of its facts); otherwise it is quoted after them.
RESTATED = 0.8

_ASKS_NUMBER = re.compile(
    r"\b(?:how (?:much|many|long|often|soon|far|old|early|late|quickly)|when|what time|"
    r"what hours?|until|till|cost|price|fee|charge|pay|number|percentage|rate|deadline|"
    r"days?|hours?|minutes?|weeks?|months?|years?|times?|open|close|limit|maximum|minimum)\b",
    re.IGNORECASE,
)
#: Adverbs of time stemmed as their noun ("a daily cap" is a cap per day).
_STEM_OF = {
    "hourly": "hour",
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "yearly": "year",
    "annually": "annua",
}
#: Words a finished sentence does not end on: articles, prepositions, auxiliaries, links.
_DANGLING_WORDS = (
    "a an the is are was were be been being am do does did can could would should will shall "
    "may might must has have had of to in on at for from with by about into than and or but "
    "if that which who whose your our my their its his her this these those as via per"
)
_DANGLING = frozenset(_DANGLING_WORDS.split())
#: A message that opens a question of its own (not "What about…", "And…").
_OWN_QUESTION = re.compile(
    r"^\s*(?:what|which|who|whom|where|why|how|when|is|are|was|were|do|does|did|can|could|"
    r"will|would|should|may|must|shall)\b(?!\s+about\b)",
    re.IGNORECASE,
)
_ASKS_NAME = re.compile(r"\b(?:who|whom|where|which|what is the name|called)\b", re.IGNORECASE)


def _stems(text: str) -> set[str]:
    return {_STEM_OF.get(w, w[:5]) for w in content_words(text)}


def _names(text: str) -> list[set[str]]:
    """The stems of each proper name ``text`` mentions (a plan, a product, a place), less
    acronyms ("API", "SSO"), which name a topic rather than what is asked about."""
    return [_stems(name) for name in proper_names(text, acronyms=False) if _stems(name)]


def sentence_words(sentences: Sequence[tuple[int, str]]) -> list[set[str]]:
    """The content-word stems each evidence sentence speaks of: its own, plus those of the
    sentence before it in the same passage when it opens by pointing back ("The Ridge is built
    for hills. It weighs 23 kilograms" — the second is about the Ridge too)."""
    out: list[set[str]] = []
    for i, (n, text) in enumerate(sentences):
        stems = _stems(text)
        if i and sentences[i - 1][0] == n and points_back(text):
            stems |= out[-1]
        out.append(stems)
    return out


def answer_sentence(turn: SupportTurn) -> tuple[int, str] | None:
    """The evidence sentence most likely to answer the turn's question, as ``(passage number,
    sentence)``; None without evidence. See the module docstring for how it is chosen."""
    chosen = answer_sentences(turn)
    return chosen[0] if chosen else None


def answer_sentences(turn: SupportTurn) -> list[tuple[int, str]]:
    """The answer sentence (:func:`answer_sentence`), then the best other sentence when it
    scores within :data:`RUNNER_UP_MARGIN` of it (one that only restates the first, as a copy
    from an overlapping passage does, does not count); empty without evidence."""
    evidence = turn.evidence
    if evidence is None or not evidence.sentences:
        return []
    scores = sentence_scores(turn)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    best = evidence.sentences[order[0]]
    chosen = [best]
    for i in order[1:]:
        if scores[order[0]] - scores[i] > RUNNER_UP_MARGIN:
            break
        if restates(best[1], evidence.sentences[i][1]):
            continue
        chosen.append(evidence.sentences[i])
        break
    return chosen


def sentence_scores(turn: SupportTurn) -> list[float]:
    """How likely each evidence sentence of ``turn`` is to answer its question (higher is
    likelier; see the module docstring): similarity, shared words, subject, kind of fact."""
    evidence = turn.evidence
    if evidence is None:
        return []
    last = str(turn.extra.get("last") or turn.query)
    context = str(turn.extra.get("context") or "")
    last_stems = _stems(last)
    context_stems = _stems(context) - last_stems
    subject = _names(last) or _names(context)
    # an elliptical follow-up ("And on Wednesdays?") asks for what its question asked for; one
    # that opens a question of its own ("What should I bring to it?") asks for its own kind
    leans = bool(context) and _OWN_QUESTION.match(last) is None
    wants_number = bool(_ASKS_NUMBER.search(last) or (leans and _ASKS_NUMBER.search(context)))
    wants_name = bool(_ASKS_NAME.search(last))
    words = sentence_words(evidence.sentences)

    def score(i: int) -> float:
        n, text = evidence.sentences[i]
        stems = words[i]
        value = float(evidence.relevance[i])
        if last_stems:
            value += LAST_WORDS_WEIGHT * len(last_stems & stems) / len(last_stems)
        if context_stems:
            value += CONTEXT_WORDS_WEIGHT * len(context_stems & stems) / len(context_stems)
        if subject:
            value += SUBJECT_WEIGHT * sum(name <= stems for name in subject) / len(subject)
        facts = facts_of(text)
        if (wants_number and any(any(c.isdigit() for c in f) for f in facts)) or (
            wants_name and any(not any(c.isdigit() for c in f) for f in facts)
        ):
            value += KIND_WEIGHT
        return value + (FIRST_PASSAGE_WEIGHT if n == 1 else 0.0)

    return [score(i) for i in range(len(evidence.sentences))]


def unfinished(sentence: str) -> bool:
    """Whether ``sentence`` (the last of an answer, without markers) was cut off: no final
    punctuation and its last word one that cannot end a sentence ("The order confirmation
    is", "You can pay with"). A small model stopped by the token limit leaves such tails."""
    bare = MARKERS.sub("", sentence).strip()
    words = bare.lower().split()
    return bool(words) and bare[-1] not in ".!?:)\"'" and words[-1] in _DANGLING


def is_connective(sentence: str) -> bool:
    """Whether ``sentence`` (without markers) only links claims ("Yes.", "Of course!"): short,
    finished, with fewer than :data:`CLAIM_WORDS` content words and no fact."""
    text = sentence.strip()
    return (
        len(text.split()) <= CONNECTIVE_WORDS
        and text[-1:] in {".", "!", "?", ",", ":"}
        and len(content_words(text)) < CLAIM_WORDS
        and not facts_of(text)
    )


def restates(said: str, sentence: str) -> bool:
    """Whether ``said`` already states ``sentence``: all of its facts and at least
    :data:`RESTATED` of its content words (by 5-letter stem), with the same polarity."""
    wanted = _stems(sentence)
    if not said.strip() or negated(said) != negated(sentence):
        return False
    if missing_facts(sentence, [said]):
        return False
    return not wanted or len(wanted & _stems(said)) >= RESTATED * len(wanted)


class Grounder:
    """Checks a generated answer against the turn's passages, one sentence at a time.

    :meth:`feed` takes the answer as it is generated and returns the text that is ready to
    show (whole, checked sentences); :meth:`finish` returns the rest. A sentence is kept when
    a passage sentence supports it (cosine ≥ :data:`MIN_SUPPORT`) and is about the question
    (its own similarity to the question ≥ :data:`MIN_RELEVANCE`); it cites that
    passage. Connectives ("Yes.") are kept only next to a kept sentence, and a repeated
    sentence is shown once. :meth:`finish` then quotes the answer sentence
    (:func:`answer_sentence`) unless the kept sentences restate it; when nothing is kept, it
    is the answer.
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
        self._said = ""  # the claims shown so far (for the answer sentence's facts)
        self._backing: set[tuple[int, str]] = set()  # evidence sentences backing them

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
        """The rest of the answer, once generation has ended: the last sentence if it holds,
        then the answer sentence quoted unless what held states it (:meth:`_states`)."""
        tail = self._buffer.strip()
        self._buffer = ""
        out = "" if unfinished(tail) else self._sentence(tail, "")
        if self._kept == 0:
            out += self.extractive()
            return out
        for best in answer_sentences(self.turn):
            if not self._states(best):
                out += self._show([(with_marker(best[1], best[0]), "")])
        return out

    def _states(self, best: tuple[int, str]) -> bool:
        """Whether the kept sentences state the answer sentence ``best``: one of them rests on
        it and together they hold its facts (it has some: resting on a sentence without
        facts, "The order confirmation is [1]" would stand for "Every order is confirmed by
        email within one working day"), or they restate it (:func:`restates`)."""
        if best in self._backing and facts_of(best[1]) and not missing_facts(best[1], [self._said]):
            return True
        return restates(self._said, best[1])

    def _sentence(self, sentence: str, space: str) -> str:
        text = sentence.strip()
        if not text:
            return ""
        bare = MARKERS.sub("", text)
        if is_connective(bare):
            text = bare.strip()  # a connective cites nothing
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
        backing = self.backing(text)
        if backing is None:
            return ""
        source = backing[0]
        self._backing.add(backing)
        self._said += " " + text
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

    def backing(self, sentence: str) -> tuple[int, str] | None:
        """The evidence sentence supporting ``sentence``, as ``(passage number, sentence)``,
        or None: the closest evidence sentence (cosine ≥ :data:`MIN_SUPPORT`, itself about the
        question, of the same polarity, using no more than :data:`MAX_NEW_WORDS` content words
        that neither it nor the question has) that states every fact of ``sentence``. Facts are
        checked against the supporting sentence, not the whole passage, so a count or a time
        copied from another row of a table or another clause does not pass as this claim's."""
        evidence = self.turn.evidence
        if evidence is None or not evidence.sentences:
            return None
        bare = MARKERS.sub("", sentence)
        vector = self.embedder.embed([bare])[0]
        sims = evidence.vectors @ vector
        facts = facts_of(bare)
        asked = _stems(f"{self.turn.query} {self.turn.extra.get('last') or ''}")
        words = _stems(bare) - asked
        negative = negated(bare)
        for i in (int(j) for j in sims.argsort()[::-1]):
            if sims[i] < MIN_SUPPORT:
                break
            if evidence.relevance[i] < MIN_RELEVANCE:
                continue
            number, text = evidence.sentences[i]
            if negated(text) != negative or len(words - _stems(text)) > MAX_NEW_WORDS:
                continue
            if not facts or not missing_facts(bare, [text]):
                return number, text
        return None

    def extractive(self) -> str:
        """The answer sentences (:func:`answer_sentences`), quoted with their citations."""
        return self._show([(with_marker(t, n), "") for n, t in answer_sentences(self.turn)])


def ground(answer: str, turn: SupportTurn, embedder: Embeds) -> str:
    """The grounded form of a whole ``answer`` (see :class:`Grounder`)."""
    grounder = Grounder(turn, embedder)
    return grounder.feed(answer) + grounder.finish()
