"""The KV-cache block pool: fixed memory reserved up front, handed out in blocks.

Pure Python bookkeeping (no torch): the runner owns the tensors, this module owns which
block belongs to whom. Blocks are reference-counted so sequences share the blocks of a
common prompt: the ``n`` sequences of one request, and (automatic prefix caching, on unless
``LLMECO_PREFIX_CACHING=false``) any requests whose prompts start with the same tokens.

Prefix caching, vLLM-style: once a block is full and its K/V computed, it is registered
under a content hash — :func:`block_hash` of the previous block's hash, the block's token
ids and a salt for anything else that changes K/V (a LoRA adapter, ...). The hash chains
through the whole prefix, so equal hashes mean equal prefixes. A new sequence looks its
prompt's full blocks up (:meth:`BlockPool.lookup`) and shares every block found instead of
recomputing it. A block nobody holds any more keeps its contents and its hash in an LRU of
evictable blocks; it is reused on a later hit, or evicted (its hash forgotten) when a fresh
block is needed and no never-cached block is free. Cached blocks are full and immutable:
writes only ever go to positions past a sequence's cached prefix, so sharing needs no
copy-on-write beyond the partial-block copy of :meth:`Scheduler.fork`.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass


class NoFreeBlocks(Exception):
    """Raised internally when the pool is exhausted; the scheduler preempts or waits."""


def blocks_for(num_tokens: int, block_size: int) -> int:
    """Blocks needed to hold ``num_tokens`` tokens."""
    return -(-num_tokens // block_size)


def block_hash(parent: bytes | None, token_ids: Sequence[int], salt: str = "") -> bytes:
    """Content hash of one full block: its tokens, everything before it, and ``salt``.

    ``parent`` is the hash of the previous block of the sequence (None for the first), so
    the hash identifies the whole prefix up to the block's end. ``salt`` keeps apart blocks
    whose K/V differ for the same tokens (another adapter or model variant). SHA-256 makes
    a collision, which would silently serve another prompt's K/V, practically impossible.
    """
    h = hashlib.sha256()
    h.update(parent if parent is not None else b"\0" * 32)
    h.update(salt.encode())
    h.update(b"\0")
    h.update(array("q", token_ids).tobytes())
    return h.digest()


@dataclass
class PrefixCacheStats:
    """Counters of prefix-cache lookups since the engine started (for ``/metrics``)."""

    #: Prompt tokens looked up at admission (each admission of a sequence counts).
    queried_tokens: int = 0
    #: Of those, tokens found in the cache (their K/V was reused, not recomputed).
    hit_tokens: int = 0
    #: Cached blocks whose contents were discarded to make room.
    evictions: int = 0

    @property
    def hit_rate(self) -> float:
        """Fraction of looked-up prompt tokens served from the cache, 0..1."""
        return self.hit_tokens / self.queried_tokens if self.queried_tokens else 0.0


class BlockPool:
    """``num_blocks`` blocks of ``block_size`` token slots, reference-counted.

    Free blocks live in two places: never-cached ones in a plain free list, cached ones
    (registered under a hash, nobody holding them) in an LRU. :meth:`allocate` takes a
    plain block first and evicts the least recently released cached block only when there
    is none, so cached prefixes survive until memory is really needed. With
    ``enable_caching`` false nothing is ever registered and the pool is a plain free list.
    """

    def __init__(self, num_blocks: int, block_size: int, enable_caching: bool = False) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("the KV cache needs at least one block of at least one token")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_caching = enable_caching
        self._free: deque[int] = deque(range(num_blocks))
        self._evictable: OrderedDict[int, None] = OrderedDict()
        self._refs = [0] * num_blocks
        self._hash_of: list[bytes | None] = [None] * num_blocks
        self._cached: dict[bytes, int] = {}
        self.stats = PrefixCacheStats()

    @property
    def num_free(self) -> int:
        """Blocks no sequence holds (cached-but-unused blocks included: they can be evicted)."""
        return len(self._free) + len(self._evictable)

    @property
    def num_used(self) -> int:
        """Blocks held by at least one sequence."""
        return self.num_blocks - self.num_free

    @property
    def num_cached(self) -> int:
        """Blocks registered under a content hash (held or evictable)."""
        return len(self._cached)

    @property
    def usage(self) -> float:
        """Fraction of the pool in use, 0..1."""
        return self.num_used / self.num_blocks

    def allocate(self) -> int:
        """Take a free block (reference count 1), evicting the oldest cached one if needed."""
        if self._free:
            block = self._free.popleft()
        elif self._evictable:
            block, _ = self._evictable.popitem(last=False)
            digest = self._hash_of[block]
            if digest is not None and self._cached.get(digest) == block:
                del self._cached[digest]
            self._hash_of[block] = None
            self.stats.evictions += 1
        else:
            raise NoFreeBlocks
        self._refs[block] = 1
        return block

    def share(self, block: int) -> None:
        """Add a holder to a block already in use."""
        if self._refs[block] < 1:
            raise ValueError(f"block {block} is not allocated")
        self._refs[block] += 1

    def release(self, blocks: list[int]) -> None:
        """Drop one holder of each block; blocks nobody holds become free.

        Pass a sequence's blocks in order: they are released last-first, so a prefix's
        first blocks are the most recently used and the last to be evicted (a prompt's
        later blocks are less likely to be shared than its system prompt).
        """
        for block in reversed(blocks):
            refs = self._refs[block]
            if refs < 1:
                raise ValueError(f"block {block} released twice")
            self._refs[block] = refs - 1
            if refs == 1:
                if self._hash_of[block] is not None:
                    self._evictable[block] = None
                else:
                    self._free.append(block)

    def refcount(self, block: int) -> int:
        """Current holders of a block."""
        return self._refs[block]

    # -- prefix caching -----------------------------------------------------------------
    def lookup(self, hashes: Sequence[bytes]) -> list[int]:
        """Blocks caching the longest run of ``hashes`` from the start (not yet acquired)."""
        if not self.enable_caching:
            return []
        found: list[int] = []
        for digest in hashes:
            block = self._cached.get(digest)
            if block is None:
                break
            found.append(block)
        return found

    def is_evictable(self, block: int) -> bool:
        """True for a cached block nobody holds (acquiring it takes it off the free count)."""
        return block in self._evictable

    def acquire_cached(self, block: int) -> None:
        """Hold a block returned by :meth:`lookup` (shared if in use, revived if evictable)."""
        if self._refs[block] == 0:
            del self._evictable[block]
            self._refs[block] = 1
        else:
            self._refs[block] += 1

    def register(self, block: int, digest: bytes) -> bool:
        """Record that held ``block`` is full and its K/V is the content ``digest`` names.

        Returns False (and changes nothing) when caching is off, the block is already
        registered, or another block already caches the same content (two sequences
        computed the same prefix at once; the first stays the cached copy).
        """
        if not self.enable_caching or self._hash_of[block] is not None:
            return False
        if self._refs[block] < 1:
            raise ValueError(f"block {block} is not allocated")
        if digest in self._cached:
            return False
        self._cached[digest] = block
        self._hash_of[block] = digest
        return True

    def cached_hash(self, block: int) -> bytes | None:
        """The content hash ``block`` is registered under, if any."""
        return self._hash_of[block]

    def reset_cache(self) -> int:
        """Forget every cached block nobody holds (their memory becomes plain free blocks).

        Returns how many blocks were dropped. Held blocks stay registered.
        """
        dropped = 0
        while self._evictable:
            block, _ = self._evictable.popitem(last=False)
            digest = self._hash_of[block]
            if digest is not None:
                self._cached.pop(digest, None)
            self._hash_of[block] = None
            self._free.append(block)
            dropped += 1
        return dropped
