"""Packed token shards (`llmeco data pack`) read by `llmeco train pretrain` via memmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from llmeco.data.packed import PackedBlocks, pack_dataset
from llmeco.data.pipeline import load_records
from llmeco.errors import ConfigError
from llmeco.modeling.load import load_tokenizer
from llmeco.training.config import TrainConfig
from llmeco.training.loop import train
from llmeco.training.objectives import pack_blocks


def test_packed_blocks_match_in_memory_packing(
    tmp_path: Path, example_dataset: Path, small_tokenizer: Path
) -> None:
    tok = load_tokenizer(small_tokenizer)
    index = pack_dataset(example_dataset, tok, tmp_path / "packed")
    assert index["dtype"] == "uint16" and index["splits"]["train"]["documents"] > 0
    blocks = PackedBlocks(tmp_path / "packed", "train", 32)
    expected = pack_blocks(load_records(example_dataset, "train"), tok, 32)
    assert len(blocks) == len(expected) and blocks[:] == expected
    assert blocks[-1] == expected[-1]
    shard = index["splits"]["train"]["shards"][0]
    starts = np.load(tmp_path / "packed" / "train-00000.idx.npy")
    assert len(starts) == shard["documents"] and starts[0] == 0
    with pytest.raises(IndexError):
        blocks[len(blocks)]


def test_small_shards_and_a_foreign_tokenizer(
    tmp_path: Path, example_dataset: Path, small_tokenizer: Path, default_model_dir: Path
) -> None:
    tok = load_tokenizer(small_tokenizer)
    index = pack_dataset(example_dataset, tok, tmp_path / "p", shard_tokens=2000)
    shards = index["splits"]["train"]["shards"]
    assert (
        len(shards) > 1 and sum(s["tokens"] for s in shards) == index["splits"]["train"]["tokens"]
    )
    blocks = PackedBlocks(tmp_path / "p", "train", 64)
    assert len(blocks) == sum(s["tokens"] // 64 for s in shards)
    with pytest.raises(ConfigError, match="pack again"):
        blocks.check_tokenizer(load_tokenizer(default_model_dir))


def test_pretrain_reads_packed_tokens(
    tmp_path: Path, example_dataset: Path, small_tokenizer: Path
) -> None:
    pack_dataset(example_dataset, load_tokenizer(small_tokenizer), tmp_path / "packed")
    config = TrainConfig.model_validate(
        {
            "task": "pretrain",
            "output_dir": str(tmp_path / "run"),
            "model": {"tokenizer": str(small_tokenizer), "preset": "tiny"},
            "data": {"dataset": str(tmp_path / "packed")},
            "max_steps": 3,
            "batch_size": 2,
            "seq_len": 32,
            "eval_every": 3,
            "eval_batches": 1,
        }
    )
    metrics = train(config, console=Console(quiet=True), show_progress=False)
    assert metrics["step"] == 3 and metrics["eval_loss"] > 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
