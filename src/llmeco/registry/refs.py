"""Registry model references: ``NAME@alias`` and ``NAME:version``.

Kept free of heavy imports so a reference can be told from a path cheaply (the CLI and
:func:`llmeco.registry.checkout.resolve_local` do). ``NAME@latest`` is the highest version;
``latest`` cannot be set as an alias. Only a numeric part after ``:`` makes a version
reference, so ``support:handbook`` (the support assistant's model names) is never mistaken
for one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmeco.errors import InvalidRequest

_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
NAME_RE = re.compile(rf"^{_PART}$")
REF_RE = re.compile(rf"^(?P<name>{_PART})(?:@(?P<alias>{_PART})|:(?P<version>[0-9]{{1,9}}))$")

#: The pseudo-alias that always means "the highest version".
LATEST = "latest"


@dataclass(frozen=True)
class ModelRef:
    """A parsed registry reference: exactly one of ``alias`` and ``version`` is set."""

    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        return (
            f"{self.name}@{self.alias}" if self.alias is not None else f"{self.name}:{self.version}"
        )


def parse_ref(ref: str) -> ModelRef | None:
    """The registry reference ``ref`` spells, or None when it is not one (a path, ``default``)."""
    match = REF_RE.match(ref)
    if match is None:
        return None
    version = match.group("version")
    return ModelRef(match.group("name"), match.group("alias"), int(version) if version else None)


def check_name(value: str, what: str = "model name") -> str:
    """``value`` when it is a valid model or alias name (letters, digits, ``.``, ``_``, ``-``;
    starting with a letter or digit; at most 128 characters), else :class:`InvalidRequest`.

    Names become directory names under ``LLMECO_HOME/registry``, so the rule also keeps them
    from ever naming a path outside it.
    """
    if not NAME_RE.match(value):
        raise InvalidRequest(
            f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, at most 128 characters"
        )
    return value
