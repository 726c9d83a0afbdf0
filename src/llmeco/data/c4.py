"""C4's line and page rules (Raffel et al. 2020, section 2.2; TF Datasets' ``c4_utils``).

Lines are kept only when they end in terminal punctuation (not an ellipsis), have at least
three words, no word over 1000 characters, and do not mention "javascript" or a
cookie/terms/privacy policy; Wikipedia-style citation marks (``[1]``, ``[edit]``) are cut
out. A page is dropped if it says "lorem ipsum", contains a curly brace, or keeps fewer
than five sentences. The defaults are the paper's (as HF ``datatrove`` ships them); each
rule can be turned off.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from llmeco.data.text import count_sentences, split_words

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


class C4Config(BaseModel):
    """Which of C4's rules run, and their sizes."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="Run this filter.")
    remove_citations: bool = Field(default=True, description="Cut [1], [edit] marks.")
    filter_no_terminal_punct: bool = Field(
        default=True, description="Drop lines not ending in . ? ! or a quote (or in ...)."
    )
    min_num_sentences: int = Field(
        default=5, description="Drop pages with fewer sentences left (-1: off)."
    )
    min_words_per_line: int = Field(default=3, description="Drop lines with fewer words.")
    max_word_length: int = Field(
        default=1000, description="Drop lines with a longer word (-1: off)."
    )
    filter_lorem_ipsum: bool = Field(default=True, description="Drop pages with lorem ipsum.")
    filter_javascript: bool = Field(default=True, description="Drop lines naming javascript.")
    filter_curly_bracket: bool = Field(default=True, description="Drop pages with a '{'.")
    filter_policy: bool = Field(default=True, description="Drop cookie/terms/privacy lines.")


@dataclass
class LineDrops:
    """Lines a line-level step removed from one document: how many and their characters,
    by rule."""

    lines: Counter[str] = field(default_factory=Counter)
    chars: Counter[str] = field(default_factory=Counter)

    def add(self, rule: str, line: str) -> None:
        """Count ``line`` as removed by ``rule``."""
        self.lines[rule] += 1
        self.chars[rule] += len(line) + 1


def c4_filter(text: str, cfg: C4Config) -> tuple[str, str | None, LineDrops]:
    """``text`` with C4's line rules applied, the page rule it breaks (or None), and the
    lines removed."""
    drops = LineDrops()
    kept: list[str] = []
    sentences = 0
    need = cfg.min_num_sentences
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split()
        if cfg.max_word_length != -1 and any(len(w) > cfg.max_word_length for w in words):
            drops.add("too_long_word", raw)
            continue
        if cfg.remove_citations:
            line = CITATION.sub("", line)
        if cfg.filter_no_terminal_punct and (
            not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)
        ):
            drops.add("no_terminal_punct", raw)
            continue
        if len(words) < cfg.min_words_per_line:
            drops.add("too_few_words", raw)
            continue
        lower = line.lower()
        if cfg.filter_lorem_ipsum and "lorem ipsum" in lower:
            return text, "lorem_ipsum", drops
        if cfg.filter_javascript and "javascript" in lower:
            drops.add("javascript", raw)
            continue
        if cfg.filter_curly_bracket and "{" in line:
            return text, "curly_bracket", drops
        if cfg.filter_policy and any(p in lower for p in POLICY_SUBSTRINGS):
            drops.add("policy", raw)
            continue
        if need != -1 and sentences < need:
            sentences += count_sentences(split_words(line), stop_at=need - sentences)
        kept.append(line)
    if need != -1 and sentences < need:
        return text, "too_few_sentences", drops
    return "\n".join(kept).strip(), None, drops
