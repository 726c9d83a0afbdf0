"""Integrated gradients and occlusion (the explanations plugin) on models whose answers are
known: an additive toy target (exact values), and tiny random-weight Llamas from
transformers (completeness of IG, agreement of the embedding and id paths)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from llmeco_explain.attribution import (
    curve_area,
    deletion_curve,
    integrated_gradients,
    occlusion,
)
from llmeco_explain.targets import CausalTarget, ClassifierTarget, tokenize_spans
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

VOCAB = 40


@pytest.fixture(autouse=True)
def _single_torch_thread(one_torch_thread: None) -> None:
    """One torch thread (see the root conftest)."""


class Additive:
    """f(tokens) = Σ w[token]; embeddings are one-hot rows, so f is linear in them."""

    def __init__(self, ids: list[int], weights: torch.Tensor, pad_id: int = 0) -> None:
        self.ids = ids
        self.pad_id = pad_id
        self.weights = weights

    def embed(self, ids: Sequence[int]) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.tensor(list(ids)), VOCAB).float()

    def score_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        return (embeddings @ self.weights).sum(-1)

    def score_ids(self, rows: Sequence[Sequence[int]]) -> list[float]:
        return [float(self.weights[list(r)].sum()) if r else 0.0 for r in rows]


class Squared(Additive):
    """f = (Σ w·x)²: not linear, so IG is a real integral (exact value: f(x) for a zero
    baseline, shared in proportion to each token's linear term)."""

    def score_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        return (embeddings @ self.weights).sum(-1) ** 2


def _weights() -> torch.Tensor:
    torch.manual_seed(0)
    w = torch.randn(VOCAB)
    w[0] = 0.0  # the pad token
    return w


def test_ig_of_a_linear_target_is_exact_per_token() -> None:
    w = _weights()
    target = Additive([3, 7, 1, 9, 12], w)
    a = integrated_gradients(target, [1, 2, 3], steps=4, baseline="zeros")  # 7, 1, 9
    assert a.scores == pytest.approx([float(w[7]), float(w[1]), float(w[9])], abs=1e-5)
    assert a.value == pytest.approx(float(w[[3, 7, 1, 9, 12]].sum()), abs=1e-5)
    assert a.baseline_value == pytest.approx(float(w[[3, 12]].sum()), abs=1e-5)
    assert a.completeness_delta == pytest.approx(0.0, abs=1e-5)


def test_ig_of_a_nonlinear_target_shares_the_whole_change() -> None:
    w = _weights()
    ids = [4, 5, 6]
    a = integrated_gradients(Squared(ids, w), [0, 1, 2], steps=64, baseline="zeros")
    total = float(w[ids].sum())
    # ∫ 2αS dα · w_i = S · w_i: each token gets its share of f(x) = S²
    assert a.scores == pytest.approx([total * float(w[i]) for i in ids], rel=1e-3)
    assert a.completeness_delta == pytest.approx(0.0, abs=1e-3)


def test_ig_pad_baseline_and_few_steps_report_their_gap() -> None:
    w = _weights()
    w[0] = 0.5  # a pad token with weight: the pad baseline is not the zero baseline
    target = Squared([4, 5, 6], w)
    pad = integrated_gradients(target, [0, 1, 2], steps=64)  # the pad baseline is the default
    assert pad.baseline_value == pytest.approx(float(3 * w[0]) ** 2, rel=1e-5)
    assert sum(pad.scores) == pytest.approx(pad.value - float(3 * w[0]) ** 2, abs=1e-3)
    # the midpoint rule is exact when the path's second derivative is constant (a square)
    rough = integrated_gradients(target, [0, 1, 2], steps=1, baseline="zeros")
    assert rough.completeness_delta == pytest.approx(0.0, abs=1e-4)


def test_occlusion_delete_mask_and_windows() -> None:
    w = _weights()
    ids = [3, 7, 1, 9]
    target = Additive(ids, w)
    deleted = occlusion(target, [1, 2, 3])
    assert deleted.method == "occlusion_delete"
    assert deleted.scores == pytest.approx([float(w[7]), float(w[1]), float(w[9])], abs=1e-5)
    masked = occlusion(target, [1, 2, 3], mode="mask")  # pad weight 0: same drops
    assert masked.scores == pytest.approx(deleted.scores, abs=1e-5)
    windows = occlusion(target, [0, 1, 2, 3], window=2)
    # windows {3,7} {7,1} {1,9}: token 7 is in two, with mean drop ((w3+w7) + (w7+w1)) / 2
    expected_7 = (float(w[3] + w[7]) + float(w[7] + w[1])) / 2
    assert windows.scores[1] == pytest.approx(expected_7, abs=1e-5)
    assert windows.scores[0] == pytest.approx(float(w[3] + w[7]), abs=1e-5)
    assert occlusion(target, [], window=3).scores == []


def test_deletion_curve_and_area() -> None:
    w = torch.zeros(VOCAB)
    w[1], w[2], w[3] = 3.0, 2.0, 1.0
    target = Additive([1, 2, 3], w)
    best_first = deletion_curve(target, [0, 1, 2], [0, 1, 2], [0.0, 1 / 3, 2 / 3, 1.0])
    worst_first = deletion_curve(target, [0, 1, 2], [2, 1, 0], [0.0, 1 / 3, 2 / 3, 1.0])
    assert best_first == [6.0, 3.0, 1.0, 0.0]
    assert worst_first == [6.0, 5.0, 3.0, 0.0]
    fr = [0.0, 1 / 3, 2 / 3, 1.0]
    assert curve_area(fr, best_first) < curve_area(fr, worst_first)
    assert curve_area([0.0, 1.0], [1.0, 0.0]) == pytest.approx(0.5)


def _config(**extra: Any) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        **extra,
    )


def test_ig_completeness_on_a_tiny_llama_classifier() -> None:
    torch.manual_seed(1)
    head: Any = LlamaForSequenceClassification  # generated class: untyped __init__
    model = head(_config(num_labels=3))
    model.eval()
    with torch.no_grad():  # a trained model's pad row is not the zero vector a fresh one has
        model.model.embed_tokens.weight[0].normal_(0.0, 0.02)
        model.score.weight.normal_(0.0, 1.0)  # peaked enough for a visible change
    ids = [5, 9, 13, 2, 30, 11]
    target = ClassifierTarget(model, ids, 0, 1)
    probs = target.probabilities()
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        direct = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
    assert probs == pytest.approx(direct.tolist(), abs=1e-5)
    a = integrated_gradients(target, list(range(len(ids))), steps=128)
    assert a.value == pytest.approx(probs[1], abs=1e-5)
    assert a.baseline_value is not None and abs(a.value - a.baseline_value) > 1e-3
    assert abs(a.completeness_delta or 0.0) < 0.01 * abs(a.value - a.baseline_value)
    # occlusion scores a deletion as the drop in the class probability
    o = occlusion(target, [2])
    gone = target.score_ids([[5, 9, 2, 30, 11]])[0]
    assert o.scores == pytest.approx([probs[1] - gone], abs=1e-6)


def test_causal_target_matches_teacher_forcing_and_ig_completes() -> None:
    torch.manual_seed(2)
    model: Any = LlamaForCausalLM(_config())
    model.eval()
    with torch.no_grad():
        model.model.embed_tokens.weight[0].normal_(0.0, 0.02)
    prompt, answer = [1, 7, 8, 9, 10], [20, 21, 22]
    target = CausalTarget(model, prompt, 0, answer)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
    steps = torch.log_softmax(logits, -1)
    expected = sum(float(steps[len(prompt) - 1 + k, t]) for k, t in enumerate(answer))
    assert target.score_ids([prompt])[0] == pytest.approx(expected, abs=1e-4)
    first = CausalTarget(model, prompt, 0, answer, mode="first_token")
    assert first.score_ids([prompt])[0] == pytest.approx(float(steps[4, 20]), abs=1e-4)
    a = integrated_gradients(target, [1, 2, 3, 4], steps=128)
    assert a.value == pytest.approx(expected, abs=1e-4)
    assert a.scores[0] != 0.0 and a.scores[1] != 0.0
    assert a.baseline_value is not None and abs(a.value - a.baseline_value) > 1e-3
    assert abs(a.completeness_delta or 0.0) < 0.01 * abs(a.value - a.baseline_value)


class _Offsets:
    """A tokenizer stand-in with character offsets: one token per word or tag, spaces dropped."""

    def __call__(self, text: str, **kwargs: object) -> dict[str, list[Any]]:
        import re

        spans = [(m.start(), m.end()) for m in re.finditer(r"<[^>]+>|[^\s<]+", text)]
        return {"input_ids": [len(text[s:e]) for s, e in spans], "offset_mapping": spans}


def test_tokenize_spans_pieces_join_back_to_the_input() -> None:
    text = "<s>system: be nice</s><u>hello  there world</u>"
    lo = text.index("hello")
    hi = text.index("</u>")
    t = tokenize_spans(_Offsets(), text, [(lo, hi)], add_special_tokens=False)
    assert "".join(t.pieces) == "hello  there world"
    assert [t.ids[p] for p in t.positions] == [5, 5, 5]
    assert t.segments == [0, 0, 0]
