"""Run configs: YAML + --set overrides, with clear messages for unknown or bad keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmeco.errors import ConfigError
from llmeco.training.config import ModelSpec, load_config

BASE = "output_dir: out\ndata: {dataset: ds}\nmodel: {tokenizer: tok}\n"


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_overrides_are_parsed_and_validated(tmp_path: Path) -> None:
    config = load_config(
        _yaml(tmp_path, BASE), "pretrain", ["optim.lr=1e-3", "max_steps=7", "model.preset=small"]
    )
    assert config.optim.lr == 1e-3 and config.max_steps == 7
    assert config.model.dims()["hidden_size"] == 256


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"optim\.lrr: Extra inputs are not permitted"):
        load_config(_yaml(tmp_path, BASE + "optim: {lrr: 0.1}\n"), "pretrain")


def test_out_of_range_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"batch_size: Input should be greater than or equal to 1"
    ):
        load_config(_yaml(tmp_path, BASE), "pretrain", ["batch_size=0"])
    with pytest.raises(ConfigError, match=r"optim\.lr: Input should be greater than 0"):
        load_config(_yaml(tmp_path, BASE), "pretrain", ["optim.lr=-1"])


def test_task_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sft needs model\.base"):
        load_config(_yaml(tmp_path, BASE), "sft")
    with pytest.raises(ConfigError, match="task: pretrain but you ran `train sft`"):
        load_config(_yaml(tmp_path, BASE + "task: pretrain\n"), "sft")
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(_yaml(tmp_path, BASE), "pretrain", ["max_steps"])


def test_dims_checks() -> None:
    with pytest.raises(ConfigError, match=r"multiple of model\.num_heads"):
        ModelSpec(preset="tiny", hidden_size=66).dims()
    assert (
        ModelSpec(
            preset=None, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64
        ).dims()["num_kv_heads"]
        == 2
    )


def test_classify_and_feature_rules(tmp_path: Path) -> None:
    base = ["output_dir=o", "data.dataset=d"]
    with pytest.raises(ConfigError, match=r"classify needs model\.base"):
        load_config(None, "classify", base)
    with pytest.raises(ConfigError, match="freeze_base applies to classify only"):
        load_config(None, "sft", [*base, "model.base=b", "model.freeze_base=true"])
    with pytest.raises(ConfigError, match=r"either model\.freeze_base or lora"):
        load_config(None, "classify", [*base, "model.base=b", "model.freeze_base=true", "lora={}"])
    with pytest.raises(ConfigError, match="needs task classify"):
        load_config(None, "sft", [*base, "model.base=b", "early_stopping.metric=eval_accuracy"])
    with pytest.raises(ConfigError, match=r"precision: Input should be 'auto', 'fp32' or 'bf16'"):
        load_config(None, "sft", [*base, "model.base=b", "precision=fp16"])
    config = load_config(
        None, "classify", [*base, "model.base=b", "lora={r: 8}", "epochs=2", "compile=true"]
    )
    assert config.lora is not None and config.lora.target_modules[0] == "q_proj"
    assert config.epochs == 2 and config.compile
    # Logging and eval cadence do not change the trajectory, so resume accepts them changed.
    assert config.fingerprint() == load_config(
        None, "classify", [*base, "model.base=b", "lora={r: 8}", "epochs=2", "compile=true",
                           "eval_every=7", "tensorboard=false"],
    ).fingerprint()  # fmt: skip
