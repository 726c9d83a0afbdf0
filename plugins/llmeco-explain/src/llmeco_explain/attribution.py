"""Input attributions in plain torch: integrated gradients and occlusion, and deletion curves.

Both methods explain one scalar *target* of a model's output (the probability of a predicted
class, the log-probability of a generated answer) in terms of the input tokens, through an
:class:`AttributionTarget` that knows how to embed the tokens and score the model on either
embeddings (for gradients) or token ids (for occlusion).

Why not Captum: it is not a dependency of llmeco, and what is needed here is small —
integrated gradients on the embedding layer is a Riemann sum of input gradients along a
straight path (about 40 lines below), occlusion is a loop of forward passes. Writing them
directly keeps the batching (all interpolation steps of a text in one forward pass), the
choice of which positions are attributed (only the caller's input, never the chat template
around it) and the completeness check under our control, and avoids a dependency that
pins its own torch range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

#: What integrated gradients start from at the attributed positions: the pad token's
#: embedding (the default), or zero vectors. With RMSNorm models (Llama and kin) a zero
#: baseline over *every* position is degenerate: the normalisations make the model nearly
#: scale-invariant in its inputs, so f jumps between α = 0 and α ≈ 1e-5 and a Riemann sum
#: misses it (a large completeness gap says so). Zeros behave where other positions (a chat
#: template) keep their real embeddings.
Baseline = Literal["pad", "zeros"]
#: How occlusion hides a window of tokens: remove it, or replace each token by the pad token.
OcclusionMode = Literal["delete", "mask"]


class AttributionTarget(Protocol):
    """A model and one scalar of its output to explain, for a fixed sequence of token ids."""

    #: The token ids the model reads (the explained input is a subset of their positions).
    ids: list[int]
    #: The id :func:`occlusion` (mask mode) and the ``pad`` baseline use.
    pad_id: int

    def embed(self, ids: Sequence[int]) -> torch.Tensor:
        """``[len(ids), d]`` input embeddings (no gradient)."""
        ...

    def score_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[B]`` target values for a ``[B, n, d]`` batch of input embeddings (differentiable)."""
        ...

    def score_ids(self, rows: Sequence[Sequence[int]]) -> list[float]:
        """The target value for each row of token ids (rows may differ in length)."""
        ...


@dataclass(frozen=True)
class Attribution:
    """One score per attributed position, and what they explain."""

    method: str
    positions: list[int]
    scores: list[float]
    #: The target's value on the real input.
    value: float
    #: Integrated gradients: the target's value at the baseline; occlusion: None.
    baseline_value: float | None = None
    #: Integrated gradients: ``sum(scores) - (value - baseline_value)`` (0 for exact IG).
    completeness_delta: float | None = None
    steps: int | None = None


def integrated_gradients(
    target: AttributionTarget,
    positions: Sequence[int],
    *,
    steps: int = 32,
    baseline: Baseline = "pad",
    batch_size: int = 16,
) -> Attribution:
    """Integrated gradients (Sundararajan et al., 2017) of the target w.r.t. the embeddings
    of the tokens at ``positions``; the other positions keep their real embeddings.

    attribution_i = (x_i - x'_i) · mean over α of ∂f(x' + α(x - x'))/∂x_i, with α at the
    midpoints of ``steps`` equal intervals of [0, 1] (the midpoint rule converges faster than
    either end). Completeness — the scores sum to f(x) - f(x') — holds up to the Riemann
    error, which is returned as ``completeness_delta`` so callers can see it.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    x = target.embed(target.ids).detach()
    x0 = x.clone()
    index = torch.tensor(list(positions), dtype=torch.long, device=x.device)
    if len(positions):
        if baseline == "zeros":
            x0[index] = 0.0
        else:
            x0[index] = target.embed([target.pad_id]).detach()[0]
    diff = x - x0
    total = torch.zeros_like(x)
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    for start in range(0, steps, batch_size):
        chunk = alphas[start : start + batch_size]
        path = (x0 + chunk[:, None, None] * diff).requires_grad_(True)
        values = target.score_embeddings(path)
        (grads,) = torch.autograd.grad(values.sum(), path)
        total += grads.sum(0)
    scores = (diff * total / steps).sum(-1)[index] if len(positions) else torch.zeros(0)
    with torch.no_grad():
        value, base = (float(v) for v in target.score_embeddings(torch.stack([x, x0])))
    out = [float(s) for s in scores]
    return Attribution(
        "integrated_gradients",
        list(positions),
        out,
        value,
        baseline_value=base,
        completeness_delta=sum(out) - (value - base),
        steps=steps,
    )


def occlusion(
    target: AttributionTarget,
    positions: Sequence[int],
    *,
    window: int = 1,
    mode: OcclusionMode = "delete",
) -> Attribution:
    """Occlusion: how much the target drops when a window of input tokens is hidden.

    Windows of ``window`` consecutive attributed positions slide one position at a time;
    each token's score is the mean drop ``f(x) - f(x without the window)`` over the windows
    that cover it. ``delete`` removes the tokens (the natural "as if never written" for a
    language model); ``mask`` replaces them by the pad token (the length stays the same).
    """
    if window < 1:
        raise ValueError("window must be at least 1")
    ids = target.ids
    places = list(positions)
    width = min(window, len(places))
    starts = range(max(0, len(places) - width + 1)) if places else range(0)
    variants = []
    for start in starts:
        hidden = set(places[start : start + width])
        if mode == "delete":
            variants.append([t for i, t in enumerate(ids) if i not in hidden])
        else:
            variants.append([target.pad_id if i in hidden else t for i, t in enumerate(ids)])
    value, *others = target.score_ids([ids, *variants])
    sums = [0.0] * len(places)
    counts = [0] * len(places)
    for start, score in zip(starts, others, strict=True):
        for k in range(start, start + width):
            sums[k] += value - score
            counts[k] += 1
    scores = [s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)]
    return Attribution(f"occlusion_{mode}", places, scores, value)


def deletion_curve(
    target: AttributionTarget,
    positions: Sequence[int],
    order: Sequence[int],
    fractions: Sequence[float],
) -> list[float]:
    """The target after deleting the first ``ceil(f · n)`` tokens of ``order`` for each
    fraction ``f`` (``order`` ranks indices into ``positions``, most important first).

    A faithful attribution ranks first the tokens whose removal hurts the target most, so
    its curve falls faster (smaller area) than a random order's.
    """
    return target.score_ids(deletion_rows(target.ids, positions, order, fractions))


def deletion_rows(
    ids: Sequence[int], positions: Sequence[int], order: Sequence[int], fractions: Sequence[float]
) -> list[list[int]]:
    """The token ids left after each deletion step of :func:`deletion_curve` (so callers can
    score the rows of several orders in one batched call)."""
    n = len(positions)
    rows = []
    for fraction in fractions:
        k = min(n, math.ceil(fraction * n - 1e-9))
        gone = {positions[i] for i in order[:k]}
        rows.append([t for i, t in enumerate(ids) if i not in gone])
    return rows


def curve_area(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Area under a curve sampled at ``fractions`` (trapezoids), divided by the x range."""
    if len(fractions) < 2:
        return float(values[0]) if values else 0.0
    area = 0.0
    for i in range(1, len(fractions)):
        area += (fractions[i] - fractions[i - 1]) * (values[i] + values[i - 1]) / 2
    return area / (fractions[-1] - fractions[0])
