"""Plain-language summaries of a note, and the not-medical-advice statement every answer has."""

from __future__ import annotations

from llmeco.apps.spec import PromptSpec
from llmeco.engine.request import SamplingParams
from llmeco_clinical.extract import Extraction
from llmeco_clinical.interactions import Flag

DISCLAIMER = (
    "This is not medical advice: it is an automated reading of the note and may be wrong; "
    "check every detail with a qualified clinician."
)


def with_disclaimer(summary: str) -> str:
    """``summary`` followed by :data:`DISCLAIMER` (added once)."""
    summary = summary.strip()
    if DISCLAIMER in summary:
        return summary
    return f"{summary} {DISCLAIMER}".strip()


def summary_spec(note: str, max_tokens: int) -> PromptSpec:
    """The prompt for a 2–3 sentence plain-language summary of the (de-identified) note."""
    system = (
        "Summarize the clinical note for the patient in two or three short sentences of plain "
        "language: why they were seen, their conditions, their medicines and allergies. "
        "Do not give advice."
    )
    return PromptSpec(
        [{"role": "system", "content": system}, {"role": "user", "content": note}],
        SamplingParams(max_tokens=max_tokens, temperature=0.0),
        parse=lambda text: " ".join(text.split()),
    )


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def template_summary(extraction: Extraction, flags: list[Flag]) -> str:
    """A summary written from the extracted facts alone (no model)."""
    parts = []
    if extraction.problems:
        parts.append(f"The note lists {_join(extraction.problems)}.")
    meds = [" ".join(x for x in (m.name, m.dose, m.frequency) if x) for m in extraction.medications]
    if meds:
        parts.append(f"The patient takes {_join(meds)}.")
    if extraction.allergies:
        parts.append(f"The patient is allergic to {_join(extraction.allergies)}.")
    else:
        parts.append("No allergies are recorded.")
    parts += [f"Warning: {f.warning}" for f in flags]
    return " ".join(parts)


def lead_sentences(note: str, n: int = 3) -> str:
    """The first ``n`` sentences of the note's prose (the benchmark's baseline summary)."""
    import re

    prose = " ".join(line for line in note.splitlines() if len(line.split()) > 6)
    sentences = re.split(r"(?<=[.!?])\s+", prose)
    return " ".join(sentences[:n])
