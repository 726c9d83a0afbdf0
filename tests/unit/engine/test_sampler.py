"""The sampler on hand-made logits: HF-equivalent processors, seeded reproducibility, logprobs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from llmeco.engine.request import SamplingParams
from llmeco.engine.sampler import (
    Sampler,
    SequenceSamplingState,
    make_generator,
)

CPU = torch.device("cpu")
V = 1000


def token_text(token_id: int) -> str:
    return f"<{token_id}>"


def state(
    prompt: list[int] | None = None,
    output: list[int] | None = None,
    seed: int | None = None,
    index: int = 0,
    mask: torch.Tensor | None = None,
    **params: Any,
) -> SequenceSamplingState:
    p = SamplingParams(seed=seed, **params)
    return SequenceSamplingState(
        params=p,
        prompt_token_ids=list(prompt or [1, 2, 3]),
        output_token_ids=list(output or []),
        generator=make_generator(seed, CPU, index),
        allowed_mask=mask,
    )


def random_logits(rows: int, vocab: int = V, seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * scale


@pytest.fixture
def sampler() -> Sampler:
    return Sampler(V, token_text)


# -- greedy -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_greedy_is_argmax(sampler: Sampler, dtype: torch.dtype) -> None:
    logits = random_logits(8).to(dtype)
    states = [state(temperature=0.0) for _ in range(4)] + [state(top_k=1) for _ in range(4)]
    result = sampler(logits, states)
    assert result.token_ids == logits.argmax(-1).tolist()
    assert result.logprobs is None


def test_greedy_rows_in_a_mixed_batch_are_argmax(sampler: Sampler) -> None:
    logits = random_logits(6)
    states = [state(temperature=0.0 if i % 2 else 1.0, seed=i) for i in range(6)]
    tokens = sampler(logits, states).token_ids
    argmax = logits.argmax(-1).tolist()
    assert [tokens[i] for i in (1, 3, 5)] == [argmax[i] for i in (1, 3, 5)]


def test_greedy_with_penalties_is_argmax_of_penalised_logits(sampler: Sampler) -> None:
    logits = torch.zeros(1, V)
    logits[0, 10] = 2.0
    logits[0, 11] = 1.9
    st = state(prompt=[10], temperature=0.0, repetition_penalty=1.2)
    assert sampler(logits, [st]).token_ids == [11]


def test_rejects_mismatched_shapes(sampler: Sampler) -> None:
    with pytest.raises(ValueError, match="one row per state"):
        sampler(random_logits(2), [state()])
    with pytest.raises(ValueError, match="columns"):
        sampler(random_logits(1, vocab=V + 1), [state()])


# -- penalties ----------------------------------------------------------------------------
@pytest.mark.parametrize("penalty", [0.7, 1.3, 2.0])
def test_repetition_penalty_matches_hf(sampler: Sampler, penalty: float) -> None:
    logits = random_logits(4)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (4, 12), generator=g)  # prompt (first 7) + output (last 5)
    states = [
        state(prompt=row[:7], output=row[7:], temperature=0.0, repetition_penalty=penalty)
        for row in ids.tolist()
    ]
    expected = RepetitionPenaltyLogitsProcessor(penalty=penalty)(ids, logits.clone())
    assert torch.equal(sampler.process(logits, states), expected)


def test_repetition_penalty_per_row_and_incremental(sampler: Sampler) -> None:
    logits = random_logits(3)
    ids = torch.randint(0, V, (3, 6), generator=torch.Generator().manual_seed(2))
    penalties = [1.5, 1.0, 0.8]
    states = [
        state(prompt=row[:3], output=row[3:], temperature=0.0, repetition_penalty=p)
        for row, p in zip(ids.tolist(), penalties, strict=True)
    ]
    sampler.process(logits, states)  # builds the per-sequence caches
    for st in states:  # the engine appends sampled tokens between steps
        st.output_token_ids += [500, 501]
    extended = torch.cat([ids, torch.tensor([[500, 501]] * 3)], dim=1)
    got = sampler.process(logits, states)
    for i, p in enumerate(penalties):
        expected = RepetitionPenaltyLogitsProcessor(penalty=p)(
            extended[i : i + 1], logits[i : i + 1]
        )
        assert torch.equal(got[i : i + 1], expected)


def test_presence_and_frequency_penalties_count_output_only(sampler: Sampler) -> None:
    logits = torch.zeros(1, V)
    st = state(prompt=[3, 4], output=[5, 5, 7], presence_penalty=0.5, frequency_penalty=0.25)
    got = sampler.process(logits, [st])[0]
    assert got[5].item() == pytest.approx(-(0.5 + 2 * 0.25))
    assert got[7].item() == pytest.approx(-(0.5 + 0.25))
    assert got[3].item() == 0.0 and got[4].item() == 0.0
    st.output_token_ids.append(7)
    got = sampler.process(logits, [st])[0]
    assert got[7].item() == pytest.approx(-(0.5 + 2 * 0.25))
    others = torch.ones(V, dtype=torch.bool)
    others[[5, 7]] = False
    assert torch.all(got[others] == 0)


def test_penalties_on_non_contiguous_logits(sampler: Sampler) -> None:
    logits = random_logits(V, vocab=3).t()  # [3, V], column-major
    states = [state(output=[4, 4], frequency_penalty=1.0, repetition_penalty=1.5) for _ in range(3)]
    got = sampler.process(logits, states)
    expected = sampler.process(logits.contiguous(), states)
    assert torch.equal(got, expected)
    assert got[0, 4] < logits[0, 4]


def test_penalties_leave_other_rows_untouched(sampler: Sampler) -> None:
    logits = random_logits(3)
    states = [state(output=[1, 2]), state(output=[1, 2], presence_penalty=1.0), state()]
    got = sampler.process(logits, states)
    assert torch.equal(got[0], logits[0]) and torch.equal(got[2], logits[2])
    assert got[1, 1] == logits[1, 1] - 1.0


# -- warpers vs Hugging Face --------------------------------------------------------------
def hf_warp(logits: torch.Tensor, p: SamplingParams) -> torch.Tensor:
    """The HF generate warper chain (temperature, top-k, top-p, min-p) for one row."""
    ids: Any = torch.zeros(1, 1, dtype=torch.long)  # HF annotates LongTensor
    x = logits[None].clone()
    if p.temperature != 1.0:
        x = TemperatureLogitsWarper(p.temperature)(ids, x)
    if p.top_k > 0:
        x = TopKLogitsWarper(p.top_k)(ids, x)
    if p.top_p < 1.0:
        x = TopPLogitsWarper(p.top_p)(ids, x)
    if p.min_p > 0.0:
        x = MinPLogitsWarper(p.min_p)(ids, x)
    return x[0]


WARP_CASES: list[dict[str, Any]] = [
    {"top_k": 5},
    {"top_k": 50, "temperature": 0.7},
    {"top_p": 0.9},
    {"top_p": 0.3, "temperature": 1.5},
    {"min_p": 0.1},
    {"min_p": 0.3, "temperature": 0.5},
    {"top_k": 40, "top_p": 0.8},
    {"top_k": 20, "top_p": 0.95, "min_p": 0.05, "temperature": 0.8},
    {"top_p": 0.01},  # keeps at least the most likely token
    {},
]


@pytest.mark.parametrize("scale", [3.0, 0.05])  # peaked, and flat (a nucleus of ~all tokens)
@pytest.mark.parametrize("case", WARP_CASES)
def test_warpers_keep_the_same_tokens_as_hf(
    sampler: Sampler, case: dict[str, Any], scale: float
) -> None:
    logits = random_logits(4, seed=3, scale=scale)
    states = [state(**case) for _ in range(4)]
    got = sampler.warp(sampler.process(logits, states), states)
    for i in range(4):
        expected = hf_warp(logits[i], states[i].params)
        assert torch.equal(torch.isfinite(got[i]), torch.isfinite(expected))


def test_warpers_with_different_parameters_per_row(sampler: Sampler) -> None:
    logits = random_logits(len(WARP_CASES), seed=4)
    logits[::2] *= 0.02  # some rows flat enough that their nucleus needs a full sort
    states = [state(**case) for case in WARP_CASES]
    got = sampler.warp(sampler.process(logits, states), states)
    for i, st in enumerate(states):
        expected = hf_warp(logits[i], st.params)
        assert torch.equal(torch.isfinite(got[i]), torch.isfinite(expected)), WARP_CASES[i]


def test_warpers_on_a_small_vocabulary() -> None:
    sampler = Sampler(12, token_text)
    logits = random_logits(len(WARP_CASES), vocab=12, seed=6, scale=1.0)
    states = [state(**case) for case in WARP_CASES]
    got = sampler.warp(sampler.process(logits, states), states)
    for i, st in enumerate(states):
        expected = hf_warp(logits[i], st.params)
        assert torch.equal(torch.isfinite(got[i]), torch.isfinite(expected)), WARP_CASES[i]


def test_samples_stay_inside_top_k(sampler: Sampler) -> None:
    logits = random_logits(1).expand(500, V)
    torch.manual_seed(0)
    tokens = sampler(logits, [state(top_k=3) for _ in range(500)]).token_ids
    assert set(tokens) <= set(logits[0].topk(3).indices.tolist())
    assert len(set(tokens)) == 3


# -- seeds --------------------------------------------------------------------------------
def draw_sequence(sampler: Sampler, batch: list[SequenceSamplingState], row: int) -> list[int]:
    logits = random_logits(len(batch), seed=5, scale=0.5)  # flat: many plausible tokens
    out = []
    for step in range(20):
        logits[row] = random_logits(1, seed=100 + step, scale=0.5)[0]
        out.append(sampler(logits, batch).token_ids[row])
    return out


def test_seeded_row_is_the_same_alone_or_in_any_batch(sampler: Sampler) -> None:
    alone = draw_sequence(sampler, [state(seed=42, top_p=0.95)], 0)
    batch = [
        state(),
        state(seed=7),
        state(temperature=0.0),
        state(seed=42, top_p=0.95),
        state(top_k=5, temperature=0.5),
        state(seed=9, min_p=0.2, output=[1, 1], frequency_penalty=1.0),
        state(logprobs=2),
        state(top_p=0.5),
    ]
    assert draw_sequence(sampler, batch, 3) == alone
    assert len(set(alone)) > 5


def test_different_seeds_and_indices_give_different_draws(sampler: Sampler) -> None:
    a = draw_sequence(sampler, [state(seed=1)], 0)
    assert draw_sequence(sampler, [state(seed=1)], 0) == a
    assert draw_sequence(sampler, [state(seed=2)], 0) != a
    assert draw_sequence(sampler, [state(seed=1, index=1)], 0) != a


def test_make_generator() -> None:
    assert make_generator(None, CPU) is None
    g = make_generator(-5, CPU, 3)
    assert g is not None and g.device == CPU
    h = make_generator(2**70, CPU)  # any Python int is a valid seed
    assert h is not None


def chi_square(tokens: list[int], probs: torch.Tensor) -> float:
    counts = torch.bincount(torch.tensor(tokens), minlength=probs.numel()).double()
    expected = probs.double() * len(tokens)
    return float(((counts - expected) ** 2 / expected).sum())


# 99.9th percentile of chi-square with 7 degrees of freedom.
CHI2_7DOF_P999 = 24.32


def test_unseeded_draws_follow_softmax() -> None:
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, 1.5, 0.2])
    sampler = Sampler(8, token_text)
    n = 20000
    torch.manual_seed(1234)
    tokens = sampler(logits.expand(n, 8), [state() for _ in range(n)]).token_ids
    assert chi_square(tokens, logits.softmax(-1)) < CHI2_7DOF_P999


def test_seeded_draws_follow_tempered_softmax() -> None:
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, 1.5, 0.2])
    sampler = Sampler(8, token_text)
    n = 4000
    states = [state(seed=s, temperature=2.0) for s in range(n)]
    tokens = sampler(logits.expand(n, 8), states).token_ids
    assert chi_square(tokens, (logits / 2.0).softmax(-1)) < CHI2_7DOF_P999


# -- structured masks ---------------------------------------------------------------------
def test_mask_forbids_tokens(sampler: Sampler) -> None:
    logits = random_logits(1).expand(300, V).contiguous()
    mask = torch.zeros(V, dtype=torch.bool)
    mask[[2, 9, 17]] = True
    torch.manual_seed(0)
    tokens = sampler(logits, [state(mask=mask, temperature=2.0) for _ in range(300)]).token_ids
    assert set(tokens) <= {2, 9, 17}
    greedy = sampler(logits[:1], [state(mask=mask, temperature=0.0)]).token_ids[0]
    assert greedy == max((2, 9, 17), key=lambda t: float(logits[0, t]))


def test_short_mask_disallows_the_rest(sampler: Sampler) -> None:
    logits = torch.zeros(1, V)
    logits[0, V - 1] = 10.0
    mask = torch.ones(V - 10, dtype=torch.bool)
    assert sampler(logits, [state(mask=mask, temperature=0.0)]).token_ids[0] < V - 10


# -- logprobs -----------------------------------------------------------------------------
def test_logprobs_are_log_softmax_before_temperature(sampler: Sampler) -> None:
    logits = random_logits(4)
    states = [
        state(logprobs=3, temperature=0.5, seed=1),
        state(),
        state(logprobs=0, temperature=0.0),
        state(logprobs=5, output=[7, 7], frequency_penalty=1.0, seed=2),
    ]
    result = sampler(logits, states)
    assert result.logprobs is not None and len(result.logprobs) == 4
    assert result.logprobs[1] is None
    expected = torch.log_softmax(sampler.process(logits, states), dim=-1)
    for i, k in ((0, 3), (2, 0), (3, 5)):
        lp = result.logprobs[i]
        assert lp is not None
        tok = result.token_ids[i]
        assert lp.token_id == tok and lp.token == f"<{tok}>"
        assert lp.logprob == pytest.approx(float(expected[i, tok]), abs=1e-6)
        assert len(lp.top) == k
        assert [t for t, _, _ in lp.top] == expected[i].topk(k).indices.tolist()
        values = [v for _, _, v in lp.top]
        assert values == sorted(values, reverse=True)
        assert values == pytest.approx(expected[i].topk(k).values.tolist(), abs=1e-6)
        assert all(text == f"<{t}>" for t, text, _ in lp.top)
    assert expected[3, 7] < torch.log_softmax(logits[3], -1)[7]  # penalties are included
