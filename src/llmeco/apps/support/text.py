"""Text helpers of the support assistant: content words, the question a conversation asks,
the sentences of a passage, and ``[n]`` citation markers."""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmeco.apps.support.facts import proper_names
from llmeco.apps.support.turn import Citation
from llmeco.governance import redact
from llmeco.rag.parse import markdown_tables

_STOP_WORDS = (
    "a an the is are was were be been being do does did you your yours we our us i me my can "
    "could would should will shall may might must of to in on at for from with by about how "
    "what when where which who whom whose why if or and not no it its this that these those "
    "there their them they he she his her have has had any some much many more most get got "
    "please tell know need want use using also just than then so very too all long take takes "
    "often soon happen happens work works possible there like anything something everything "
    "anyone someone everyone anybody somebody everybody"
)
#: Words that carry no meaning for retrieval or grounding.
STOP = frozenset(_STOP_WORDS.split())
#: ``[n]`` markers with the whitespace before them (to strip them from a sentence).
MARKERS = re.compile(r"\s*\[\d{1,2}\]")
#: Where a sentence of a (possibly still growing) answer ends: terminal punctuation and any
#: markers after it, once the next sentence has visibly started; or a line break.
SENTENCE_END = re.compile(r"[.!?](?:\s*\[\d{1,2}\])*(?=\s+[^\s\[])|\n(?=\s*\S)")
#: Sentences with fewer content words are connectives ("Yes.", "1."), not claims...
CLAIM_WORDS = 2
#: ... when they are this short and end like a sentence ("Yes.", "Of course!"); a longer or
#: unfinished one ("You can also do it by phone.", "The return is") is a claim to check.
CONNECTIVE_WORDS = 3

#: A message with fewer content words leans on the one before for its meaning ("and on
#: Wednesdays?"); one with more asks something of its own, even when it follows up.
SHORT_WORDS = 3

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MARKER = re.compile(r"\[(\d{1,2})\]")
_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")
#: A single line break inside a paragraph: not after a sentence end, not before a blank
#: line, a list item or a heading.
_WRAPPED = re.compile(r"(?<![.!?:\n])[ \t]*\n(?![ \t]*(?:\n|[-*+#|>]|\d+[.)]))")
_TRAILING = re.compile(r"([.!?:;,]*)\s*$")


#: Words that turn a statement into its opposite ("we do not accept cash").
_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nothing|nobody|neither|nor|cannot|without)\b|n't\b", re.IGNORECASE
)


def negated(text: str) -> bool:
    """Whether ``text`` states something negatively ("not", "no", "never", "cannot", "n't"):
    two sentences close in meaning but of opposite polarity say opposite things, which
    sentence embeddings barely tell apart."""
    return _NEGATION.search(text) is not None


#: "n't" as its own word, so "don't" reads as "do not" and not as a word "don".
_NOT = re.compile(r"n['\u2019]t\b")


def content_words(text: str) -> list[str]:
    """Lower-case words of ``text`` that carry meaning (no stop words, no 1–2 letter words;
    "doesn't" is "does not", whose remnant "doesn" would otherwise count as a word the
    passages must contain)."""
    words = _WORD.findall(_NOT.sub(" not", text.lower()))
    return [w for w in words if w not in STOP and len(w) > 2]


#: A message that leans on the one before: it opens or ends like a continuation ("and for…",
#: "…too?") or points back ("it", "that", "the cheaper one", "one in person", "get there").
_FOLLOW_UP = re.compile(
    r"^\s*(?:and|also|what about|how about|and what about|what if|same for|or)\b|"
    r"\b(?:too|as well|instead|either)\W*$|"
    r"\b(?:it|its|it's|that|this|they|them|their|those|these|there|he|she|him|her)\b|"
    r"\bthe(?:\s+\w+)?\s+ones?\b|"
    # "one" standing for a noun ("one in person", "a cheaper one?"), not counting one ("one file")
    r"\bones?(?=\s*(?:[?.!,;]|$)|\s+(?:in|on|at|for|with|from|to|of|that|which|who|like|"
    r"instead|too|online|now|today|here|there|again|please|is|are|was|will|can|could|"
    r"would|should|do|does|has|have|cost|costs)\b)",
    re.IGNORECASE,
)
#: "there" that points nowhere: the existential "is there…" / "there are…", which opens
#: plenty of questions that stand on their own ("Is there parking?").
_EXISTENTIAL_THERE = re.compile(
    r"\b(?:is|are|was|were|be|been)\s+there\b|"
    r"\bthere\s*(?:is|are|was|were|'s|be|will|would|must|may|might|should|seems?|used)\b",
    re.IGNORECASE,
)


def _follows_up(message: str) -> bool:
    """Whether ``message`` reads as a continuation of the one before (:data:`_FOLLOW_UP`),
    leaving aside an existential "there"."""
    return _FOLLOW_UP.search(_EXISTENTIAL_THERE.sub(" ", message)) is not None


def conversation_turn(messages: Sequence[dict[str, str]]) -> tuple[str, str]:
    """``(last user message, the user message it follows up)``: the second is empty unless
    the last one is a follow-up, i.e. short (fewer than three content words), opening or
    ending like a continuation ("and for accessories?", "what about…", "…too?") or pointing
    back ("it", "that", "the other one", "get there"; not "is there…" or "one question"),
    with an earlier user message to lean on.

    A short follow-up that names its own subject swaps it in: after "How many responses a
    month does Team include?", "What about Business?" follows up "How many responses a month
    does Business include?", so neither retrieval nor the answer leans towards Team any more.
    """
    users = [m["content"] for m in messages if m.get("role") == "user" and m.get("content")]
    if not users:
        return "", ""
    last = users[-1].strip()
    short = len(content_words(last)) < SHORT_WORDS
    if len(users) > 1 and (short or _follows_up(last)):
        context = users[-2].strip()
        names = proper_names(last, acronyms=False)
        old = proper_names(context, acronyms=False)
        if short and names and old:  # the first name asked about is the subject
            context = re.sub(rf"\b{re.escape(old[0])}\b", " and ".join(names), context)
        return last, context
    return last, ""


def query_for(messages: Sequence[dict[str, str]]) -> str:
    """The retrieval query for a conversation: the last user message, with the previous user
    message prepended when the last one is a follow-up (:func:`conversation_turn`), so "and
    on Wednesdays?" is searched with what it is about."""
    last, context = conversation_turn(messages)
    return f"{context} {last}" if context else last


def focus(query: str) -> str:
    """The part of a message that asks: its questions ("…?") when it has any, with personal
    data replaced by placeholders, which carry no meaning for retrieval. A question too vague
    to stand alone (fewer than :data:`SHORT_WORDS` content words) keeps the statement just
    before it, which says what it is about: "My bike was stolen. What should I do?", "I forgot
    my password. How do I reset it?"."""
    text = _PLACEHOLDER.sub(" ", redact.redact(query))
    parts = [s for s in _SENTENCE.split(text) if s.strip()]
    asks = []
    for i, s in enumerate(parts):
        if not s.strip().endswith("?"):
            continue
        before = parts[i - 1] if i else ""
        if before and not before.strip().endswith("?") and len(content_words(s)) < SHORT_WORDS:
            asks.append(before)
        asks.append(s)
    return " ".join(asks) if asks else text


def sentences_of(text: str) -> list[str]:
    """The sentences of a passage that can carry a fact (three words or more); a line break
    inside a hard-wrapped paragraph does not end a sentence, and each row of a Markdown table
    is a sentence that names its cells by their column headers
    (:func:`~llmeco.rag.parse.markdown_tables`)."""
    text = _WRAPPED.sub(" ", markdown_tables(text))
    return [s.strip() for s in _SENTENCE.split(text) if len(s.split()) >= 3]


#: A sentence opening with one of these continues the one before it ("It weighs 24 kg").
_POINTS_BACK = re.compile(
    r"^\s*(?:it|its|it's|they|their|them|this|these|that|those|he|she|his|her|there)\b",
    re.IGNORECASE,
)


def points_back(sentence: str) -> bool:
    """Whether ``sentence`` opens by pointing back at the one before it ("It weighs…",
    "This can be done…"), so that read alone it does not say what it is about."""
    return _POINTS_BACK.match(sentence) is not None


def in_context(sentences: Sequence[str]) -> list[str]:
    """``sentences`` (of one passage, in order) as they are read for their meaning: one that
    points back (:func:`points_back`) after the last sentence before it that does not, so
    "It weighs 23 kilograms" is embedded as being about the Ridge of "The Ridge is built for
    hills." even with "Its motor sits…" between them."""
    out: list[str] = []
    anchor = ""
    for s in sentences:
        if anchor and points_back(s):
            out.append(f"{anchor} {s}")
        else:
            out.append(s)
            anchor = s
    return out


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
    bare = MARKERS.sub("", sentence).rstrip()
    match = _TRAILING.search(bare)
    assert match is not None  # the pattern matches the empty tail of any string
    body, punctuation = bare[: match.start()], match.group(1)
    return f"{body} [{index}]{punctuation}"
