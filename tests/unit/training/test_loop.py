"""The training loop end to end: exact resume, a servable output dir, the CLI."""

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
from llmeco.training.config import TrainConfig, load_config
from llmeco.training.loop import LOG_FILE, lr_lambda, train

QUIET = Console(quiet=True)


def _pretrain(out: Path, dataset: Path, tokenizer: Path, **extra: object) -> TrainConfig:
    data = {
        "task": "pretrain",
        "output_dir": str(out),
        "model": {"tokenizer": str(tokenizer), "preset": "tiny"},
        "data": {"dataset": str(dataset)},
        "optim": {"lr": 3e-3, "warmup_steps": 2},
        "max_steps": 6,
        "batch_size": 2,
        "grad_accum": 2,
        "seq_len": 32,
        "eval_every": 3,
        "eval_batches": 2,
        "save_every": 3,
        **extra,
    }
    return TrainConfig.model_validate(data)


def _losses(out: Path) -> list[float]:
    lines = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    return [entry["loss"] for entry in lines if "loss" in entry]


def test_lr_schedule() -> None:
    assert lr_lambda(0, 4, 20, 0.1) == pytest.approx(0.25)
    assert lr_lambda(4, 4, 20, 0.1) == pytest.approx(1.0)
    assert lr_lambda(20, 4, 20, 0.1) == pytest.approx(0.1)


def test_resume_continues_exactly(
    tmp_path: Path, example_dataset: Path, small_tokenizer: Path
) -> None:
    """6 steps straight ≡ 3 steps, "kill", --resume for 3 more: identical weights and losses."""
    straight = _pretrain(tmp_path / "a", example_dataset, small_tokenizer)
    metrics = train(straight, console=QUIET, show_progress=False)
    assert metrics["step"] == 6 and metrics["eval_loss"] > 0

    interrupted = _pretrain(tmp_path / "b", example_dataset, small_tokenizer)
    train(interrupted, console=QUIET, show_progress=False, stop_after=3)
    assert not (tmp_path / "b" / "config.json").exists()  # killed: no final model
    train(interrupted, resume=True, console=QUIET, show_progress=False)

    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    assert len(_losses(tmp_path / "b")) == 6

    record = json.loads((tmp_path / "a" / "training.json").read_text())
    assert record["data_manifest_sha256"] and record["final_metrics"]["step"] == 6
    assert record["config"]["model"]["preset"] == "tiny"


def test_resume_refuses_a_different_config(
    tmp_path: Path, example_dataset: Path, small_tokenizer: Path
) -> None:
    config = _pretrain(tmp_path / "c", example_dataset, small_tokenizer, max_steps=3)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(config, resume=True, console=QUIET, show_progress=False)
    train(config, console=QUIET, show_progress=False, stop_after=3)
    with pytest.raises(ConfigError, match="not empty"):
        train(config, console=QUIET, show_progress=False)
    changed = _pretrain(tmp_path / "c", example_dataset, small_tokenizer, max_steps=3, seed=5)
    with pytest.raises(ConfigError, match="different config"):
        train(changed, resume=True, console=QUIET, show_progress=False)


def test_sft_output_loads_in_transformers_and_serves(
    tmp_path: Path, example_dataset: Path, tiny_llama_dir: Path, cached_home: Path
) -> None:
    """Fine-tune the tiny Llama for 2 steps; the output dir is a HF model the engine serves."""
    from transformers import AutoModelForCausalLM

    from llmeco.engine.async_engine import AsyncEngine
    from llmeco.engine.request import ChatPrompt, SamplingParams

    out = tmp_path / "sft"
    config = load_config(
        None,
        "sft",
        [
            f"output_dir={out}",
            f"model.base={tiny_llama_dir}",
            f"data.dataset={example_dataset}",
            "max_steps=2",
            "batch_size=2",
            "seq_len=128",
            "eval_batches=1",
        ],
    )
    metrics = train(config, settings=Settings(home=cached_home), console=QUIET, show_progress=False)
    assert metrics["eval_loss"] > 0
    model = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    assert model.config.num_hidden_layers == 2
    gen = json.loads((out / "generation_config.json").read_text())
    assert 2 in gen["eos_token_id"]  # <|im_end|>: a fine-tuned chat model must stop

    async def ask() -> list[int]:
        engine = AsyncEngine.from_ref(str(out), Settings(home=cached_home, device="cpu"))
        tokens: list[int] = []
        try:
            prompt = ChatPrompt([{"role": "user", "content": "How long is delivery?"}])
            params = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)
            async for output in engine.generate(prompt, params, "t1"):
                for delta in output.deltas:
                    tokens.extend(delta.token_ids)
        finally:
            await engine.shutdown(timeout=1)
        return tokens

    assert len(asyncio.run(ask())) == 4


def test_cli_train_reports_bad_config(tmp_path: Path) -> None:
    run = tmp_path / "run.yaml"
    run.write_text("output_dir: o\ndata: {dataset: d}\nmodel: {tokenizer: t}\nsteps: 3\n")
    result = CliRunner().invoke(app, ["train", "pretrain", "--config", str(run)])
    assert result.exit_code == 2
    assert "steps: Extra inputs are not permitted" in result.output


def test_cli_pretrain_runs(tmp_path: Path, example_dataset: Path, small_tokenizer: Path) -> None:
    out = tmp_path / "run"
    args = [
        "train", "pretrain",
        "--set", f"output_dir={out}", "--set", f"model.tokenizer={small_tokenizer}",
        "--set", f"data.dataset={example_dataset}", "--set", "max_steps=2",
        "--set", "batch_size=2", "--set", "seq_len=32", "--set", "eval_batches=1",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "saved model to" in result.output and (out / "model.safetensors").is_file()
    # Beside the model: the JSONL log, TensorBoard events, the loss plot and the run record.
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((out / "tensorboard").iterdir())
    record = json.loads((out / "training.json").read_text())
    assert record["code_version"]["llmeco"] and "git_sha" in record["code_version"]
    assert record["world_size"] == 1 and record["steps"] == 2 and record["parameters"] > 0


def test_fine_tuned_model_stops(tmp_path: Path, tiny_llama_dir: Path, cached_home: Path) -> None:
    """With the end token in the labels an SFT model learns to stop; masking it out of the
    loss trains a model that never stops (trl #1623).

    The tiny random Llama is overfit on one answer; the engine, greedy, must then produce
    that answer and finish with ``stop`` (on ``<|im_end|>``) well before ``max_tokens``.
    """
    from llmeco.data.pipeline import PrepareOptions, prepare_dataset
    from llmeco.engine.async_engine import AsyncEngine
    from llmeco.engine.request import ChatPrompt, SamplingParams

    questions = ["How long is delivery?", "When will my bike arrive?", "Delivery time?"]
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Soon."}]}
        for q in questions
    ]
    (tmp_path / "chat.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    dataset = tmp_path / "ds"
    options = PrepareOptions(validation_fraction=0.0, near_dedup=False, redact=False)
    prepare_dataset([tmp_path / "chat.jsonl"], dataset, options)
    out = tmp_path / "sft"
    config = load_config(
        None,
        "sft",
        [
            f"output_dir={out}",
            f"model.base={tiny_llama_dir}",
            f"data.dataset={dataset}",
            "max_steps=25",
            "batch_size=3",
            "seq_len=96",
            "optim.lr=1e-2",
            "optim.warmup_steps=0",
            "optim.weight_decay=0",
        ],
    )
    train(config, settings=Settings(home=cached_home), console=QUIET, show_progress=False)

    async def ask() -> tuple[str, str | None]:
        engine = AsyncEngine.from_ref(str(out), Settings(home=cached_home, device="cpu"))
        text, reason = "", None
        try:
            prompt = ChatPrompt([{"role": "user", "content": questions[0]}])
            params = SamplingParams(max_tokens=20, temperature=0.0)
            async for output in engine.generate(prompt, params, "stop-test"):
                for delta in output.deltas:
                    text += delta.text
                    reason = delta.finish_reason or reason
        finally:
            await engine.shutdown(timeout=1)
        return text, reason

    assert asyncio.run(ask()) == ("Soon.", "stop")


def test_sft_resume_continues_exactly(
    tmp_path: Path, example_dataset: Path, tiny_llama_dir: Path, cached_home: Path
) -> None:
    """Resume also holds for SFT: padded batches of chats, accumulation, a loaded base."""
    settings = Settings(home=cached_home)

    def config(out: Path) -> TrainConfig:
        overrides = [
            f"output_dir={out}",
            f"model.base={tiny_llama_dir}",
            f"data.dataset={example_dataset}",
            "max_steps=4",
            "batch_size=2",
            "grad_accum=2",
            "seq_len=96",
            "save_every=2",
            "eval_every=0",
            "eval_batches=1",
            "optim.lr=1e-3",
        ]
        return load_config(None, "sft", overrides)

    train(config(tmp_path / "a"), settings=settings, console=QUIET, show_progress=False)
    b = config(tmp_path / "b")
    train(b, settings=settings, console=QUIET, show_progress=False, stop_after=2)
    train(b, resume=True, settings=settings, console=QUIET, show_progress=False)
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
