"""MinHash signatures and LSH band keys for near-duplicate documents, in numpy.

A document's shingles are its case-folded word n-grams; each shingle is a 64-bit hash
built from stable per-word CRC32s (the same in every process, unlike Python's ``hash``),
and each of ``num_perm`` hash functions is ``a·x + b`` modulo 2⁶⁴ with seeded odd ``a``.
Signatures are cut into ``bands`` × ``rows`` (the split ``datasketch`` picks for the
threshold, weighing false positives and negatives equally); two documents that agree on
every row of any band are candidates, which is what the corpus stages shuffle on.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llmeco.data.steps import NearDedupConfig

_WORD = re.compile(r"\w+")
_MIX = np.uint64(0x100000001B3)
_CHUNK = 2048


@lru_cache(maxsize=16)
def band_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) for a Jaccard ``threshold`` with ``num_perm`` permutations."""
    from datasketch.lsh import _optimal_param

    bands, rows = _optimal_param(threshold, num_perm, 0.5, 0.5)
    return int(bands), int(rows)


@lru_cache(maxsize=16)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """Distinct 64-bit hashes of the word ``ngram``-grams of ``text`` (one shingle of all
    words when there are fewer)."""
    words = _WORD.findall(text.casefold())
    cache: dict[str, int] = {}
    ids = np.fromiter(
        (cache.setdefault(w, zlib.crc32(w.encode())) for w in words), np.uint64, len(words)
    )
    n = min(ngram, len(ids))
    if n == 0:
        return np.zeros(1, np.uint64)
    h = ids[: len(ids) - n + 1].copy()
    for k in range(1, n):
        h *= _MIX
        h ^= ids[k : len(ids) - n + 1 + k]
    return np.unique(h)


def signature(text: str, num_perm: int, ngram: int, seed: int) -> np.ndarray:
    """The MinHash signature of ``text`` (``num_perm`` uint64 values)."""
    a, b = _permutations(num_perm, seed)
    shingles = shingle_hashes(text, ngram)
    sig = np.full(num_perm, np.iinfo(np.uint64).max, np.uint64)
    for start in range(0, len(shingles), _CHUNK):
        chunk = shingles[start : start + _CHUNK, None]
        np.minimum(sig, (chunk * a + b).min(axis=0), out=sig)
    return sig


def band_keys(text: str, cfg: NearDedupConfig, bands: int, rows: int) -> list[int]:
    """One 64-bit key per LSH band of ``text``'s signature."""
    sig = signature(text, cfg.num_perm, cfg.ngram, cfg.seed)
    return [
        int.from_bytes(
            hashlib.blake2b(sig[i * rows : (i + 1) * rows].tobytes(), digest_size=8).digest(),
            "little",
        )
        for i in range(bands)
    ]
