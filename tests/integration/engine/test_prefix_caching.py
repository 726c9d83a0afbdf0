"""Automatic prefix caching changes no output: greedy tokens with it on equal those with it
off, for concurrent requests sharing a long prefix, and with a KV pool so small that
sequences are preempted and resume from cached blocks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import SamplingParams
from llmeco.settings import Settings

SHARED = [(i * 37) % 3000 + 10 for i in range(45)]  # 5 full blocks of 8 plus 5 tokens
PROMPTS = [[*SHARED, *range(500 + 11 * k, 500 + 11 * k + 3 + k)] for k in range(6)]


def make_engine(path: Path, home: Path, caching: bool, kv_tokens: int) -> AsyncEngine:
    settings = Settings(
        home=home,
        kv_cache_tokens=kv_tokens,
        kv_block_size=8,
        prefix_caching=caching,
        quantization="none",
        max_num_batched_tokens=64,
        max_num_seqs=6,
    )
    return AsyncEngine.from_ref(str(path), settings)


async def generate(engine: AsyncEngine, prompt: list[int], rid: str) -> tuple[list[int], int]:
    params = SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)
    ids: list[int] = []
    cached = 0
    async for out in engine.generate(prompt, params, rid):
        cached = out.num_cached_tokens
        for d in out.deltas:
            ids.extend(d.token_ids)
    return ids, cached


async def run_all(engine: AsyncEngine, tag: str) -> tuple[list[list[int]], list[int]]:
    """One request first (fills the cache), then the rest concurrently, then a repeat."""
    first = await generate(engine, PROMPTS[0], f"{tag}-0")
    rest = await asyncio.gather(
        *(generate(engine, p, f"{tag}-{i}") for i, p in enumerate(PROMPTS[1:], 1))
    )
    again = await generate(engine, PROMPTS[0], f"{tag}-again")
    results = [first, *rest, again]
    return [r[0] for r in results], [r[1] for r in results]


async def test_greedy_output_is_identical_with_and_without_prefix_caching(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    outputs: dict[tuple[bool, int], list[list[int]]] = {}
    for kv_tokens in (1024, 160):  # roomy, then tight enough to force preemption
        for caching in (False, True):
            engine = make_engine(tiny_llama_dir, tmp_path, caching, kv_tokens)
            try:
                tokens, cached = await run_all(engine, f"{caching}-{kv_tokens}")
                stats = engine.stats()
            finally:
                await engine.shutdown()
            outputs[(caching, kv_tokens)] = tokens
            if not caching:
                assert cached == [0] * len(cached)
                assert stats.prefix_hit_tokens == 0
                continue
            assert cached[0] == 0
            assert stats.prefix_hit_tokens > 0
            if kv_tokens == 1024:
                # every later request finds the 5 shared blocks; the repeat finds its own
                assert all(c >= 40 for c in cached[1:])
                assert stats.preemptions == 0
            else:
                assert stats.preemptions > 0
            assert stats.kv_blocks_used == 0
    assert outputs[(True, 1024)] == outputs[(False, 1024)]
    assert outputs[(True, 160)] == outputs[(False, 160)]
    assert outputs[(False, 160)] == outputs[(False, 1024)]
