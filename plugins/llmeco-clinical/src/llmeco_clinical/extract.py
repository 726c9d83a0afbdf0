"""Extracting problems, medications and allergies from a (de-identified) note.

Two extractors with one output shape, :class:`Extraction`:

* :func:`extract_rules` — deterministic: drug names from the shipped lexicon (generic, brand,
  abbreviation), the dose and frequency written after each on the same line, problems from
  "Problems/Assessment/Diagnoses/PMH" sections, allergies from "Allergies:" lines and
  "allergic to …". Exact on what it knows, blind to anything else.
* :func:`extraction_spec` — the model fills :data:`SCHEMA` under constrained decoding (the
  engine's JSON-schema grammar), so its answer always parses and always has the shape.

:func:`combine` keeps the rules' items and adds the model's only where they are *grounded*:
the drug's name is written in the note and is a lexicon drug or has a dose right after it;
a problem or allergy is written in the note. A grounded drug's dose and frequency are read
from the note after its name; a dose the rules missed is taken from the model only when the
note has it too. A small model that invents a drug or a dose therefore cannot put it into the
answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from llmeco.apps.spec import PromptSpec
from llmeco.engine.request import SamplingParams, StructuredOutput
from llmeco.errors import InvalidRequest
from llmeco_clinical.lexicon import (
    DOSE,
    Lexicon,
    find_frequency,
    normalise_dose,
    normalise_frequency,
    normalise_name,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "problems": {"type": "array", "items": {"type": "string", "maxLength": 60}, "maxItems": 8},
        "medications": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 40},
                    "dose": {"type": "string", "maxLength": 20},
                    "frequency": {"type": "string", "maxLength": 32},
                },
                "required": ["name", "dose", "frequency"],
                "additionalProperties": False,
            },
            "maxItems": 10,
        },
        "allergies": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 6},
    },
    "required": ["problems", "medications", "allergies"],
    "additionalProperties": False,
}


@dataclass
class Medication:
    """A medication: generic name (when known), dose and canonical frequency ("" if unsaid)."""

    name: str
    dose: str = ""
    frequency: str = ""
    written: str = ""  # the name as the note writes it
    source: str = "rules"  # rules | llm | rules+llm


@dataclass
class Extraction:
    """What one extractor found."""

    problems: list[str] = field(default_factory=list)
    medications: list[Medication] = field(default_factory=list)
    allergies: list[str] = field(default_factory=list)


_SECTION = re.compile(
    r"(?im)^[ \t]*(problems?|problem list|assessment(?: and plan)?|diagnos[ie]s|"
    r"past medical history|pmh|active problems)[ \t]*:[ \t]*(.*)$"
)
_HEADER = re.compile(r"^[ \t]*[A-Za-z][A-Za-z /&]{1,40}:")
_BULLET = re.compile(r"^[ \t]*(?:[-*•]|\d+[.)])[ \t]*")
_ALLERGY_LINE = re.compile(
    r"(?im)(?:^|(?<=[.;] ))[ \t]*(?:drug )?allerg(?:y|ies)[ \t]*:[ \t]*([^\n]*)$"
)
_ALLERGIC_TO = re.compile(r"(?i)\ballergic to ([a-z][a-z -]{1,40}?)(?=[.,;\n(]| and |$)")
_NO_ALLERGY = re.compile(r"(?i)\b(?:nkda|nka|no known (?:drug )?allergies|none known|none)\b")


def _items(text: str) -> list[str]:
    parts = re.split(r"[,;]| and ", text)
    return [p.strip(" .\t-*") for p in parts if p.strip(" .\t-*")]


def _problems(note: str) -> list[str]:
    out: list[str] = []
    lines = note.splitlines()
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if not m:
            continue
        out += _items(m.group(2))
        for nxt in lines[i + 1 :]:
            if not nxt.strip() or (_HEADER.match(nxt) and not _BULLET.match(nxt)):
                break
            out += _items(_BULLET.sub("", nxt))
    return _dedupe(p.lower() for p in out)


def _allergies(note: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Allergies and the character ranges they were read from (not medications)."""
    found: list[str] = []
    ranges = []
    for m in _ALLERGY_LINE.finditer(note):
        ranges.append((m.start(), m.end()))
        value = m.group(1)
        if _NO_ALLERGY.search(value) and not re.search(r"(?i)\ballerg(?:ic|y) to\b", value):
            continue
        found += [re.sub(r"\s*\(.*?\)\s*", "", a).strip() for a in _items(value)]
    for m in _ALLERGIC_TO.finditer(note):
        ranges.append((m.start(), m.end()))
        found += _items(m.group(1))
    return _dedupe(a.lower() for a in found if a), ranges


def _dedupe(items: Any) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
    return list(seen)


def _fields_after(note: str, end: int, stop: int) -> tuple[str, str]:
    """(dose, frequency) written after a drug name ending at ``end``, before ``stop``, the end
    of its line or its sentence, within 80 characters; "" for what is not there."""
    line_end = note.find("\n", end)
    stop = min(stop, len(note) if line_end < 0 else line_end)
    sentence = re.search(r"[.;](?:\s|$)", note[end:stop])
    if sentence:
        stop = end + sentence.start()
    tail = note[end : min(stop, end + 80)]
    dose = DOSE.search(tail)
    freq = find_frequency(tail)
    return (normalise_dose(dose.group()) if dose else "", freq[0] if freq else "")


def extract_rules(note: str, lexicon: Lexicon) -> Extraction:
    """The deterministic extraction of ``note`` (see the module docstring)."""
    allergies, allergy_ranges = _allergies(note)
    meds: dict[str, Medication] = {}
    hits = list(lexicon.pattern.finditer(note))
    for n, m in enumerate(hits):
        drug = lexicon.lookup(m.group(1))
        if drug is None or any(s <= m.start() < e for s, e in allergy_ranges):
            continue
        stop = hits[n + 1].start() if n + 1 < len(hits) else len(note)
        dose, freq = _fields_after(note, m.end(), stop)
        med = meds.get(drug.generic)
        if med is None:
            med = meds[drug.generic] = Medication(drug.generic, written=m.group(1))
        med.dose = med.dose or dose
        med.frequency = med.frequency or freq
    return Extraction(_problems(note), list(meds.values()), allergies)


def extraction_spec(note: str, max_tokens: int) -> PromptSpec:
    """The constrained-decoding prompt: fill :data:`SCHEMA` from ``note``."""
    system = (
        "You extract facts from a clinical note. Answer with JSON: problems (diagnoses), "
        "medications (name, dose, frequency, copied exactly as written) and allergies. "
        "Use only what the note says; leave a list empty when the note says nothing."
    )
    return PromptSpec(
        [{"role": "system", "content": system}, {"role": "user", "content": note}],
        SamplingParams(
            max_tokens=max_tokens,
            temperature=0.0,
            structured=StructuredOutput("json_schema", SCHEMA),
        ),
        parse=parse_llm,
    )


def parse_llm(text: str) -> Extraction:
    """The model's JSON as an :class:`Extraction` (names, doses, frequencies normalised)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:  # constrained decoding: only a max_tokens cut
        raise InvalidRequest(
            "the model's extraction was cut off before it was complete; raise max_tokens",
            param="max_tokens",
        ) from exc
    meds = [
        Medication(
            normalise_name(m["name"]),
            normalise_dose(m["dose"]) if m["dose"].strip() else "",
            normalise_frequency(m["frequency"]) if m["frequency"].strip() else "",
            written=m["name"],
            source="llm",
        )
        for m in data["medications"]
        if m["name"].strip()
    ]
    return Extraction(
        _dedupe(p.strip().lower() for p in data["problems"]),
        meds,
        _dedupe(a.strip().lower() for a in data["allergies"]),
    )


def _written(value: str, note: str) -> bool:
    value = value.strip().lower()
    return len(value) >= 2 and value in note.lower()


def _grounded(med: Medication, note: str, lexicon: Lexicon) -> Medication | None:
    """A model-found drug the rules missed, if its name is written in the note and is a
    lexicon drug or has a dose written right after it; dose and frequency are then read
    from the note after the name (the model's values only where the note has them too)."""
    name = med.written.strip()
    if len(name) < 4:
        return None
    known = lexicon.lookup(name) is not None
    for m in re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w-])", note, re.I):
        dose, freq = _fields_after(note, m.end(), len(note))
        if not (known or DOSE.search(note[m.end() : m.end() + 12])):
            continue
        if not dose and med.dose and _dose_written(med.dose, note):
            dose = med.dose
        return Medication(lexicon.generic(name), dose, freq, m.group(), "llm")
    return None


def _dose_written(dose: str, note: str) -> bool:
    return any(normalise_dose(m.group()) == dose for m in DOSE.finditer(note))


def combine(rules: Extraction, llm: Extraction, note: str, lexicon: Lexicon) -> Extraction:
    """The rules' items plus the model's grounded ones (see the module docstring)."""
    meds = {
        m.name: Medication(m.name, m.dose, m.frequency, m.written, m.source)
        for m in rules.medications
    }
    allergy_names = {lexicon.generic(a) for a in rules.allergies}
    for m in llm.medications:
        generic = lexicon.generic(m.name)
        if generic in allergy_names:
            continue
        mine = meds.get(generic)
        if mine is None:
            found = _grounded(m, note, lexicon)
            if found is not None:
                meds[found.name] = found
            continue
        if not mine.dose and m.dose and _dose_written(m.dose, note):
            mine.dose, mine.source = m.dose, "rules+llm"
    problems = rules.problems + [
        p for p in llm.problems if p not in rules.problems and _written(p, note)
    ]
    allergies = rules.allergies + [
        a for a in llm.allergies if a not in rules.allergies and _written(a, note)
    ]
    return Extraction(problems, list(meds.values()), allergies)
