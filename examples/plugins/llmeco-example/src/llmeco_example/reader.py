"""Org-mode files → records: ``* Heading`` lines become Markdown headings.

Converting to Markdown first means llmeco's knowledge bases keep the heading structure
(citations name the section) and ``llmeco data`` splits on the same blank-line blocks as
for ``.md`` files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from llmeco.errors import ConfigError

_HEADING = re.compile(r"^(\*+)\s+(.*)$")
_DIRECTIVE = re.compile(r"^#\+\w+:.*$")


def org_to_markdown(text: str) -> str:
    """Headings to ``#``, ``#+TITLE:``-style directives dropped, the rest as is."""
    out: list[str] = []
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            out.append("#" * min(len(heading.group(1)), 6) + " " + heading.group(2).strip())
        elif not _DIRECTIVE.match(line):
            out.append(line)
    return "\n".join(out)


def read_org(path: Path) -> list[dict[str, Any]]:
    """One ``{"text", "source"}`` record per blank-line separated block."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    blocks = [b.strip() for b in org_to_markdown(raw).split("\n\n")]
    return [{"text": b, "source": path.name} for b in blocks if b]
