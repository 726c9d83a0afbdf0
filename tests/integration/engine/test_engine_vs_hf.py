"""The native engine against Hugging Face ``generate`` on the same weights, token for token."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import ChatPrompt, SamplingParams
from llmeco.settings import Settings

CHATS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three fruits.",
    "Explain what a CPU does in one sentence.",
    "Translate 'good morning' into Spanish.",
    "What is 12 plus 30?",
]


async def collect(
    engine: AsyncEngine, prompt: object, params: SamplingParams, rid: str
) -> list[int]:
    ids: list[int] = []
    async for out in engine.generate(prompt, params, rid):  # type: ignore[arg-type]
        for d in out.deltas:
            ids.extend(d.token_ids)
    return ids


def hf_greedy(
    model: torch.nn.Module, prompt_ids: list[int], max_new: int, eos: list[int]
) -> list[int]:
    out = model.generate(  # type: ignore[operator]
        torch.tensor([prompt_ids]),
        attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
        max_new_tokens=max_new,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=eos[0],
    )
    return [int(t) for t in out[0, len(prompt_ids) :]]


@pytest.fixture(scope="module")
def tiny_engine(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncEngine:
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        kv_cache_tokens=2048,
        kv_block_size=8,
        max_num_batched_tokens=48,  # small budget: long prompts are chunked
        max_num_seqs=8,
        quantization="none",  # float32, as HF runs it (the CPU default quantizes)
    )
    return AsyncEngine.from_ref(str(tiny_llama_dir), settings)


async def test_tiny_llama_staggered_prompts_match_hf(
    tiny_engine: AsyncEngine, tiny_llama_dir: Path
) -> None:
    hf = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(3)
    lengths = [3, 17, 60, 1, 33, 90, 8, 120]
    prompts = [torch.randint(3, 1000, (n,), generator=gen).tolist() for n in lengths]
    params = SamplingParams(max_tokens=24, temperature=0.0)
    eos = list(tiny_engine.model_info.eos_token_ids)

    async def staggered(i: int, p: list[int]) -> list[int]:
        await asyncio.sleep(0.03 * i)  # arrive while earlier requests are mid-generation
        return await collect(tiny_engine, p, params, f"tiny-{i}")

    got = await asyncio.gather(*(staggered(i, p) for i, p in enumerate(prompts)))
    for p, ours in zip(prompts, got, strict=True):
        assert ours == hf_greedy(hf, p, 24, eos)
    stats = tiny_engine.stats()
    assert stats.running == 0 and stats.kv_blocks_used == 0


@pytest.mark.slow
async def test_smollm2_chat_prompts_match_hf(default_model_dir: Path, tmp_path: Path) -> None:
    engine = AsyncEngine.from_ref(
        str(default_model_dir),
        Settings(home=tmp_path, kv_cache_tokens=4096, quantization="none"),  # float32, as HF
    )
    try:
        hf = AutoModelForCausalLM.from_pretrained(default_model_dir, dtype=torch.float32).eval()
        params = SamplingParams(max_tokens=40, temperature=0.0)
        prompts = [ChatPrompt([{"role": "user", "content": c}]) for c in CHATS]
        got = await asyncio.gather(
            *(collect(engine, p, params, f"chat-{i}") for i, p in enumerate(prompts))
        )
        eos = list(engine.model_info.eos_token_ids)
        for p, ours in zip(prompts, got, strict=True):
            ref = hf_greedy(hf, engine.encode(p), 40, eos)
            assert ours == ref, (engine.decode(ours), engine.decode(ref))
    finally:
        await engine.shutdown()
