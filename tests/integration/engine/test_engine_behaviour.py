"""Engine behaviour a server relies on: seeds, cancellation, queue bound, context checks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import SamplingParams
from llmeco.errors import ContextLengthExceeded, InvalidRequest, Overloaded
from llmeco.settings import Settings


def make_engine(path: Path, home: Path, **kw: object) -> AsyncEngine:
    base: dict[str, object] = {"home": home, "kv_cache_tokens": 1024, "kv_block_size": 8}
    base.update(kw)
    return AsyncEngine.from_ref(str(path), Settings(**base))  # type: ignore[arg-type]


async def run(
    engine: AsyncEngine, prompt: list[int], params: SamplingParams, rid: str
) -> list[int]:
    ids: list[int] = []
    async for out in engine.generate(prompt, params, rid):
        for d in out.deltas:
            ids.extend(d.token_ids)
    return ids


async def test_seeded_sampling_is_independent_of_the_batch(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    engine = make_engine(tiny_llama_dir, tmp_path)
    try:
        prompt = list(range(10, 30))
        seeded = SamplingParams(
            max_tokens=20, temperature=1.0, top_p=0.9, seed=1234, ignore_eos=True
        )
        alone = await run(engine, prompt, seeded, "alone")
        others = [
            run(
                engine,
                list(range(5, 5 + n)),
                SamplingParams(max_tokens=30, temperature=1.0),
                f"o{n}",
            )
            for n in (3, 11, 40)
        ]
        results = await asyncio.gather(run(engine, prompt, seeded, "crowd"), *others)
        assert results[0] == alone
        other_seed = SamplingParams(
            max_tokens=20, temperature=1.0, top_p=0.9, seed=99, ignore_eos=True
        )
        assert await run(engine, prompt, other_seed, "other") != alone
    finally:
        await engine.shutdown()


async def test_cancelling_a_stream_frees_its_slot(tiny_llama_dir: Path, tmp_path: Path) -> None:
    engine = make_engine(tiny_llama_dir, tmp_path)
    try:
        params = SamplingParams(max_tokens=400, temperature=0.0, ignore_eos=True)
        stream = engine.generate(list(range(1, 50)), params, "cancel-me")
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 3:
                break
        await stream.aclose()
        stats = engine.stats()
        assert stats.running == 0 and stats.waiting == 0 and stats.kv_blocks_used == 0
        # the engine keeps serving others
        assert (
            len(await run(engine, [5, 6, 7], SamplingParams(max_tokens=4, ignore_eos=True), "next"))
            == 4
        )
    finally:
        await engine.shutdown()


async def test_queue_bound_rejects_with_overloaded(tiny_llama_dir: Path, tmp_path: Path) -> None:
    engine = make_engine(
        tiny_llama_dir, tmp_path, max_num_seqs=1, max_num_batched_tokens=16, max_queue=2
    )
    try:
        params = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)
        gens = [engine.generate([1, 2, 3], params, f"q{i}") for i in range(5)]
        # Submission happens on the first iteration; start all five without waiting.
        tasks = [asyncio.ensure_future(g.__anext__()) for g in gens]
        done = await asyncio.gather(*tasks, return_exceptions=True)
        overloaded = [r for r in done if isinstance(r, Overloaded)]
        assert overloaded, done
        assert all(isinstance(r, Overloaded) or not isinstance(r, BaseException) for r in done)
        for g in gens:
            await g.aclose()
    finally:
        await engine.shutdown()


async def test_prompt_over_the_context_is_rejected_not_truncated(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    engine = make_engine(tiny_llama_dir, tmp_path, max_model_len=64)
    try:
        with pytest.raises(ContextLengthExceeded) as err:
            await run(engine, list(range(1, 61)), SamplingParams(max_tokens=10), "long")
        assert "60" in err.value.message and "10" in err.value.message and "64" in err.value.message
        with pytest.raises(InvalidRequest):
            await run(engine, [], SamplingParams(max_tokens=10), "empty")
        assert engine.stats().kv_blocks_used == 0
    finally:
        await engine.shutdown()


async def test_n_sequences_share_the_prompt_and_differ(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    engine = make_engine(tiny_llama_dir, tmp_path)
    try:
        params = SamplingParams(n=3, max_tokens=12, temperature=1.0, seed=7, ignore_eos=True)
        by_index: dict[int, list[int]] = {0: [], 1: [], 2: []}
        async for out in engine.generate(list(range(3, 40)), params, "n3"):
            for d in out.deltas:
                by_index[d.index].extend(d.token_ids)
        assert all(len(v) == 12 for v in by_index.values())
        assert len({tuple(v) for v in by_index.values()}) > 1
        assert engine.stats().kv_blocks_used == 0
    finally:
        await engine.shutdown()


async def test_logprobs_and_stop_strings(tiny_llama_dir: Path, tmp_path: Path) -> None:
    engine = make_engine(tiny_llama_dir, tmp_path)
    try:
        params = SamplingParams(max_tokens=8, temperature=0.0, logprobs=3, ignore_eos=True)
        async for out in engine.generate([4, 5, 6], params, "lp"):
            for d in out.deltas:
                assert d.logprobs is not None and len(d.logprobs) == len(d.token_ids)
                for lp in d.logprobs:
                    assert len(lp.top) == 3 and lp.logprob <= 0.0
                    assert lp.token_id == lp.top[0][0]  # greedy picks the most likely
        text = ""
        async for out in engine.generate(
            [4, 5, 6], SamplingParams(max_tokens=30, temperature=0.0, ignore_eos=True), "s"
        ):
            text += "".join(d.text for d in out.deltas)
        assert len(text) > 4
        stop = text[2:4]
        got = ""
        reason = None
        async for out in engine.generate(
            [4, 5, 6],
            SamplingParams(max_tokens=30, temperature=0.0, ignore_eos=True, stop=[stop]),
            "s2",
        ):
            for d in out.deltas:
                got += d.text
                reason = d.stop_reason or reason
        assert got == text[: text.index(stop)]
        assert reason == stop
    finally:
        await engine.shutdown()
