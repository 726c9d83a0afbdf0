"""Application integration tests run tiny models with one torch thread (root conftest)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see the root conftest)."""
