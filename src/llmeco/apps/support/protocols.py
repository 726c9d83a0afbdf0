"""What the support assistant needs from its collaborators: a knowledge base to search and a
sentence embedder (structural types, so tests and caches can stand in for the real ones)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from llmeco.rag.retrieve import Hit


class Searcher(Protocol):
    """What the assistant needs from a knowledge base (``rag.kb.KnowledgeBase`` is one)."""

    name: str

    def search(
        self, query: str, k: int = 5, *, neighbors: int = 0, candidates: int = 50
    ) -> list[Hit]:
        """The ``k`` best passages for ``query``."""
        ...


class Embeds(Protocol):
    """Unit-length sentence embeddings (``rag.embed.Embedder`` is one)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text."""
        ...

    def token_vectors(self, texts: Sequence[str]) -> list[tuple[list[str], np.ndarray]]:
        """Each text's word pieces with one unit contextual vector per piece."""
        ...
