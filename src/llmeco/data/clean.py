"""Cleaning: Unicode/whitespace normalisation, a small PII redactor and quality rules.

The redactor is local and deliberately conservative (emails, phone numbers, IBANs and
card-like digit runs); the governance package's redactor can replace it later through
:func:`redact_pii`'s signature (text in → text and counts out).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
PHONE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{7,}\d\b")

#: Placeholder written for each kind of PII.
PLACEHOLDERS = {"email": "[EMAIL]", "iban": "[IBAN]", "card": "[CARD]", "phone": "[PHONE]"}


def normalize_text(text: str) -> str:
    """NFC, no control characters, single spaces, trimmed lines, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def redact_pii(text: str) -> tuple[str, Counter[str]]:
    """``text`` with emails, IBANs, card numbers and phone numbers replaced by placeholders.

    Order matters: IBANs and cards are long digit runs that the phone rule would also match.
    Returns the new text and how many of each kind were replaced.
    """
    counts: Counter[str] = Counter()
    for kind, pattern in (("email", EMAIL), ("iban", IBAN), ("card", CARD), ("phone", PHONE)):

        def _sub(match: re.Match[str], kind: str = kind) -> str:
            if kind == "phone" and sum(c.isdigit() for c in match.group()) < 8:
                return match.group()
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        text = pattern.sub(_sub, text)
    return text, counts


def quality_problem(text: str, min_chars: int, min_letter_ratio: float) -> str | None:
    """Why ``text`` should be dropped (``"empty"``, ``"too_short"``, ``"non_letter"``), or None.

    The letter ratio counts alphabetic characters among the non-space ones, so tables of
    numbers, separators and markup debris are dropped while ordinary prose passes.
    """
    stripped = text.strip()
    if not stripped:
        return "empty"
    if len(stripped) < min_chars:
        return "too_short"
    visible = [c for c in stripped if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if letters / len(visible) < min_letter_ratio:
        return "non_letter"
    return None
