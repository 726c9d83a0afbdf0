"""The corpus steps of ``llmeco data prepare`` (web text), their config and their counts.

A document goes through, in order (FineWeb's order, then the corpus-wide steps):

1. ``normalize`` (Unicode, whitespace) and ``min_chars``;
2. ``language`` (:mod:`llmeco.data.langid`): keep the languages asked for;
3. ``gopher_repetition``, ``gopher_quality`` (:mod:`llmeco.data.gopher`);
4. ``c4`` (:mod:`llmeco.data.c4`): line rules, then page rules;
5. ``fineweb`` (:mod:`llmeco.data.fineweb`);
6. ``line_dedup``: a line repeated inside the document kept once; then, across the corpus,
   a line found in ``min_docs`` or more documents kept only in the first (lowest id);
7. ``exact_dedup`` (hash of the text) then ``near_dedup`` (MinHash LSH): the removed
   document names the one it duplicates;
8. PII redaction, then the train/validation split.

Every step is a section of :class:`CorpusConfig` (YAML for ``--config``), with the
published defaults; each counts the documents, lines and characters it drops and keeps up to
five examples (:class:`StepStats`).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmeco.data.c4 import C4Config, LineDrops, c4_filter
from llmeco.data.clean import normalize_text
from llmeco.data.fineweb import FineWebConfig, fineweb_quality
from llmeco.data.gopher import (
    GopherQualityConfig,
    GopherRepetitionConfig,
    gopher_quality,
    gopher_repetition,
)
from llmeco.data.langid import LanguageConfig, identify
from llmeco.data.text import split_words
from llmeco.errors import ConfigError

EXAMPLES = 5
EXAMPLE_CHARS = 300


class LineDedupConfig(BaseModel):
    """Exact line dedup inside a document and across the corpus."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="Run this step.")
    in_document: bool = Field(
        default=True, description="Keep a line repeated inside one document once."
    )
    across_documents: bool = Field(
        default=True, description="Keep a line found in min_docs documents only in the first."
    )
    min_docs: int = Field(
        default=3, ge=2, description="Documents a line must appear in to count as boilerplate."
    )
    min_chars: int = Field(default=10, ge=1, description="Shorter lines are never deduplicated.")
    sentence_spans: bool = Field(
        default=False,
        description="C4's variant across documents: deduplicate spans of three sentences "
        "(within a line) instead of whole lines.",
    )


class NearDedupConfig(BaseModel):
    """MinHash LSH over word 5-gram shingles."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="Run this step.")
    threshold: float = Field(default=0.8, gt=0, lt=1, description="Jaccard similarity.")
    num_perm: int = Field(default=128, ge=16, description="MinHash permutations.")
    ngram: int = Field(default=5, ge=1, description="Words per shingle.")
    seed: int = Field(default=1, description="Seed of the hash functions.")


class CorpusConfig(BaseModel):
    """All corpus steps; a YAML file with any subset of these sections overrides them."""

    model_config = ConfigDict(extra="forbid")
    min_chars: int = Field(default=20, ge=0, description="Drop texts shorter than this.")
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    line_dedup: LineDedupConfig = Field(default_factory=LineDedupConfig)
    exact_dedup: bool = Field(default=True, description="Drop documents with the same text.")
    near_dedup: NearDedupConfig = Field(default_factory=NearDedupConfig)
    redact: bool = Field(default=True, description="Replace PII with typed placeholders.")
    validation_fraction: float = Field(default=0.0, ge=0, lt=1, description="Held out share.")
    seed: int = Field(default=0, description="Seed of the hash split.")

    def digest(self) -> str:
        """sha256 of the config (part of every shard's input hash, for resuming)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def load_corpus_config(path: Path | None, overrides: dict[str, Any] | None = None) -> CorpusConfig:
    """The config from a YAML file (missing sections take the defaults) plus ``overrides``
    (dotted keys, e.g. ``{"language.languages": ["en"]}``).

    Raises:
        ConfigError: unreadable YAML, an unknown key or a bad value.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the prepare config ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the prepare config must be a mapping of sections")
        data = loaded
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return CorpusConfig.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        raise ConfigError(
            f"{where}bad prepare config: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        ) from exc


@dataclass
class StepStats:
    """What one step removed: documents, lines, characters, by reason, and examples."""

    docs: int = 0
    lines: int = 0
    chars: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def drop_doc(self, reason: str, doc_id: str, idx: int, text: str) -> None:
        """Count a dropped document (and keep it as an example while there are few)."""
        self.docs += 1
        self.chars += len(text)
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(
                {"id": doc_id, "idx": idx, "reason": reason, "text": text[:EXAMPLE_CHARS]}
            )

    def drop_lines(self, drops: LineDrops, doc_id: str, idx: int, sample: str) -> None:
        """Count lines removed from a kept document."""
        n = sum(drops.lines.values())
        if not n:
            return
        self.lines += n
        self.chars += sum(drops.chars.values())
        for reason, count in drops.lines.items():
            self.reasons[f"line:{reason}"] = self.reasons.get(f"line:{reason}", 0) + count
        if len(self.examples) < EXAMPLES:
            self.examples.append(
                {"id": doc_id, "idx": idx, "reason": "lines", "text": sample[:EXAMPLE_CHARS]}
            )

    def merge(self, other: StepStats) -> None:
        """Add ``other`` (another shard's counts; examples stay the lowest ids)."""
        self.docs += other.docs
        self.lines += other.lines
        self.chars += other.chars
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count
        merged = sorted([*self.examples, *other.examples], key=lambda e: e["idx"])
        self.examples = merged[:EXAMPLES]

    def as_json(self) -> dict[str, Any]:
        """The manifest entry."""
        return {
            "documents_dropped": self.docs,
            "lines_dropped": self.lines,
            "chars_dropped": self.chars,
            "reasons": dict(sorted(self.reasons.items())),
            "examples": self.examples,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepStats:
        """Back from :meth:`as_json`."""
        return cls(
            docs=data["documents_dropped"],
            lines=data["lines_dropped"],
            chars=data["chars_dropped"],
            reasons=dict(data["reasons"]),
            examples=list(data["examples"]),
        )


#: Step names in pipeline order (the funnel of the report).
STEP_ORDER = (
    "normalize",
    "language",
    "gopher_repetition",
    "gopher_quality",
    "c4",
    "fineweb",
    "line_dedup",
    "exact_dedup",
    "near_dedup",
)


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"'”’)\]]*\s+")


def dedup_units(text: str, sentence_spans: bool) -> list[list[str]]:
    """What corpus-wide dedup compares, line by line: each (stripped) line as one unit, or
    with ``sentence_spans`` the line's sentences in consecutive groups of three (C4)."""
    out: list[list[str]] = []
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            out.append([])
        elif not sentence_spans:
            out.append([stripped])
        else:
            ends = [m.end() for m in _SENTENCE_END.finditer(stripped)]
            cuts = [0, *ends[2::3], len(stripped)]
            spans = [stripped[a:b].strip() for a, b in itertools.pairwise(cuts)]
            out.append([s for s in spans if s])
    return out


def dedupe_lines_in_document(text: str, min_chars: int) -> tuple[str, LineDrops]:
    """``text`` with every line of at least ``min_chars`` characters kept at its first
    occurrence only."""
    seen: set[str] = set()
    kept: list[str] = []
    drops = LineDrops()
    for line in text.split("\n"):
        key = line.strip()
        if len(key) >= min_chars:
            if key in seen:
                drops.add("repeated_in_document", line)
                continue
            seen.add(key)
        kept.append(line)
    return "\n".join(kept), drops


@dataclass
class DocResult:
    """A document after the per-document steps: its text (None if dropped), the step and
    reason that dropped it, its language, and the lines each line-level step removed."""

    text: str | None
    step: str = ""
    reason: str = ""
    language: str | None = None
    language_score: float | None = None
    line_drops: dict[str, LineDrops] = field(default_factory=dict)


def process_document(raw: str, cfg: CorpusConfig) -> DocResult:
    """Run the per-document steps (1–6 without the corpus-wide half of line dedup)."""
    text = normalize_text(raw)
    if not text.strip() or len(text) < cfg.min_chars:
        return DocResult(None, "normalize", "empty" if not text.strip() else "too_short")
    result = DocResult(text)
    if cfg.language.enabled:
        lang, score = identify(text, cfg.language.sample_chars)
        result.language, result.language_score = lang, score
        wanted = cfg.language.languages
        if wanted and (lang not in wanted or score < cfg.language.min_score):
            result.text, result.step = None, "language"
            result.reason = lang if lang not in wanted else "low_score"
            return result
    words = split_words(text)
    if cfg.gopher_repetition.enabled:
        reason = gopher_repetition(text, words, cfg.gopher_repetition)
        if reason:
            result.text, result.step, result.reason = None, "gopher_repetition", reason
            return result
    if cfg.gopher_quality.enabled:
        reason = gopher_quality(text, words, cfg.gopher_quality)
        if reason:
            result.text, result.step, result.reason = None, "gopher_quality", reason
            return result
    if cfg.c4.enabled:
        text, reason, drops = c4_filter(text, cfg.c4)
        if reason:
            result.text, result.step, result.reason = None, "c4", reason
            return result
        result.line_drops["c4"] = drops
        words = split_words(text)
    if cfg.fineweb.enabled:
        reason = fineweb_quality(text, words, cfg.fineweb)
        if reason:
            result.text, result.step, result.reason = None, "fineweb", reason
            return result
    if cfg.line_dedup.enabled and cfg.line_dedup.in_document:
        text, drops = dedupe_lines_in_document(text, cfg.line_dedup.min_chars)
        result.line_drops["line_dedup"] = drops
    result.text = text
    return result
