"""Deduplication: exact (sha256 of the normalised content) and near (MinHash LSH).

Near duplicates are found with ``datasketch``'s MinHash over word 3-gram shingles; the
first occurrence (in input order) is kept, so results are deterministic.
"""

from __future__ import annotations

import hashlib
import re

from datasketch import MinHash, MinHashLSH

_WORD = re.compile(r"\w+")


def content_hash(content: str) -> str:
    """sha256 hex of ``content`` case-folded with whitespace collapsed (the exact-dup key)."""
    key = " ".join(content.casefold().split())
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _shingles(text: str, n: int = 3) -> set[bytes]:
    words = _WORD.findall(text.casefold())
    if len(words) < n:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


class NearDuplicateFilter:
    """Remembers what it has seen and says whether new text is a near duplicate of it."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, seed: int = 1) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.seed = seed
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._count = 0

    def _minhash(self, text: str) -> MinHash:
        mh = MinHash(num_perm=self.num_perm, seed=self.seed)
        mh.update_batch(list(_shingles(text)))
        return mh

    def seen(self, text: str) -> bool:
        """True if ``text`` is a near duplicate of earlier text; otherwise remember it."""
        mh = self._minhash(text)
        if self._lsh.query(mh):
            return True
        self._lsh.insert(str(self._count), mh)
        self._count += 1
        return False
