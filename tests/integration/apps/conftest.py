"""Application integration fixtures: the packaged embedder (loaded once) and one torch thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """The packaged all-MiniLM-L6-v2 (loaded once per session, ~3 s)."""
    from llmeco.rag.embed import Embedder

    e = Embedder()
    yield e
    e.close()


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and on a shared, oversubscribed CPU an
    OpenMP team of two is many times slower than one thread; restored after each test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
