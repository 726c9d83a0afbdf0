"""Flags for dangerous combinations in a medication list, from the shipped table.

Each medication is matched by its generic name (brands and abbreviations normalised by the
lexicon) and by its classes; a table row ``a, b`` fires for two different medications when
one is (or belongs to) ``a`` and the other ``b``. One flag per pair of medications: the first
matching row in the table, which lists specific pairs before class-wide ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmeco_clinical.lexicon import Interaction, Lexicon


@dataclass(frozen=True)
class Flag:
    """A dangerous combination found in the list."""

    drugs: tuple[str, str]
    severity: str
    warning: str
    rule: tuple[str, str]


def _identities(name: str, lexicon: Lexicon) -> set[str]:
    drug = lexicon.lookup(name)
    if drug is None:
        return {name.lower()}
    return {drug.generic, *drug.classes}


def check(names: list[str], lexicon: Lexicon) -> list[Flag]:
    """Every flagged pair among ``names`` (generic or brand names)."""
    ids = [(lexicon.generic(n), _identities(n, lexicon)) for n in names]
    flags = []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            (g1, s1), (g2, s2) = ids[i], ids[j]
            if g1 == g2:
                continue
            row = _first(lexicon.interactions, s1, s2)
            if row is not None:
                flags.append(Flag((g1, g2), row.severity, row.warning, (row.a, row.b)))
    return flags


def _first(rows: list[Interaction], s1: set[str], s2: set[str]) -> Interaction | None:
    for row in rows:
        if (row.a in s1 and row.b in s2) or (row.a in s2 and row.b in s1):
            return row
    return None
