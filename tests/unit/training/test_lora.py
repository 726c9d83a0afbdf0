"""LoRA fine-tuning: only adapters train, they resume exactly, they merge into a servable model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file
from typer.testing import CliRunner

from llmeco.cli.main import app
from llmeco.errors import ConfigError
from llmeco.settings import Settings
from llmeco.training.checkpoint import latest_checkpoint
from llmeco.training.config import TrainConfig, load_config
from llmeco.training.loop import train
from llmeco.training.runlog import read_log

QUIET = Console(quiet=True)


def _config(out: Path, base: Path, dataset: Path, *extra: str) -> TrainConfig:
    overrides = [
        f"output_dir={out}",
        f"model.base={base}",
        f"data.dataset={dataset}",
        "lora={r: 4, alpha: 8, dropout: 0.1}",
        "max_steps=4",
        "batch_size=2",
        "grad_accum=2",
        "seq_len=96",
        "save_every=2",
        "eval_every=2",
        "eval_batches=1",
        "optim.lr=1e-2",
        *extra,
    ]
    return load_config(None, "sft", overrides)


def test_lora_rules() -> None:
    base = ["output_dir=o", "data.dataset=d", "lora={r: 4}"]
    with pytest.raises(ConfigError, match="lora applies to sft and classify"):
        load_config(None, "pretrain", [*base, "model.tokenizer=t"])
    with pytest.raises(ConfigError, match="fsdp does not support lora"):
        load_config(None, "sft", [*base, "model.base=b", "distributed=fsdp"])
    with pytest.raises(ConfigError, match=r"lora\.r: Input should be greater than or equal to 1"):
        load_config(None, "sft", [*base, "model.base=b", "lora.r=0"])


def test_lora_resumes_exactly_and_merges(
    tmp_path: Path, example_dataset: Path, tiny_llama_dir: Path, cached_home: Path
) -> None:
    """A killed LoRA run must resume with adapter, optimizer, scheduler, RNG (adapter dropout
    is on) and data position restored: same losses, same adapter (peft #338)."""
    settings = Settings(home=cached_home)
    train(_config(tmp_path / "a", tiny_llama_dir, example_dataset), settings=settings,
          console=QUIET, show_progress=False)  # fmt: skip
    b = _config(tmp_path / "b", tiny_llama_dir, example_dataset)
    train(b, settings=settings, console=QUIET, show_progress=False, stop_after=2)
    checkpoint = latest_checkpoint(tmp_path / "b")
    assert checkpoint is not None
    saved = load_file(str(checkpoint / "model.safetensors"))
    assert saved and all("lora_" in key for key in saved)  # adapters only, not the base
    train(b, resume=True, settings=settings, console=QUIET, show_progress=False)

    def losses(out: Path) -> list[float]:
        return [e["loss"] for e in read_log(out) if "loss" in e]

    assert losses(tmp_path / "a") == losses(tmp_path / "b") and len(losses(tmp_path / "a")) == 4
    adapter_a = load_file(str(tmp_path / "a" / "adapter" / "adapter_model.safetensors"))
    adapter_b = load_file(str(tmp_path / "b" / "adapter" / "adapter_model.safetensors"))
    assert adapter_a.keys() == adapter_b.keys() and adapter_a
    for key in adapter_a:
        assert torch.equal(adapter_a[key], adapter_b[key]), key
    assert not (tmp_path / "a" / "adapter" / "adapter_model.bin").exists()

    # The run's own output is the merged model; `llmeco train merge` rebuilds the same weights.
    merged = tmp_path / "merged"
    result = CliRunner().invoke(
        app,
        ["train", "merge", "--base", str(tiny_llama_dir), "--adapter",
         str(tmp_path / "a" / "adapter"), "--out", str(merged)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    in_run = load_file(str(tmp_path / "a" / "model.safetensors"))
    by_cli = load_file(str(merged / "model.safetensors"))
    base = load_file(str(tiny_llama_dir / "model.safetensors"))
    assert in_run.keys() == by_cli.keys() == base.keys()
    for key in in_run:
        torch.testing.assert_close(in_run[key], by_cli[key])
    assert not torch.equal(in_run["model.layers.0.self_attn.q_proj.weight"],
                           base["model.layers.0.self_attn.q_proj.weight"])  # fmt: skip
    record = json.loads((merged / "training.json").read_text())
    assert record["merged"]["kind"] == "causal" and record["training"]["task"] == "sft"

    async def ask() -> int:
        from llmeco.engine.async_engine import AsyncEngine
        from llmeco.engine.request import ChatPrompt, SamplingParams

        engine = AsyncEngine.from_ref(str(merged), Settings(home=cached_home, device="cpu"))
        n = 0
        try:
            prompt = ChatPrompt([{"role": "user", "content": "How long is delivery?"}])
            params = SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True)
            async for output in engine.generate(prompt, params, "lora"):
                n += sum(len(d.token_ids) for d in output.deltas)
        finally:
            await engine.shutdown(timeout=1)
        return n

    assert asyncio.run(ask()) == 3


def test_merge_errors(tmp_path: Path, tiny_llama_dir: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        app, ["train", "merge", "--base", str(tiny_llama_dir), "--adapter", str(tmp_path),
              "--out", str(tmp_path / "m")],
    )  # fmt: skip
    assert missing.exit_code == 2 and "holds no LoRA adapter" in missing.output
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80pickle")
    pickled = runner.invoke(
        app, ["train", "merge", "--base", str(tiny_llama_dir), "--adapter", str(tmp_path),
              "--out", str(tmp_path / "m")],
    )  # fmt: skip
    assert pickled.exit_code == 2 and "pickled" in pickled.output
