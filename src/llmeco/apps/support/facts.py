"""Facts in text: the numbers, times, amounts, durations, dates and proper names an answer
states, normalised so that the same fact written two ways compares equal.

Two users of one definition: the assistant's grounding (:mod:`~llmeco.apps.support.grounding`)
keeps a generated sentence only when every fact it states appears in a cited passage, and the
answer-level evaluation (:mod:`~llmeco.apps.support.evaluate`) calls an answer *correct* when
the expected fact appears in it and *grounded* when every fact it states appears in a passage
it cites. Normalisation (:func:`normalise`): case, spacing and punctuation; number words to
digits ("ten" → "10", "twenty-four" → "24"); thousands separators ("1,200" → "1200");
currency symbols and names dropped ("£20", "20 pounds" → "20"); clock times ("9.30am",
"9:30 a.m." → "9:30 am"; "09:00" and "9:00 am" → "9"); ranges ("9-5", "9 until 5" →
"9 to 5"); units to one spelling ("minutes", "mins" → "min"; "per cent" → "%"; plurals of
time units to the singular).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES], key=len, reverse=True))
#: A run of number words ("twenty-four", "one hundred and fifty").
_NUMBER_RUN = re.compile(
    rf"\b(?:{_NUMBER_WORD})(?:(?:[\s-]+(?:and[\s-]+)?)(?:{_NUMBER_WORD}))*\b", re.IGNORECASE
)
_CURRENCY_SYMBOLS = re.compile(r"[£$€¥₹]")
_CURRENCY_WORDS = re.compile(
    r"\b(?:pounds?|sterling|dollars?|euros?|usd|eur|gbp|pence|cents?)\b", re.IGNORECASE
)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_AM_PM = re.compile(r"\b([ap])\.?\s?m\b\.?", re.IGNORECASE)
_DOT_TIME = re.compile(r"\b(\d{1,2})\.(\d{2})(?=\s*(?:am|pm)\b)")
_ZERO_MINUTES = re.compile(r"\b(\d{1,2}):00\b")
_GLUED = re.compile(r"(\d)(am|pm|%|[a-z]+)\b")
_UNIT_WORDS = {
    "minutes": "min",
    "minute": "min",
    "mins": "min",
    "hours": "hour",
    "hrs": "hour",
    "hr": "hour",
    "days": "day",
    "weeks": "week",
    "wks": "week",
    "months": "month",
    "years": "year",
    "yrs": "year",
    "seconds": "second",
    "secs": "second",
    "percent": "%",
    "kilometres": "km",
    "kilometers": "km",
    "kilograms": "kg",
    "kilos": "kg",
    "metres": "m",
    "meters": "m",
}
_LEADING_ZERO = re.compile(r"\b0(\d:\d\d)\b")
#: "9-5", "9 – 5", "9 until 5": one way to say a range.
_RANGE = re.compile(r"(\d(?:\s?[ap]m)?)\s*(?:-|to|until|till|through)\s*(\d)")
_PER_CENT = re.compile(r"\bper\s+cent\b", re.IGNORECASE)
_TOKEN = re.compile(r"\d+(?:[.:]\d+)*|%|[a-z0-9]+(?:'[a-z]+)?")

_MARKERS = re.compile(r"\s*\[\d{1,2}\]")
#: "one" is a pronoun as often as a number: not a fact on its own.
_ONE = re.compile(r"\bone\b(?![\s-]+(?:hundred|thousand|million)\b)", re.IGNORECASE)
#: Capitalised words (a proper name when not the first word of a sentence). A word runs to
#: its end: the letters of a code glued to digits ("R2", "HMAC-SHA256") are not a name of
#: their own (the code is a number fact, and "HMAC" before the hyphen still is a name).
_CAPITALISED = re.compile(
    r"\b[A-Z][a-zA-Z'&-]*(?!\w)(?:\s+(?:of\s+|the\s+)?[A-Z][a-zA-Z'&-]*(?!\w))*"
)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n\s*|[-*•]\s+|\[\d{1,2}\]\s*)$")
#: Capitalised words that are not names (sentence openers, pronouns, weekdays are names).
_NOT_WORDS = (
    "i i'm i've i'll yes no please sorry thanks thank you your we our the a an this that "
    "these those it its there here if when what which who how why for to in on at by with "
    "from and or but so as all any each every our you'll we'll"
)
_NOT_NAMES = frozenset(_NOT_WORDS.split())


def _words_to_number(run: str) -> str:
    """The digits of a run of number words ("one hundred and fifty" → "150")."""
    total, current = 0, 0
    for word in re.split(r"[\s-]+", run.lower()):
        if word == "and" or not word:
            continue
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * _SCALES[word]
            current = 0
    return str(total + current)


def normalise(text: str) -> str:
    """``text`` as facts are compared: lower case, number words as digits, currency and
    thousands separators dropped, times and units spelled one way, punctuation as spaces."""
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u00a0", " ")
    text = _NUMBER_RUN.sub(lambda m: _words_to_number(m.group(0)), text)
    text = _PER_CENT.sub("%", text)
    text = _CURRENCY_SYMBOLS.sub(" ", text)
    text = _CURRENCY_WORDS.sub(" ", text)
    text = _THOUSANDS.sub("", text).lower()
    text = _AM_PM.sub(lambda m: f" {m.group(1)}m ", text)
    text = _DOT_TIME.sub(r"\1:\2", text)
    text = _LEADING_ZERO.sub(r"\1", text)
    text = _ZERO_MINUTES.sub(r"\1", text)
    text = _GLUED.sub(r"\1 \2", text)
    text = _RANGE.sub(r"\1 to \2", text)
    tokens = [_UNIT_WORDS.get(t, t) for t in _TOKEN.findall(text)]
    return " ".join(tokens)


def contains(fact: str, text: str) -> bool:
    """Whether ``text`` states ``fact`` (both normalised; whole tokens, in order)."""
    needle = normalise(fact)
    if not needle:
        return False
    return f" {needle} " in f" {normalise(text)} "


def facts_of(text: str) -> list[str]:
    """The checkable facts ``text`` states: each number (amounts, counts, times, dates'
    days, durations; digits or number words other than "one") and each proper name (a run of
    capitalised words, less a word capitalised because it opens a sentence), normalised,
    without repeats. ``[n]`` citation markers are not facts."""
    text = _MARKERS.sub(". ", text)  # a marker ends a claim: no name runs across it
    out = [t for t in normalise(_ONE.sub(" ", text)).split() if any(c.isdigit() for c in t)]
    for name in proper_names(text):
        normal = normalise(name)
        if normal and not normal.isdigit():
            out.append(normal)
    return list(dict.fromkeys(out))


def proper_names(text: str, *, acronyms: bool = True) -> list[str]:
    """The proper names ``text`` mentions, as written ("Business", "New York"): runs of
    capitalised words, less a word capitalised because it opens a sentence; without
    ``acronyms``, less the words written in capitals only that open them ("API", "SSO"),
    which name a topic rather than a subject."""
    out = []
    for m in _CAPITALISED.finditer(text):
        words = m.group(0).split()
        opens = bool(_SENTENCE_START.search(text[: m.start()]))
        while words and words[0].lower() in _NOT_NAMES:
            words, opens = words[1:], False
        if opens:
            words = words[1:]  # capitalised because it opens a sentence
        while not acronyms and words and (words[0].isupper() or words[0] in ("of", "the")):
            words = words[1:]  # "API of the Ridge": the Ridge
        if words:
            out.append(" ".join(words))
    return out


def missing_facts(text: str, sources: Iterable[str]) -> list[str]:
    """The facts of ``text`` (:func:`facts_of`) that none of ``sources`` states."""
    normalised = [f" {normalise(s)} " for s in sources]
    return [f for f in facts_of(text) if not any(f" {f} " in s for s in normalised)]
