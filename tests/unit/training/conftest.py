"""Training fixtures: the shipped examples prepared once, and a 400-token BPE tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmeco.data.pipeline import PrepareOptions, prepare_dataset

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="session")
def example_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/corpus + examples/chat as a prepared dataset (20% validation)."""
    out = tmp_path_factory.mktemp("ds") / "ds"
    inputs = [EXAMPLES / "corpus", EXAMPLES / "chat"]
    prepare_dataset(inputs, out, PrepareOptions(validation_fraction=0.2))
    return out


@pytest.fixture(scope="session")
def small_tokenizer(example_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer with 400 tokens trained on ``example_dataset``."""
    from llmeco.data.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(example_dataset, 400, out)
    return out


@pytest.fixture(autouse=True)
def _single_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see the root conftest)."""
