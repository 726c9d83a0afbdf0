"""``LLMECO_FUSED_DECODE``: all-decode steps through the compiled C++ loop give exactly the
tokens the Python layers give (float32 plain and oneDNN-packed, int8, int4; Llama and Qwen2's
biases), with several sequences decoding at once at different lengths; models the loop does
not cover are named with the reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from test_engine_vs_hf import collect
from test_families_vs_hf import save_tiny, tiny_config

from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import SamplingParams
from llmeco.modeling.decoder import build_model
from llmeco.modeling.fused import unsupported_reason
from llmeco.modeling.load import load_tokenizer
from llmeco.settings import Settings

#: Prompts of different lengths with different budgets: sequences join and leave the batch
#: at different steps, so decode steps run 1 to 6 rows over contexts of different lengths.
PROMPTS = [list(range(100 + i, 100 + i + 5 + 7 * i)) for i in range(6)]
BUDGETS = [40, 12, 33, 5, 27, 18]


async def greedy_tokens(engine: AsyncEngine) -> list[list[int]]:
    runs = []
    for i, (prompt, budget) in enumerate(zip(PROMPTS, BUDGETS, strict=True)):
        params = SamplingParams(max_tokens=budget, temperature=0.0, ignore_eos=True)
        runs.append(collect(engine, prompt, params, f"r{i}"))
        await asyncio.sleep(0)
    return list(await asyncio.gather(*runs))


@pytest.fixture(scope="module")
def tiny_qwen2_dir(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Qwen2: biases on q/k/v, which the loop adds after the product."""
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("tiny-qwen2")
    save_tiny("qwen2", load_tokenizer(default_model_dir), path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    torch.manual_seed(5)
    with torch.no_grad():  # transformers starts biases at zero: make them count
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.5)
    model.save_pretrained(path)
    return path


@pytest.mark.parametrize(
    ("family", "quantization"),
    [
        ("llama", "packed"),  # float32 on oneDNN-packed weights: the CPU float32 default
        ("llama", "none"),
        ("llama", "int8"),
        ("llama", "int4"),
        ("qwen2", "packed"),
        ("qwen2", "int8"),
    ],
)
async def test_fused_steps_give_the_python_layers_tokens(
    tiny_llama_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path, family: str, quantization: str
) -> None:
    model_dir = tiny_llama_dir if family == "llama" else tiny_qwen2_dir
    results = {}
    for fused in (False, True):
        settings = Settings(
            home=tmp_path / str(fused),
            kv_cache_tokens=2048,
            quantization="none" if quantization == "packed" else quantization,  # type: ignore[arg-type]
            cpu_packed_linear=quantization == "packed",
            fused_decode=fused,
        )
        engine = AsyncEngine.from_ref(str(model_dir), settings)
        try:
            results[fused] = await greedy_tokens(engine)
            assert (engine._core.runner.model.fused_decode is not None) is fused
        finally:
            await engine.shutdown()
    assert [len(r) for r in results[True]] == BUDGETS
    assert results[True] == results[False]


def test_the_loop_names_what_it_does_not_cover() -> None:
    def reason(model_type: str) -> str | None:
        config = tiny_config(model_type, 256)
        return unsupported_reason(build_model(config, torch.device("cpu"), torch.float32))

    assert (reason("gemma2") or "").startswith("gemma2 has")
    assert "sliding-window" in (reason("mistral") or "")
    assert reason("qwen2") is None
