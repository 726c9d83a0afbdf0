"""Gopher's document filters (Rae et al. 2021, "Scaling Language Models", appendix A1).

*Repetition*: a page is dropped when too much of it repeats: duplicate lines and paragraphs
(by count and by characters), the most frequent 2/3/4-gram covering too many characters,
or repeated 5…10-grams covering too many characters. *Quality*: word count, mean word
length, ``#``/ellipsis-to-word ratios, bullet and ellipsis line ratios, the share of words
with a letter, and at least two English stop words.

Thresholds default to the paper's (table A1), as HF ``datatrove`` ships them; each is
overridable, and ``None`` turns one rule off. A check returns the first rule a document
breaks (datatrove's reason names) or None.

The n-gram rules are computed over integer ids of the words: n-grams become 64-bit rolling
hashes, the top n-gram comes from one ``numpy.unique``, and the duplicate 5…10-gram scan
runs only for documents that repeat a 5-gram at all (a repeated 6-gram contains a repeated
5-gram), so ordinary prose costs one sort.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmeco.data.text import PUNCTUATION_SET

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
_PRIME = np.uint64(0x9E3779B97F4A7C15)
STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")


class GopherRepetitionConfig(BaseModel):
    """Gopher repetition thresholds (fractions above which a document is dropped)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="Run this filter.")
    dup_line_frac: float | None = Field(default=0.3, description="Duplicate lines / lines.")
    dup_para_frac: float | None = Field(default=0.3, description="Duplicate paragraphs / all.")
    dup_line_char_frac: float | None = Field(
        default=0.2, description="Characters in duplicate lines / characters."
    )
    dup_para_char_frac: float | None = Field(
        default=0.2, description="Characters in duplicate paragraphs / characters."
    )
    top_n_grams: list[tuple[int, float]] = Field(
        default=[(2, 0.2), (3, 0.18), (4, 0.16)],
        description="(n, fraction): characters of the most frequent n-gram × its count.",
    )
    dup_n_grams: list[tuple[int, float]] = Field(
        default=[(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        description="(n, fraction): characters in repeated n-grams.",
    )


class GopherQualityConfig(BaseModel):
    """Gopher quality thresholds."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="Run this filter.")
    min_doc_words: int | None = Field(default=50, description="Fewest non-symbol words.")
    max_doc_words: int | None = Field(default=100_000, description="Most non-symbol words.")
    min_avg_word_length: float | None = Field(default=3, description="Least mean word length.")
    max_avg_word_length: float | None = Field(default=10, description="Most mean word length.")
    max_symbol_word_ratio: float | None = Field(
        default=0.1, description="Most '#' (and, apart, ellipses) per word."
    )
    max_bullet_lines_ratio: float | None = Field(
        default=0.9, description="Most lines starting with a bullet."
    )
    max_ellipsis_lines_ratio: float | None = Field(
        default=0.3, description="Most lines ending with an ellipsis."
    )
    max_non_alpha_words_ratio: float | None = Field(
        default=0.8, description="Least share of words with a letter (the name is Gopher's)."
    )
    min_stop_words: int | None = Field(default=2, description="Fewest distinct stop words.")
    stop_words: list[str] = Field(default=list(STOP_WORDS), description="The stop words.")


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """How many of ``items`` repeat an earlier one, and their characters."""
    seen: set[str] = set()
    elements = chars = 0
    for item in items:
        if item in seen:
            elements += 1
            chars += len(item)
        else:
            seen.add(item)
    return elements, chars


def _word_ids(words: list[str]) -> np.ndarray:
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words), start=1)}
    return np.fromiter(map(vocab.__getitem__, words), np.uint64, len(words))


def _ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """64-bit polynomial hash of every n-gram of ``ids`` (wrapping arithmetic)."""
    h = ids[: len(ids) - n + 1].copy()
    for k in range(1, n):
        h *= _PRIME
        h += ids[k : len(ids) - n + 1 + k]
    return h


def _top_ngram_chars(hashes: np.ndarray, lengths: np.ndarray, n: int) -> int:
    """Characters of the most frequent n-gram (words joined by spaces) times its count;
    among equally frequent ones the first seen, as ``Counter.most_common`` picks."""
    _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    top = counts.max()
    start = int(first[counts == top].min())
    return int(top) * (int(lengths[start : start + n].sum()) + n - 1)


def _repeated_chars(hashes: list[int], cum: np.ndarray, n: int) -> int:
    """Characters in repeated n-grams, scanning left to right and jumping past each repeat."""
    seen: set[int] = set()
    total, idx, end = 0, 0, len(hashes)
    while idx < end:
        h = hashes[idx]
        if h in seen:
            total += int(cum[idx + n] - cum[idx])
            idx += n
        else:
            seen.add(h)
            idx += 1
    return total


def gopher_repetition(text: str, words: list[str], cfg: GopherRepetitionConfig) -> str | None:
    """The first repetition rule ``text`` breaks (``words`` are its tokens), or None."""
    if not text:
        return "empty"
    size = len(text)
    paragraphs = _PARAGRAPHS.split(text.strip())
    dups, chars = find_duplicates(paragraphs)
    if cfg.dup_para_frac and dups / len(paragraphs) > cfg.dup_para_frac:
        return "dup_para_frac"
    if cfg.dup_para_char_frac and chars / size > cfg.dup_para_char_frac:
        return "dup_para_char_frac"
    lines = _LINES.split(text)
    dups, chars = find_duplicates(lines)
    if cfg.dup_line_frac and dups / len(lines) > cfg.dup_line_frac:
        return "dup_line_frac"
    if cfg.dup_line_char_frac and chars / size > cfg.dup_line_char_frac:
        return "dup_line_char_frac"
    if not words:
        return None
    ids = _word_ids(words)
    lengths = np.fromiter(map(len, words), np.int64, len(words))
    for n, frac in cfg.top_n_grams:
        if len(words) >= n and _top_ngram_chars(_ngram_hashes(ids, n), lengths, n) / size > frac:
            return f"top_{n}_gram"
    if not cfg.dup_n_grams:
        return None
    smallest = min(n for n, _ in cfg.dup_n_grams)
    if len(words) < smallest:
        return None
    first = _ngram_hashes(ids, smallest)
    if np.unique(first).size == first.size:
        return None  # no n-gram of this size repeats, so no longer one does either
    cum = np.concatenate(([0], np.cumsum(lengths)))
    for n, frac in cfg.dup_n_grams:
        if len(words) < n:
            continue
        hashes = first if n == smallest else _ngram_hashes(ids, n)
        if _repeated_chars(hashes.tolist(), cum, n) / size > frac:
            return f"duplicated_{n}_n_grams"
    return None


def _is_symbol(word: str) -> bool:
    return all(ch in PUNCTUATION_SET for ch in word)


def gopher_quality(text: str, words: list[str], cfg: GopherQualityConfig) -> str | None:
    """The first quality rule ``text`` breaks (``words`` are its tokens), or None."""
    n_words = len(words)
    counts = Counter(words)  # the rules below work on distinct words, weighted by count
    content = {w: c for w, c in counts.items() if not _is_symbol(w)}
    n_content = sum(content.values())
    if cfg.min_doc_words and n_content < cfg.min_doc_words:
        return "gopher_short_doc"
    if cfg.max_doc_words and n_content > cfg.max_doc_words:
        return "gopher_long_doc"
    if not n_words or not n_content:
        return "gopher_short_doc"
    mean_length = sum(len(w) * c for w, c in content.items()) / n_content
    if cfg.min_avg_word_length and mean_length < cfg.min_avg_word_length:
        return "gopher_below_avg_threshold"
    if cfg.max_avg_word_length and mean_length > cfg.max_avg_word_length:
        return "gopher_above_avg_threshold"
    ratio = cfg.max_symbol_word_ratio
    if ratio and text.count("#") / n_words > ratio:
        return "gopher_too_many_hashes"
    if ratio and (text.count("...") + text.count("…")) / n_words > ratio:
        return "gopher_too_many_ellipsis"
    lines = text.splitlines() or [""]
    if cfg.max_bullet_lines_ratio:
        bullets = sum(line.lstrip().startswith(("•", "-")) for line in lines)
        if bullets / len(lines) > cfg.max_bullet_lines_ratio:
            return "gopher_too_many_bullets"
    if cfg.max_ellipsis_lines_ratio:
        ellipses = sum(line.rstrip().endswith(("...", "…")) for line in lines)
        if ellipses / len(lines) > cfg.max_ellipsis_lines_ratio:
            return "gopher_too_many_end_ellipsis"
    if cfg.max_non_alpha_words_ratio:
        alpha = sum(n for w, n in counts.items() if any(c.isalpha() for c in w))
        if alpha / n_words < cfg.max_non_alpha_words_ratio:
            return "gopher_below_alpha_threshold"
    if cfg.min_stop_words and len(set(cfg.stop_words).intersection(words)) < cfg.min_stop_words:
        return "gopher_enough_stop_words"
    return None
