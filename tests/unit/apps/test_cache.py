"""The support assistant's embedding cache: same values, only misses computed, bounded."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from llmeco.apps.support.cache import CachedEmbeddings


class CountingEmbedder:
    """Deterministic vectors from the text's characters; records every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.piece_batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for i, t in enumerate(texts):
            for j, ch in enumerate(t):
                out[i, (ord(ch) + j) % 8] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def token_vectors(self, texts: Sequence[str]) -> list[tuple[list[str], np.ndarray]]:
        self.piece_batches.append(list(texts))
        return [(t.split(), self.embed(t.split())) for t in texts]


def test_values_are_the_wrapped_embedders_and_only_misses_are_computed() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbeddings(inner)
    first = cached.embed(["a b", "c d", "a b"])
    assert np.array_equal(first, CountingEmbedder().embed(["a b", "c d", "a b"]))
    assert inner.batches == [["a b", "c d"]]  # a repeated text is computed once
    again = cached.embed(["c d", "e f"])
    assert inner.batches[-1] == ["e f"] and np.array_equal(again[0], first[1])
    assert cached.embed([]).shape == (0, 8) and cached.embed(["a b"]).shape == (1, 8)
    assert len(inner.batches) == 3  # the empty call; "a b" came from the cache

    pieces = cached.token_vectors(["one two", "three"])
    assert [p for p, _ in pieces] == [["one", "two"], ["three"]]
    assert cached.token_vectors(["three", "one two"])[1][0] == ["one", "two"]
    assert inner.piece_batches == [["one two", "three"]]


def test_the_cache_is_bounded_and_forgets_the_least_recent() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbeddings(inner, vectors=2, pieces=2)  # "x y" fills the pieces
    cached.embed(["a", "b"])
    cached.embed(["a"])  # "a" is now the most recent
    cached.embed(["c"])  # evicts "b"
    inner.batches.clear()
    cached.embed(["a", "b", "c"])
    assert inner.batches == [["b"]]
    cached.token_vectors(["x y"])
    cached.token_vectors(["z"])
    cached.token_vectors(["x y"])
    assert inner.piece_batches == [["x y"], ["z"], ["x y"]]


def test_threads_share_it_safely() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbeddings(inner, vectors=16)
    texts = [f"text {i % 24}" for i in range(400)]
    expected = CountingEmbedder().embed(texts)
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(lambda t: cached.embed([t])[0], texts))
    assert np.array_equal(np.stack(rows), expected)
