"""FineWeb's extra document rules (Penedo et al. 2024, "The FineWeb Datasets", section 3.3).

Found by comparing what C4 removes with what Gopher keeps: drop a page when under 12% of
its lines end in terminal punctuation, over 67% of its lines are at most 30 characters,
duplicated lines hold over 1% of its characters, or it has more than 0.3 newlines per word
(lists). Defaults are the paper's (as HF ``datatrove`` ships them), each overridable.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from llmeco.data.gopher import find_duplicates
from llmeco.data.text import TERMINAL_PUNCTUATION

_STOP_CHARS = tuple(sorted(TERMINAL_PUNCTUATION))


class FineWebConfig(BaseModel):
    """FineWeb's thresholds."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="Run this filter.")
    line_punct_thr: float = Field(
        default=0.12, description="Least share of lines ending in terminal punctuation."
    )
    line_punct_exclude_zero: bool = Field(
        default=False, description="Keep pages where no line ends in punctuation."
    )
    short_line_thr: float = Field(default=0.67, description="Most share of short lines.")
    short_line_length: int = Field(default=30, description="A short line has ≤ this many chars.")
    char_duplicates_ratio: float = Field(
        default=0.01, description="Most share of characters in duplicated lines."
    )
    new_line_ratio: float = Field(default=0.3, description="Most newlines per word.")


def fineweb_quality(text: str, words: list[str], cfg: FineWebConfig) -> str | None:
    """The first FineWeb rule ``text`` breaks (``words`` are its tokens), or None."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return "empty"
    ratio = sum(line.endswith(_STOP_CHARS) for line in lines) / len(lines)
    if ratio < cfg.line_punct_thr and not (ratio == 0 and cfg.line_punct_exclude_zero):
        return "line_punct_ratio"
    ratio = sum(len(line) <= cfg.short_line_length for line in lines) / len(lines)
    if ratio > cfg.short_line_thr:
        return "short_line_ratio"
    chars = len(text) - text.count("\n")
    if chars and find_duplicates(lines)[1] / chars > cfg.char_duplicates_ratio:
        return "char_dup_ratio"
    if not words or text.count("\n") / len(words) > cfg.new_line_ratio:
        return "list_ratio"
    return None
