"""Fixtures of the training integration tests: the shipped corpus prepared once, a small BPE
tokenizer, and a tiny pretraining config written as YAML (what a user passes to the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from llmeco.data.pipeline import PrepareOptions, prepare_dataset

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="session")
def corpus_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/corpus + examples/chat as a prepared dataset (20% validation)."""
    out = tmp_path_factory.mktemp("corpus") / "ds"
    prepare_dataset(
        [EXAMPLES / "corpus", EXAMPLES / "chat"], out, PrepareOptions(validation_fraction=0.2)
    )
    return out


@pytest.fixture(scope="session")
def corpus_tokenizer(corpus_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-token byte-level BPE tokenizer trained on ``corpus_dataset``."""
    from llmeco.data.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(corpus_dataset, 400, out)
    return out


@pytest.fixture
def pretrain_yaml(
    tmp_path: Path, corpus_dataset: Path, corpus_tokenizer: Path
) -> Callable[..., Path]:
    """Write a tiny-Llama pretraining config (extra keys override) and return its path."""

    def write(name: str = "run", **extra: object) -> Path:
        data: dict[str, object] = {
            "output_dir": str(tmp_path / name),
            "model": {"tokenizer": str(corpus_tokenizer), "preset": "tiny"},
            "data": {"dataset": str(corpus_dataset)},
            "optim": {"lr": 3e-3, "warmup_steps": 3},
            "seq_len": 64,
            "batch_size": 4,
            "eval_batches": 2,
            "seed": 1,
            **extra,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture(autouse=True)
def _single_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see the root conftest)."""
