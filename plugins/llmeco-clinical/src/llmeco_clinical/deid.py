"""De-identification of clinical notes: the governance redactor plus clinical identifiers.

The built-in redactor (:mod:`llmeco.governance.redact`) finds e-mails, phone numbers, national
ids, cards … but knows nothing of clinical notes. These rules add, as
:class:`~llmeco.plugins.specs.RedactionRuleSpec` s; all but DATE are registered through the
``register_redaction_rules`` hook, so the audit ledger and logs redact them too (DATE only
applies to notes: see :data:`RULES`):

========  ==========  ============================================================================
kind      written     rule
========  ==========  ============================================================================
MRN       [MRN]       the id after "MRN", "MR#", "medical record number/no./#", "chart #"
DOB       [DOB]       a date after "DOB", "D.O.B.", "date of birth", "born (on)"
DATE      [DATE]      any other full date: 03/14/2024, 2024-03-14, 14-03-2024, March 14, 2024,
                      14 March 2024, Mar. 14 2024 (a year or month alone is kept)
NAME      [NAME]      the name after a header label ("Patient:", "Name:", "Attending:",
                      "Provider:", "Seen by:", "Signed:", "Emergency contact:" …), after "Dr",
                      "Mr", "Mrs", "Ms", "Miss", and after "husband", "daughter" …; then
                      every later whole-word use of those names' words anywhere in the note
                      (a surname alone, a first name alone)
ADDRESS   [ADDRESS]   the rest of an "Address:" line; a street address (number + capitalised
                      words + Street/St/Road/Avenue/Lane/Drive/…, with town, state and ZIP)
PHONE     [PHONE]     the value after "Phone", "Tel", "Cell", "Mobile", "Fax", "Pager" labels
                      (the built-in rule catches most numbers; this one the short local ones)
========  ==========  ============================================================================

:func:`deidentify` runs the built-in detectors and these rules together (overlaps resolved
by priority, then length), so it works the same whether or not the hook registry has
already merged the rules into the built-in redactor.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from llmeco.governance import redact as base
from llmeco.plugins.specs import RedactionRuleSpec

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
DATE_TEXT = (
    r"(?:\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})"
    r"|\d{4}-\d{1,2}-\d{1,2}"
    r"|\d{1,2}[-.]\d{1,2}[-.]\d{4}"
    rf"|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS},?\s+\d{{4}})"
)
_DATE = re.compile(rf"(?<![\w/.-]){DATE_TEXT}(?![\w/]|-\d)")
_DOB = re.compile(
    rf"(?i:\b(?:d\.?o\.?b\.?|date of birth|birth ?date|born(?: on)?))\s*[:#-]?\s*({DATE_TEXT})"
)
_MRN = re.compile(
    r"(?i:\b(?:MRN|MR ?#|MR no\.?|medical record (?:number|no\.?|#)|chart (?:number|no\.?|#)|"
    r"patient id|hospital (?:number|no\.?)))\s*[:#]?\s*([A-Z]{0,3}-?\d[\d-]{3,14}\d)\b"
)
_WORD = r"[A-Z][a-zA-Z'’-]+"
_NAME = rf"{_WORD}(?:\s+[A-Z]\.)?(?:[ \t]+{_WORD}){{0,2}}"
_LABELS = (
    r"patient(?: name)?|pt(?: name)?|name|attending(?: physician)?|physician|provider|"
    r"clinician|doctor|surgeon|nurse|np|pa|pcp|primary care(?: physician)?|gp|"
    r"referring(?: physician| doctor)?|referred by|seen by|signed(?: by)?|author|dictated by|"
    r"electronically signed by|emergency contact|next of kin|contact|guardian|parent|spouse|"
    r"cc"
)
_LABELLED_NAME = re.compile(
    rf"(?im:^[ \t]*(?:{_LABELS})[ \t]*[:\-][ \t]*)(?:(?:Dr|Mr|Mrs|Ms|Miss|Prof)\.?[ \t]+)?({_NAME})"
)
_TITLED_NAME = re.compile(rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof)\.?[ \t]+({_NAME})")
_RELATIVE_NAME = re.compile(
    r"\b(?:husband|wife|partner|spouse|son|daughter|mother|father|brother|sister|"
    rf"grandson|granddaughter|friend|carer|caregiver|neighbou?r)[ \t]+({_NAME})"
)
_STREET_TYPES = (
    r"Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Boulevard|Blvd|Court|Ct|Way|Place|Pl|"
    r"Terrace|Close|Crescent|Square|Parkway|Highway|Hwy"
)
_STREET = re.compile(
    rf"\b\d{{1,5}}[ \t]+(?:{_WORD}[ \t]+){{1,3}}(?:{_STREET_TYPES})\b\.?"
    r"(?:(?:,[ \t]*|[ \t]+)(?:Apt|Unit|Suite|Flat)\.?[ \t]*\w+)?"
    rf"(?:,[ \t]*{_WORD}(?:[ \t]+{_WORD})?)?"
    r"(?:,?[ \t]*[A-Z]{2}[ \t]+\d{5}(?:-\d{4})?)?"
)
_ADDRESS_LINE = re.compile(r"(?im:^[ \t]*(?:home )?address[ \t]*:[ \t]*)(\S[^\n]*?)[ \t]*$")
_PHONE_LABEL = re.compile(
    r"(?i:\b(?:phone|tel|telephone|cell|mobile|fax|pager|contact number))\s*(?:no\.?|#)?\s*[:#]"
    r"\s*(\+?[\d(][\d ()./-]{5,18}\d)"
)
#: Words that follow a title or label but are not names.
_NOT_NAMES_TEXT = (
    "The A An And Or Of On In At To For With Patient Note Notes Unknown None Not Name Date "
    "History Plan Assessment Follow Hospital Clinic Medicine Internal Emergency Department "
    "Office Visit Today Yesterday He She They His Her"
)
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())


def _groups(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [(m.start(1), m.end(1)) for m in pattern.finditer(text)]


def _trim_name(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Drop trailing/leading non-name words; None when nothing name-like is left."""
    words = list(re.finditer(r"\S+", text[start:end]))
    while words and words[-1].group().rstrip(".,") in _NOT_NAMES:
        words.pop()
    while words and words[0].group().rstrip(".,") in _NOT_NAMES:
        words.pop(0)
    if not words:
        return None
    return start + words[0].start(), start + words[-1].end()


def detect_mrn(text: str) -> list[tuple[int, int]]:
    """Medical record numbers after their label."""
    return _groups(_MRN, text)


def detect_dob(text: str) -> list[tuple[int, int]]:
    """Dates of birth after their label."""
    return _groups(_DOB, text)


def detect_dates(text: str) -> list[tuple[int, int]]:
    """Every full date (the DOB rule outranks this one where both match)."""
    return [(m.start(), m.end()) for m in _DATE.finditer(text)]


def detect_names(text: str) -> list[tuple[int, int]]:
    """Names after header labels and titles, then every later use of their words."""
    spans = []
    for pattern in (_LABELLED_NAME, _TITLED_NAME, _RELATIVE_NAME):
        for m in pattern.finditer(text):
            trimmed = _trim_name(text, m.start(1), m.end(1))
            if trimmed is not None:
                spans.append(trimmed)
    words = {
        w.strip(".,")
        for s, e in spans
        for w in text[s:e].split()
        if len(w.strip(".,")) > 2 and w.strip(".,") not in _NOT_NAMES
    }
    if words:
        again = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(words)) + r")\b")
        spans += [(m.start(), m.end()) for m in again.finditer(text)]
    return spans


def detect_addresses(text: str) -> list[tuple[int, int]]:
    """Address lines and street addresses."""
    return _groups(_ADDRESS_LINE, text) + [(m.start(), m.end()) for m in _STREET.finditer(text)]


def detect_labelled_phones(text: str) -> list[tuple[int, int]]:
    """Numbers after a phone label."""
    return _groups(_PHONE_LABEL, text)


#: The clinical rules, in the form the plugin hook hands them to the redactor.
#: The rules the plugin registers with the governance redactor (``register_redaction_rules``):
#: each is anchored on a label or title, so logs, audit bodies and prompts everywhere get
#: them without losing ordinary text. Priorities sit between the built-ins' national ids
#: (SSN 4, NINO 5) and their looser IP and phone patterns (6–8), so an MRN or a date of
#: birth is never labelled a phone number.
GLOBAL_RULES: tuple[RedactionRuleSpec, ...] = (
    RedactionRuleSpec("MRN", "[MRN]", detect_mrn, 5, "medical record numbers after a label"),
    RedactionRuleSpec("DOB", "[DOB]", detect_dob, 5, "dates of birth after a label"),
    RedactionRuleSpec("ADDRESS", "[ADDRESS]", detect_addresses, 6, "address lines, streets"),
    RedactionRuleSpec("NAME", "[NAME]", detect_names, 6, "names in headers and after titles"),
    RedactionRuleSpec("PHONE", "[PHONE]", detect_labelled_phones, 8, "numbers after a phone label"),
)
#: What a clinical note gets: the global rules plus every full date (a visit or admission
#: date identifies a patient in a note; in a log line it is only a timestamp, so this rule
#: stays out of the server-wide redactor).
RULES: tuple[RedactionRuleSpec, ...] = (
    *GLOBAL_RULES,
    RedactionRuleSpec("DATE", "[DATE]", detect_dates, 6, "full dates"),
)


@dataclass(frozen=True)
class PhiSpan:
    """One identifier found in a note: ``text[start:end]`` is a ``kind``."""

    start: int
    end: int
    kind: str
    placeholder: str


def find(text: str, *, clinical: bool = True) -> list[PhiSpan]:
    """Every identifier in ``text`` (the built-in kinds, plus the clinical ones unless
    ``clinical`` is false), left to right, without overlaps: the lower priority wins, then
    the longer span — the redactor's own rule."""
    rules = base.builtin_rules() + (list(RULES) if clinical else [])
    candidates: list[tuple[int, PhiSpan]] = []
    for rule in rules:
        for start, end in rule.detect(text):
            if 0 <= start < end <= len(text):
                span = PhiSpan(start, end, rule.kind, rule.placeholder)
                candidates.append((rule.priority, span))
    candidates.sort(key=lambda c: (c[0], c[1].start - c[1].end, c[1].start))
    taken: list[PhiSpan] = []
    for _, span in candidates:
        if all(span.end <= o.start or span.start >= o.end for o in taken):
            taken.append(span)
    return sorted(taken, key=lambda s: s.start)


def deidentify(text: str, *, clinical: bool = True) -> tuple[str, list[PhiSpan]]:
    """``text`` with every identifier replaced by its placeholder, and the spans found."""
    spans = find(text, clinical=clinical)
    out: list[str] = []
    pos = 0
    for span in spans:
        out.append(text[pos : span.start])
        out.append(span.placeholder)
        pos = span.end
    out.append(text[pos:])
    return "".join(out), spans


def counts(spans: list[PhiSpan]) -> dict[str, int]:
    """How many identifiers of each kind."""
    return dict(Counter(s.kind for s in spans))
