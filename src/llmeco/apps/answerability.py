"""Whether a knowledge base can answer a question: a logistic-regression gate over retrieval
signals, fitted on labelled questions.

The support assistant hands a turn to a person when the gate's probability that the retrieved
passages answer the question is below the gate's threshold. The signals (:class:`Signals`)
are the ones a small model cannot fake: how close the best passage sentence is to the question,
and how many of the question's words the passages contain (literally, or as a close word).

Why a fitted model rather than one threshold per signal: the signals trade off (a question whose
words are all covered can live with a lower sentence similarity), which a per-signal AND rule
cannot express; a logistic regression weighs them jointly, and its threshold is chosen on
out-of-fold probabilities, so the hand-off rate it promises is measured on questions it was not
fitted on. The gate is five coefficients in JSON, never a pickle.

A gate is fitted per knowledge base with ``llmeco kb calibrate`` (:func:`fit_gate`); without
one the assistant uses :func:`default_gate`, fitted by :func:`fit_pooled_gate` on the shipped
calibration sets of several knowledge bases at once (``calibration*.jsonl`` under
``examples/kb-questions`` and ``examples/handbooks/*``) by
``benchmarks/support.py --calibrate --write``. Its threshold is chosen on leave-one-KB-out
probabilities (each knowledge base scored by a gate fitted on the others), so the hand-off
rate it promises is the one it reaches on a knowledge base nobody labelled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from llmeco.errors import ConfigError

#: The features a gate reads, in order (see :meth:`Signals.vector`).
FEATURES = (
    "sentence_similarity",
    "coverage_50",
    "coverage_60",
    "least_word",
    "mean_word",
    "token_recall",
)
#: Share of unanswerable questions a fitted gate hands off (out of fold), by default.
HANDOFF_TARGET = 0.8
#: The same share for the shipped gate, measured on knowledge bases it was not fitted on:
#: higher, because a gate reused on an unseen knowledge base is its users' only guard
#: against answers made up from passages that do not hold them.
POOLED_HANDOFF_TARGET = 0.85
#: Fewest questions of each kind :func:`fit_gate` accepts (one per fold at least).
MIN_QUESTIONS = 5
#: Where the default gate lives (package data).
DEFAULT_GATE = Path(__file__).with_name("default_gate.json")


@dataclass(frozen=True)
class Signals:
    """What retrieval says about one question."""

    #: Best cosine similarity between the question and one sentence of the top passages.
    sentence_similarity: float
    #: Per content word of the question: 1.0 when the passages contain it, else the cosine of
    #: the closest passage word.
    word_similarities: tuple[float, ...]
    #: How well the best passage matches the question word piece by word piece, in context:
    #: the mean, over the question's content pieces, of the best cosine to a piece of the
    #: passage (contextual token embeddings, as BERTScore's recall does).
    token_recall: float = 0.0

    def coverage(self, threshold: float) -> float:
        """Share of the question's content words at least ``threshold`` close to a passage
        word (1.0 for a question without content words)."""
        words = self.word_similarities or (1.0,)
        return sum(w >= threshold for w in words) / len(words)

    def vector(self) -> list[float]:
        """The feature values, in :data:`FEATURES` order."""
        words = self.word_similarities or (1.0,)
        return [
            self.sentence_similarity,
            self.coverage(0.5),
            self.coverage(0.6),
            min(words),
            sum(words) / len(words),
            self.token_recall,
        ]


@dataclass(frozen=True)
class Gate:
    """A fitted answerability gate: standardised features → logistic regression → threshold."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    #: Answer when the probability is at least this; hand off below.
    threshold: float
    #: Embedding model the signals were computed with (similarities differ between models).
    embed_model: str
    features: tuple[str, ...] = FEATURES
    #: How it was fitted: question counts, out-of-fold rates, sources.
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.features != FEATURES:
            raise ConfigError(f"gate features {list(self.features)} are not {list(FEATURES)}")
        numbers = [*self.mean, *self.scale, *self.coef, self.intercept, self.threshold]
        if not (len(self.mean) == len(self.scale) == len(self.coef) == len(FEATURES)):
            raise ConfigError(f"a gate needs {len(FEATURES)} means, scales and coefficients")
        if not all(math.isfinite(x) for x in numbers) or min(self.scale) <= 0:
            raise ConfigError("a gate's numbers must be finite and its scales positive")

    def probability(self, signals: Signals) -> float:
        """Probability that the passages answer the question."""
        z = self.intercept + sum(
            c * (x - m) / s
            for c, x, m, s in zip(self.coef, signals.vector(), self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def answers(self, signals: Signals) -> bool:
        """Whether the assistant should answer (not hand off)."""
        return self.probability(signals) >= self.threshold

    def to_json(self) -> str:
        """The gate as JSON (what ``llmeco kb calibrate`` stores)."""
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Gate:
        """A gate from :meth:`to_json`'s output.

        Raises:
            ConfigError: not JSON, or not a gate over :data:`FEATURES`.
        """
        try:
            data = json.loads(text)
            return cls(
                mean=tuple(float(x) for x in data["mean"]),
                scale=tuple(float(x) for x in data["scale"]),
                coef=tuple(float(x) for x in data["coef"]),
                intercept=float(data["intercept"]),
                threshold=float(data["threshold"]),
                embed_model=str(data["embed_model"]),
                features=tuple(str(x) for x in data["features"]),
                fitted_on=dict(data.get("fitted_on") or {}),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"not an answerability gate: {e}") from e


def open_gate() -> Gate:
    """A gate that never hands off (to measure the signals of every question)."""
    n = len(FEATURES)
    return Gate((0.0,) * n, (1.0,) * n, (0.0,) * n, 0.0, 0.0, "any")


@lru_cache(maxsize=1)
def default_gate() -> Gate:
    """The shipped gate (fitted on the shipped calibration sets with the packaged embedder)."""
    return Gate.from_json(DEFAULT_GATE.read_text())


def choose_threshold(
    answerable: np.ndarray, unanswerable: np.ndarray, target: float = HANDOFF_TARGET
) -> float:
    """The probability threshold answering the most of ``answerable`` while handing off at
    least ``target`` of ``unanswerable`` (ties: more hand-offs). Answer iff p ≥ threshold."""
    need = math.ceil(target * len(unanswerable) - 1e-9)
    best: tuple[int, int, float] | None = None
    for t in sorted({*answerable.tolist(), *unanswerable.tolist(), 1.0 + 1e-9}):
        handed = int((unanswerable < t).sum())
        if handed < need:
            continue
        key = (int((answerable >= t).sum()), handed, -t)
        if best is None or key > best:
            best = key
    assert best is not None  # a threshold above every probability hands off everything
    return -best[2]


def _fit(
    x: np.ndarray, y: np.ndarray, rows: np.ndarray, c: float, weight: np.ndarray | None = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """A logistic regression on the standardised ``rows`` of ``x``: (model, mean, scale)."""
    from sklearn.linear_model import LogisticRegression

    mean = x[rows].mean(axis=0)
    scale = x[rows].std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=c, max_iter=1000).fit(
        (x[rows] - mean) / scale, y[rows], sample_weight=None if weight is None else weight[rows]
    )
    return model, mean, scale


def _predict(fit: tuple[Any, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    model, mean, scale = fit
    return np.asarray(model.predict_proba((x - mean) / scale)[:, 1])


def _rates(p: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    """Answered share of answerable, hand-off share of unanswerable, AUC of ``p``."""
    from sklearn.metrics import roc_auc_score

    answered = p >= threshold
    return {
        "answered": round(float(answered[y == 1].mean()), 4),
        "handoff_unanswerable": round(float((~answered[y == 0]).mean()), 4),
        "auc": round(float(roc_auc_score(y, p)), 4),
    }


def _gate(
    fit: tuple[Any, np.ndarray, np.ndarray],
    threshold: float,
    embed_model: str,
    fitted_on: dict[str, Any],
) -> Gate:
    model, mean, scale = fit
    return Gate(
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        threshold=float(threshold),
        embed_model=embed_model,
        fitted_on=fitted_on,
    )


def _check_counts(answerable: Sequence[Signals], unanswerable: Sequence[Signals]) -> None:
    if min(len(answerable), len(unanswerable)) < MIN_QUESTIONS:
        raise ConfigError(
            f"calibrating needs at least {MIN_QUESTIONS} answerable and {MIN_QUESTIONS} "
            f"unanswerable questions (got {len(answerable)} and {len(unanswerable)})"
        )


def fit_gate(
    answerable: Sequence[Signals],
    unanswerable: Sequence[Signals],
    *,
    embed_model: str,
    handoff_target: float = HANDOFF_TARGET,
    c: float = 1.0,
    folds: int = 5,
    repeats: int = 5,
    seed: int = 0,
    sources: dict[str, Any] | None = None,
) -> Gate:
    """Fit a gate on questions the knowledge base answers and questions it does not.

    The threshold is chosen (:func:`choose_threshold`) on out-of-fold probabilities averaged
    over ``repeats`` stratified ``folds``-fold splits, so the reported hand-off rate is one
    the gate reaches on questions it did not see; the coefficients are then fitted on all.

    Raises:
        ConfigError: fewer than :data:`MIN_QUESTIONS` questions of either kind.
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    _check_counts(answerable, unanswerable)
    x = np.array([s.vector() for s in [*answerable, *unanswerable]], dtype=np.float64)
    y = np.array([1] * len(answerable) + [0] * len(unanswerable))
    folds = min(folds, len(answerable), len(unanswerable))
    oof = np.zeros(len(y))
    splits = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    for train, test in splits.split(x, y):
        oof[test] += _predict(_fit(x, y, train, c), x[test]) / repeats
    threshold = choose_threshold(oof[y == 1], oof[y == 0], handoff_target)
    return _gate(
        _fit(x, y, np.arange(len(y)), c),
        threshold,
        embed_model,
        {
            "answerable": len(answerable),
            "unanswerable": len(unanswerable),
            "handoff_target": handoff_target,
            "c": c,
            "out_of_fold": _rates(oof, y, threshold),
            **(sources or {}),
        },
    )


def fit_pooled_gate(
    sets: Mapping[str, tuple[Sequence[Signals], Sequence[Signals]]],
    *,
    embed_model: str,
    handoff_target: float = POOLED_HANDOFF_TARGET,
    c: float = 1.0,
    sources: dict[str, Any] | None = None,
) -> Gate:
    """Fit one gate for knowledge bases nobody calibrated, on the labelled questions of
    several: ``sets`` maps a knowledge base's name to its (answerable, unanswerable) signals.

    Each knowledge base weighs the same in the fit, however many questions it has. The
    threshold is chosen (:func:`choose_threshold`) on *leave-one-KB-out* probabilities: every
    knowledge base's questions scored by a gate fitted on the others only, pooled. That is
    how the gate meets a new knowledge base, so the rates it records (``out_of_kb``, overall
    and per knowledge base in ``by_kb``) are the ones to expect on one.

    Raises:
        ConfigError: fewer than two knowledge bases, or one with fewer than
            :data:`MIN_QUESTIONS` questions of either kind.
    """
    if len(sets) < 2:
        raise ConfigError(f"a pooled gate needs at least two knowledge bases (got {len(sets)})")
    for answerable, unanswerable in sets.values():
        _check_counts(answerable, unanswerable)
    names = sorted(sets)
    rows = [
        (name, s, label)
        for name in names
        for label, group in ((1, sets[name][0]), (0, sets[name][1]))
        for s in group
    ]
    x = np.array([s.vector() for _, s, _ in rows], dtype=np.float64)
    y = np.array([label for _, _, label in rows])
    kb = np.array([name for name, _, _ in rows])
    sizes = {name: int((kb == name).sum()) for name in names}
    weight = np.array([len(y) / (len(names) * sizes[name]) for name in kb])
    out = np.zeros(len(y))
    for name in names:
        held = kb == name
        out[held] = _predict(_fit(x, y, np.flatnonzero(~held), c, weight), x[held])
    threshold = choose_threshold(out[y == 1], out[y == 0], handoff_target)
    return _gate(
        _fit(x, y, np.arange(len(y)), c, weight),
        threshold,
        embed_model,
        {
            "knowledge_bases": {
                name: {"answerable": len(sets[name][0]), "unanswerable": len(sets[name][1])}
                for name in names
            },
            "handoff_target": handoff_target,
            "c": c,
            "out_of_kb": {
                **_rates(out, y, threshold),
                "by_kb": {
                    name: _rates(out[kb == name], y[kb == name], threshold) for name in names
                },
            },
            **(sources or {}),
        },
    )
