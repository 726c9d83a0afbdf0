"""Embeddings of knowledge-base text remembered between support turns.

Every turn embeds the sentences of its top passages, the passages' words and the passages'
word pieces; the same passages come back turn after turn, so a turn mostly recomputes what the
last one computed (about three quarters of a turn's CPU time on the handbook). This cache keeps
the most recently used results, bounded by count.

Why not ``functools.lru_cache``: results are numpy arrays for *lists* of texts, where a batch
should compute only its missing texts, in one forward pass; and the cache is shared by the
server's worker threads, so it needs its own lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

import numpy as np

from llmeco.apps.support.protocols import Embeds

V = TypeVar("V")
#: A text's word pieces and their vectors.
Pieces = tuple[list[str], np.ndarray]


class _Lru(Generic[V]):
    """A thread-safe mapping from text to a computed value, least recent out first, holding
    at most ``capacity`` in total ``size`` (each value counts 1 unless ``size`` says more)."""

    def __init__(self, capacity: int, size: Callable[[V], int] = lambda _: 1) -> None:
        self.capacity = capacity
        self.size = size
        self.held = 0
        self._items: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def fetch(self, texts: Sequence[str], compute: Callable[[list[str]], Iterable[V]]) -> list[V]:
        """The value of each text: remembered ones from here, the others from one call of
        ``compute`` (each distinct missing text once, in order), then remembered."""
        with self._lock:
            found = {t: self._items[t] for t in texts if t in self._items}
            for t in found:
                self._items.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            computed = dict(zip(missing, compute(missing), strict=True))
            found.update(computed)
            with self._lock:
                for text, value in computed.items():
                    if text not in self._items:
                        self.held += self.size(value)
                    self._items[text] = value
                    self._items.move_to_end(text)
                while self.held > self.capacity:
                    self.held -= self.size(self._items.popitem(last=False)[1])
        return [found[t] for t in texts]


class CachedEmbeddings:
    """An :class:`~llmeco.apps.support.Embeds` that remembers the vectors of recent texts.

    ``embed`` keeps up to ``vectors`` sentence vectors and ``token_vectors`` up to ``pieces``
    piece vectors in all (1.5 KB each with MiniLM), so the defaults stay near 12 + 25 MB; a
    question's few pieces cost little next to a passage's hundreds, so questions, which are
    seldom asked twice, do not push the passages out. Values are returned exactly as the
    wrapped embedder computed them.
    """

    def __init__(self, inner: Embeds, *, vectors: int = 8192, pieces: int = 16384) -> None:
        self.inner = inner
        self._vectors: _Lru[np.ndarray] = _Lru(vectors)
        self._pieces: _Lru[Pieces] = _Lru(pieces, size=lambda value: max(1, len(value[0])))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text; only texts not seen recently are embedded (together)."""
        if not texts:
            return self.inner.embed([])
        return np.stack(self._vectors.fetch(texts, self.inner.embed))

    def token_vectors(self, texts: Sequence[str]) -> list[Pieces]:
        """Each text's word pieces and piece vectors; recent texts come from the cache."""
        found = self._pieces.fetch(texts, self.inner.token_vectors)
        return [(list(pieces), vectors) for pieces, vectors in found]
