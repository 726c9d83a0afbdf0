"""Cleaning: Unicode/whitespace normalisation, PII redaction and quality rules.

PII redaction is the governance package's (:mod:`llmeco.governance.redact`: emails, phones,
Luhn-checked cards, checksummed IBANs, IPs, SSN/NINO, secrets), so datasets, logs and the
audit ledger share one definition of what is personal.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalize_text(text: str) -> str:
    """NFC, no control characters, single spaces, trimmed lines, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def redact_pii(text: str) -> tuple[str, Counter[str]]:
    """``text`` with PII replaced by typed placeholders (``[EMAIL]``, ``[CARD]`` …), and how
    many of each kind (lower-case kind names: ``email``, ``phone``, ``card``, ``iban`` …)."""
    from llmeco.governance.redact import redact_counts

    out, counts = redact_counts(text)
    return out, Counter({kind.lower(): n for kind, n in counts.items()})


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
