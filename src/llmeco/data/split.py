"""Deterministic train/validation split by hash of content.

A record's side depends only on its content and the seed, never on input order or on
which other records exist, so adding data never moves old records between the splits.
"""

from __future__ import annotations

import hashlib


def is_validation(content_key: str, fraction: float, seed: int = 0) -> bool:
    """Whether the record keyed ``content_key`` belongs to the validation split."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{content_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
