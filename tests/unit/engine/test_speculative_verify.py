"""Draft sources, rejection sampling and prompt-score bookkeeping, on hand-made tensors."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from llmeco.engine.request import SamplingParams
from llmeco.engine.sampler import Sampler, SequenceSamplingState
from llmeco.engine.scoring import PromptScores
from llmeco.engine.speculative import (
    Draft,
    ngram_lookup,
    parse_speculative,
    prediction_lookup,
    verify_draft,
)
from llmeco.errors import ConfigError

V = 6


def _state(params: SamplingParams, seed: int | None = None) -> SequenceSamplingState:
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return SequenceSamplingState(params, [1, 2], [], gen)


def test_ngram_lookup_copies_what_followed_the_latest_match() -> None:
    ctx = [1, 2, 3, 4, 5, 9, 1, 2, 3, 7, 8, 1, 2, 3]
    assert ngram_lookup(ctx, 2) == [7, 8]  # the latest [1, 2, 3] was followed by 7, 8
    assert ngram_lookup([4, 5, 6], 3) == []  # the tail occurs nowhere else
    assert ngram_lookup([5, 1, 5], 4, n_max=2) == [1, 5]  # falls back to a 1-gram
    assert ngram_lookup([7], 3) == []


def test_prediction_lookup_aligns_with_the_output() -> None:
    pred = [10, 11, 12, 13, 11, 12, 14]
    assert prediction_lookup(pred, [], 3) == [10, 11, 12]
    assert prediction_lookup(pred, [10, 11, 12], 2) == [13, 11]
    # [11, 12] occurs twice; the occurrence ending nearest len(output) = 6 wins.
    assert prediction_lookup(pred, [10, 11, 12, 13, 11, 12], 2) == [14]
    assert prediction_lookup(pred, [99], 2) == []


def test_parse_speculative() -> None:
    assert parse_speculative("off").method == "off"
    assert parse_speculative("ngram", 3).num_tokens == 3
    cfg = parse_speculative("draft:my-small-model")
    assert (cfg.method, cfg.draft_model) == ("draft", "my-small-model")
    for bad in ("draft:", "medusa"):
        with pytest.raises(ConfigError):
            parse_speculative(bad)


def test_greedy_verification_stops_at_the_first_disagreement() -> None:
    sampler = Sampler(V, str)
    logits = torch.full((4, V), -5.0)
    for row, best in enumerate([3, 1, 4, 2]):
        logits[row, best] = 5.0
    state = _state(SamplingParams(temperature=0.0))
    assert verify_draft(sampler, logits, state, Draft([3, 1, 4])) == ([3, 1, 4, 2], 3)
    assert verify_draft(sampler, logits, state, Draft([3, 0, 4])) == ([3, 1], 1)
    assert verify_draft(sampler, logits, state, Draft([0, 1, 4])) == ([3], 0)


def _distribution(counts: Counter[int], n: int) -> list[float]:
    return [counts.get(i, 0) / n for i in range(V)]


@pytest.mark.parametrize("draft_kind", ["point", "model"])
def test_rejection_sampling_keeps_the_target_distribution(draft_kind: str) -> None:
    """One draft token: the emitted first token is distributed as the target's p."""
    sampler = Sampler(V, str)
    target = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 1.5], [0.0] * V])
    p = target[0].softmax(-1)
    q = torch.tensor([0.05, 0.6, 0.05, 0.1, 0.1, 0.1])
    n = 1500
    counts: Counter[int] = Counter()
    gen = torch.Generator().manual_seed(0)
    state = _state(SamplingParams(temperature=1.0), seed=1)
    for _ in range(n):
        if draft_kind == "point":
            draft = Draft([1])  # always proposes token 1 (prompt lookup)
        else:
            d = int(torch.multinomial(q, 1, generator=gen))
            draft = Draft([d], q[None, :])
        tokens, _ = verify_draft(sampler, target, state, draft)
        counts[tokens[0]] += 1
    got = torch.tensor(_distribution(counts, n))
    tv = 0.5 * float((got - p).abs().sum())
    assert tv < 0.07, (got, p)
    # The draft's own distribution would be far off: the check has power.
    draft_dist = (
        torch.zeros(V).index_fill_(0, torch.tensor([1]), 1.0) if draft_kind == "point" else q
    )
    assert 0.5 * float((draft_dist - p).abs().sum()) > 0.2


def test_prompt_scores_accumulate_chunks_once() -> None:
    prompt = [3, 1, 4, 1, 5]
    logits = torch.randn(5, V)
    whole = PromptScores(prompt, 1)
    whole.add(logits, 0, str)
    assert whole.complete and len(whole.entries) == 4
    chunked = PromptScores(prompt, 1)
    chunked.add(logits[:2], 0, str)
    assert not chunked.complete
    chunked.add(logits[:2], 0, str)  # recomputed after a preemption: nothing added twice
    chunked.add(logits[2:], 2, str)
    assert [e.logprob for e in chunked.entries] == pytest.approx([e.logprob for e in whole.entries])
    expected = torch.log_softmax(logits, -1)[torch.arange(4), torch.tensor(prompt[1:])]
    assert [e.logprob for e in whole.entries] == pytest.approx(expected.tolist(), abs=1e-6)
    assert whole.take()[0] is None and whole.sent
