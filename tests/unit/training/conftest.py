"""Training fixtures: the shipped examples prepared once, and a 400-token BPE tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
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
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and on a shared, oversubscribed CPU an
    OpenMP team of two is many times slower than one thread; restored after each test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
