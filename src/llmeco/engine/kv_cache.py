"""The KV-cache block pool: fixed memory reserved up front, handed out in blocks.

Pure Python bookkeeping (no torch): the runner owns the tensors, this module owns which
block belongs to whom. Blocks are reference-counted so the ``n`` sequences of one request
share the blocks of their common prompt.
"""

from __future__ import annotations

from collections import deque


class NoFreeBlocks(Exception):
    """Raised internally when the pool is exhausted; the scheduler preempts or waits."""


def blocks_for(num_tokens: int, block_size: int) -> int:
    """Blocks needed to hold ``num_tokens`` tokens."""
    return -(-num_tokens // block_size)


class BlockPool:
    """A free list of ``num_blocks`` blocks of ``block_size`` token slots each."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("the KV cache needs at least one block of at least one token")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._free: deque[int] = deque(range(num_blocks))
        self._refs = [0] * num_blocks

    @property
    def num_free(self) -> int:
        """Blocks no sequence holds."""
        return len(self._free)

    @property
    def num_used(self) -> int:
        """Blocks held by at least one sequence."""
        return self.num_blocks - len(self._free)

    @property
    def usage(self) -> float:
        """Fraction of the pool in use, 0..1."""
        return self.num_used / self.num_blocks

    def allocate(self) -> int:
        """Take a free block (reference count 1)."""
        if not self._free:
            raise NoFreeBlocks
        block = self._free.popleft()
        self._refs[block] = 1
        return block

    def share(self, block: int) -> None:
        """Add a holder to a block already in use."""
        if self._refs[block] < 1:
            raise ValueError(f"block {block} is not allocated")
        self._refs[block] += 1

    def release(self, blocks: list[int]) -> None:
        """Drop one holder of each block; blocks nobody holds return to the free list."""
        for block in blocks:
            refs = self._refs[block]
            if refs < 1:
                raise ValueError(f"block {block} released twice")
            self._refs[block] = refs - 1
            if refs == 1:
                self._free.append(block)

    def refcount(self, block: int) -> int:
        """Current holders of a block."""
        return self._refs[block]
