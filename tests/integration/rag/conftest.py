"""Knowledge-base integration fixtures: the packaged embedding model, loaded once."""

from __future__ import annotations

import pytest

from llmeco.rag.kb import TextEmbedder, default_embedder


@pytest.fixture(scope="session")
def minilm() -> TextEmbedder:
    """The packaged all-MiniLM-L6-v2 (the process-wide instance the CLI also uses)."""
    return default_embedder()
