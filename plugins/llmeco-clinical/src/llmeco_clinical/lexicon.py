"""The shipped drug lexicon and interaction table, and name/dose/frequency normalisation.

``data/drugs.csv``: one generic name per row with its classes (``ssri``, ``nsaid`` …) and
synonyms (brand names, abbreviations). ``data/interactions.csv``: pairs of generic names or
classes with a severity and a plain-language warning. Both are small on purpose: they are
what the deterministic extractor and the interaction check know, nothing more.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def data_dir() -> Path:
    """``LLMECO_CLINICAL_DATA`` if set, else the data shipped with this package."""
    env = os.environ.get("LLMECO_CLINICAL_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class Drug:
    """A generic drug with its classes and the names it is written as."""

    generic: str
    classes: frozenset[str]
    names: tuple[str, ...]  # generic first, then synonyms, lower case


@dataclass(frozen=True)
class Interaction:
    """A dangerous combination: two generic names or classes."""

    a: str
    b: str
    severity: str
    warning: str


class Lexicon:
    """Drugs by every name they go by, and the interaction table."""

    def __init__(self, drugs: list[Drug], interactions: list[Interaction]) -> None:
        self.drugs = {d.generic: d for d in drugs}
        self.by_name = {name: d for d in drugs for name in d.names}
        self.interactions = interactions
        names = sorted(self.by_name, key=len, reverse=True)  # longest first: "potassium chloride"
        self.pattern = re.compile(
            r"(?<![\w-])(" + "|".join(re.escape(n) for n in names) + r")(?![\w-])", re.I
        )

    def lookup(self, name: str) -> Drug | None:
        """The drug ``name`` (generic, brand or abbreviation, any case) is; None if unknown."""
        return self.by_name.get(normalise_name(name))

    def generic(self, name: str) -> str:
        """The generic name of ``name`` if known, else ``name`` normalised."""
        drug = self.lookup(name)
        return drug.generic if drug else normalise_name(name)


def normalise_name(name: str) -> str:
    """Lower case, single spaces, no trailing punctuation or dose/route words."""
    name = re.sub(r"\s+", " ", name.strip().lower()).strip(" .,;:")
    name = re.sub(r"\s+(?:tablets?|tabs?|capsules?|caps?|po|oral|er|xr|sr)$", "", name)
    return name


@lru_cache(maxsize=4)
def load(folder: Path | None = None) -> Lexicon:
    """The lexicon and interaction table from ``folder`` (default: :func:`data_dir`)."""
    base = folder or data_dir()
    drugs = []
    with (base / "drugs.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            generic = normalise_name(row["generic"])
            synonyms = [normalise_name(s) for s in row["synonyms"].split(";") if s.strip()]
            classes = frozenset(c.strip() for c in row["classes"].split(";") if c.strip())
            drugs.append(Drug(generic, classes, (generic, *synonyms)))
    interactions = []
    with (base / "interactions.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            interactions.append(
                Interaction(row["a"].strip(), row["b"].strip(), row["severity"], row["warning"])
            )
    return Lexicon(drugs, interactions)


_UNITS = {"mcg": "mcg", "µg": "mcg", "ug": "mcg", "mg": "mg", "g": "g", "ml": "mL",
          "unit": "units", "units": "units", "iu": "units", "meq": "mEq", "%": "%"}  # fmt: skip
DOSE = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?)\s*(mcg|µg|ug|mg|g|ml|units?|iu|meq|%)(?!\w)",
    re.I,
)


def normalise_dose(dose: str) -> str:
    """``"5mg"``, ``"5 MG"`` → ``"5 mg"``; text that is not a dose comes back stripped."""
    m = DOSE.search(dose)
    if not m:
        return " ".join(dose.split()).lower()
    amount = re.sub(r"\s+", "", m.group(1))
    return f"{amount} {_UNITS[m.group(2).lower()]}"


#: Frequency phrases (regex) and their canonical form, most specific first.
FREQUENCIES: tuple[tuple[str, str], ...] = (
    (r"four times (?:a |per )?day|four times daily|q\.?i\.?d\.?|qid", "four times daily"),
    (r"three times (?:a |per )?day|three times daily|t\.?i\.?d\.?|tid", "three times daily"),
    (r"twice (?:a |per )?day|twice daily|two times (?:a )?day|b\.?i\.?d\.?|bid", "twice daily"),
    (r"every (\d+) (?:to \d+ )?hours?|q\.?(\d+)\s?h\.?", "every {n} hours"),
    (r"at bedtime|nightly|every night|at night|q\.?h\.?s\.?|qhs", "at bedtime"),
    (r"every morning|each morning|in the morning|q\.?a\.?m\.?", "every morning"),
    (r"once weekly|once a week|every week|weekly", "weekly"),
    (r"every other day|alternate days|q\.?o\.?d\.?", "every other day"),
    (r"once (?:a |per )?day|once daily|daily|every day|q\.?d\.?|qd|od", "once daily"),
    (r"as needed|when needed|p\.?r\.?n\.?|prn", "as needed"),
)
_FREQ = [(re.compile(rf"(?<!\w)(?:{pat})(?!\w)", re.I), canon) for pat, canon in FREQUENCIES]


def find_frequency(text: str) -> tuple[str, int, int] | None:
    """The first frequency phrase in ``text``: (canonical form, start, end), or None.

    "as needed" after a schedule is kept with it ("every 6 hours as needed").
    """
    best: tuple[str, int, int] | None = None
    for pattern, canon in _FREQ:
        m = pattern.search(text)
        if m and (best is None or m.start() < best[1]):
            n = next((g for g in m.groups() if g), None)
            best = (canon.format(n=n), m.start(), m.end())
    if best is None:
        return None
    if best[0] != "as needed":
        tail = text[best[2] : best[2] + 16]
        prn = _FREQ[-1][0].search(tail)
        if prn and prn.start() <= 3:
            return (f"{best[0]} as needed", best[1], best[2] + prn.end())
    return best


def normalise_frequency(text: str) -> str:
    """The canonical form of a frequency phrase (the text lower-cased when unknown)."""
    found = find_frequency(text)
    return found[0] if found else " ".join(text.split()).lower()
