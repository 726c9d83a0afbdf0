"""Speculative decoding on real (tiny, random) models: exact greedy output, exact sampling.

The models have a 64-token vocabulary (with SmolLM2's tokenizer, whose first 64 ids are
plain tokens) so prompts can contain every token (prompt lookup always finds a draft) and
the exact distribution of three sampled tokens can be enumerated with Hugging Face.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import SamplingParams
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

VOCAB = 64


def _tiny(path: Path, tokenizer_dir: Path, seed: int, layers: int, noise: float = 0.0) -> Path:
    from llmeco.modeling.load import load_tokenizer

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.4)
        if noise:  # a draft close to the target: it agrees often, not always
            g = torch.Generator().manual_seed(1)
            w = model.lm_head.weight
            w.add_(torch.randn(w.shape, generator=g) * noise)
    model.save_pretrained(path)
    tok = load_tokenizer(tokenizer_dir)
    tok.model_max_length = 512
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(target, draft): the draft is the target with noise added to every weight."""
    root = tmp_path_factory.mktemp("spec-models")
    target = _tiny(root / "target", default_model_dir, seed=0, layers=2)
    draft = _tiny(root / "draft", default_model_dir, seed=0, layers=2, noise=0.2)
    return target, draft


def _engine(target: Path, home: Path, speculative: str = "off") -> AsyncEngine:
    settings = Settings(
        home=home,
        kv_cache_tokens=8192,
        kv_block_size=8,
        max_num_batched_tokens=96,
        max_num_seqs=64,
        max_queue=1024,
        threads=1,
        quantization="none",  # float32: the exactness claims are about the model as HF runs it
        speculative=speculative,
        num_speculative_tokens=4,
    )
    return AsyncEngine.from_ref(str(target), settings)


async def _run(
    engine: AsyncEngine, prompt: list[int], params: SamplingParams, rid: str
) -> list[int]:
    ids: list[int] = []
    async for out in engine.generate(prompt, params, rid):
        for d in out.deltas:
            ids.extend(d.token_ids)
    return ids


def _prompts() -> list[list[int]]:
    """Eight prompts with repeats (prompt lookup has something to copy), every token once."""
    g = torch.Generator().manual_seed(7)
    out = []
    for n in [5, 12, 30, 3, 44, 20, 9, 60]:
        base = torch.randint(3, VOCAB, (n,), generator=g).tolist()
        out.append(base + list(range(3, VOCAB)) + base)
    return out


async def _staggered(
    engine: AsyncEngine, prompts: list[list[int]], params: list[SamplingParams]
) -> list[list[int]]:
    async def one(i: int) -> list[int]:
        await asyncio.sleep(0.01 * i)  # arrive while others are mid-generation
        return await _run(engine, prompts[i], params[i], f"r{i}")

    return list(await asyncio.gather(*(one(i) for i in range(len(prompts)))))


async def test_greedy_output_identical_with_every_draft_source(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    target, draft = models
    prompts = _prompts()
    greedy = [SamplingParams(max_tokens=40, temperature=0.0, ignore_eos=True)] * len(prompts)
    base = _engine(target, tmp_path / "a")
    try:
        expected = await _staggered(base, prompts, greedy)
        # A prediction that is right for half the prompts and wrong for the others.
        predicted = [
            SamplingParams(
                max_tokens=40,
                temperature=0.0,
                ignore_eos=True,
                prediction=expected[i] if i % 2 else prompts[i][:40],
            )
            for i in range(len(prompts))
        ]
        with_prediction = await _staggered(base, prompts, predicted)
        stats = base.stats()
    finally:
        await base.shutdown()
    assert with_prediction == expected
    assert stats.spec_accepted_tokens > 0  # the right predictions were taken
    for method in ["ngram", f"draft:{draft}"]:
        engine = _engine(target, tmp_path / method.split(":")[0], method)
        try:
            got = await _staggered(engine, prompts, greedy)
            stats = engine.stats()
        finally:
            await engine.shutdown()
        assert got == expected, method
        assert stats.spec_draft_tokens > 0, method
        assert 0 < stats.spec_accepted_tokens < stats.spec_draft_tokens, method


def _exact_distribution(
    target: Path, prompt: list[int], top_k: int
) -> dict[tuple[int, ...], float]:
    """P(t1, t2, t3) under temperature 1 and top-k, enumerated with HF's model."""
    hf = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).eval()

    def step(prefix: list[int]) -> list[tuple[int, float]]:
        with torch.no_grad():
            logits = hf(torch.tensor([prefix])).logits[0, -1].float()
        values, ids = logits.topk(top_k)
        probs = values.softmax(-1)
        return list(zip(ids.tolist(), probs.tolist(), strict=True))

    dist: dict[tuple[int, ...], float] = {}
    for a, pa in step(prompt):
        for b, pb in step([*prompt, a]):
            for c, pc in step([*prompt, a, b]):
                dist[(a, b, c)] = pa * pb * pc
    return dist


def _chi_square_p(counts: Counter[tuple[int, ...]], dist: dict[tuple[int, ...], float]) -> float:
    """Goodness-of-fit p-value, cells with expected count < 5 pooled into one."""
    n = sum(counts.values())
    assert set(counts) <= set(dist), "a sample the exact distribution gives probability 0"
    stat, df, pooled_obs, pooled_exp = 0.0, -1, 0, 0.0
    for cell, p in dist.items():
        e, o = n * p, counts.get(cell, 0)
        if e < 5:
            pooled_obs, pooled_exp = pooled_obs + o, pooled_exp + e
            continue
        stat += (o - e) ** 2 / e
        df += 1
    if pooled_exp > 0:
        stat += (pooled_obs - pooled_exp) ** 2 / pooled_exp
        df += 1
    return float(torch.special.gammaincc(torch.tensor(df / 2), torch.tensor(stat / 2)))


@pytest.mark.parametrize("method", ["ngram", "draft"])
async def test_sampled_output_has_the_exact_distribution(
    models: tuple[Path, Path], tmp_path: Path, method: str
) -> None:
    target, draft = models
    prompt = [*range(3, VOCAB), 5, 9, 5, 9]
    top_k, n = 3, 600
    dist = _exact_distribution(target, prompt, top_k)
    spec = "ngram" if method == "ngram" else f"draft:{draft}"
    engine = _engine(target, tmp_path, spec)
    try:
        params = [
            SamplingParams(max_tokens=3, temperature=1.0, top_k=top_k, seed=i, ignore_eos=True)
            for i in range(n)
        ]
        outs = await asyncio.gather(
            *(_run(engine, prompt, p, f"s{i}") for i, p in enumerate(params))
        )
        stats = engine.stats()
    finally:
        await engine.shutdown()
    counts = Counter(tuple(o) for o in outs)
    assert all(len(o) == 3 for o in outs)
    # Drafts were verified, and both accepted and rejected: the rejection path is exercised.
    assert stats.spec_draft_tokens > n // 2
    assert 0 < stats.spec_accepted_tokens < stats.spec_draft_tokens
    p_value = _chi_square_p(counts, dist)
    assert p_value > 1e-3, (p_value, counts.most_common(5))
    # The test has power: the same samples against a distorted distribution fail.
    flat = {cell: 1 / len(dist) for cell in dist}
    assert _chi_square_p(counts, flat) < 1e-6
    assert math.isclose(sum(dist.values()), 1.0, rel_tol=1e-5)
