"""Fixtures for knowledge-base tests: a fresh SQLite store and a fast, deterministic embedder.

The fake embedder hashes words into a small vector (bag of words). It stands in for the
packaged sentence-transformers model where a test is about ingestion, storage or fusion
rather than embedding quality; the integration tests use the real model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from llmeco.settings import Settings
from llmeco.store import Store


class HashEmbedder:
    """Bag-of-words vectors: each lower-cased word adds 1 to a hashed dimension."""

    name = "hash-embedder"
    dimensions = 64

    def __init__(self) -> None:
        self.calls: list[int] = []  # batch sizes, to check caching and batching

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest()[:8], 16)
                out[i, h % self.dimensions] += 1.0
            norm = float(np.linalg.norm(out[i]))
            if norm:
                out[i] /= norm
        return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A migrated SQLite store in a temporary home."""
    return Store.from_settings(Settings(home=tmp_path / "home"))


@pytest.fixture
def embedder() -> HashEmbedder:
    """A fresh fake embedder (counts its calls)."""
    return HashEmbedder()
