"""RFC 6962 proofs over a Merkle tree some of whose leaves are no longer at hand.

After archiving, the store holds only the leaves after the archived boundary, plus the
boundary's frontier: the roots of the perfect subtrees that make up the archived prefix.
:class:`PartialTree` computes subtree roots, inclusion paths and consistency proofs from
whatever is known — stretches of leaves (live rows, archive files) and perfect subtree roots
(frontiers at any archived boundary) — and raises :class:`MissingLeaf` naming the first leaf
it would need but does not have.

Which proofs need which leaves (argued in the tests, which compare against the full tree):

* **Inclusion of a leaf at or after a boundary** ``B``: every sibling on its path is either
  to its right (leaves ≥ B) or a perfect subtree to its left. A left sibling inside
  ``[0, B)`` is a node of B's frontier; one straddling ``B`` splits into frontier nodes and
  leaves ≥ B. So live entries are provable from the store alone.
* **Inclusion of an archived leaf** needs its neighbours' leaves: the archive that holds it.
  Against that archive's own checkpoint nothing else is needed (left siblings below its start
  are frontier nodes of the previous boundary); against a later checkpoint, every archive
  between it and the live chain is needed too.
* **Consistency from an old size** ``m`` to ``n`` needs the leaves after ``m`` up to ``n``
  (those before ``m`` enter only as frontier nodes of ``m``), so from the last boundary on
  it works from the store alone.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from llmeco.governance.audit.merkle import Frontier, node_hash, root


class MissingLeaf(LookupError):
    """A proof needs leaf ``index`` (0-based: entry ``index + 1``), which is not known."""

    def __init__(self, index: int) -> None:
        super().__init__(f"leaf {index} (entry {index + 1}) is not available")
        self.index = index


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class PartialTree:
    """Leaves and subtree roots known of one append-only tree; see the module doc."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[int, int], bytes] = {}
        self._offsets: list[int] = []
        self._segments: list[list[bytes]] = []

    def add_frontier(self, frontier: Frontier) -> None:
        """Learn the perfect subtree roots a frontier holds (left to right, largest first)."""
        lo = 0
        bits = [b for b in range(frontier.size.bit_length()) if frontier.size >> b & 1]
        for height, node in zip(reversed(bits), frontier.nodes, strict=True):
            hi = lo + (1 << height)
            self._blocks[(lo, hi)] = node
            lo = hi

    def add_leaves(self, offset: int, leaves: Sequence[bytes]) -> None:
        """Learn leaves ``offset, offset + 1, …`` (stretches must not overlap)."""
        if not leaves:
            return
        at = bisect.bisect_left(self._offsets, offset)
        self._offsets.insert(at, offset)
        self._segments.insert(at, list(leaves))

    def _segment(self, lo: int, hi: int) -> list[bytes] | None:
        """The known leaves ``lo..hi-1`` if one stretch holds them all."""
        at = bisect.bisect_right(self._offsets, lo) - 1
        if at < 0:
            return None
        offset, leaves = self._offsets[at], self._segments[at]
        if hi <= offset + len(leaves):
            return leaves[lo - offset : hi - offset]
        return None

    def leaf(self, index: int) -> bytes:
        """Leaf ``index``; :class:`MissingLeaf` if unknown."""
        got = self._segment(index, index + 1)
        if not got:
            raise MissingLeaf(index)
        return got[0]

    def root(self, lo: int, hi: int) -> bytes:
        """MTH of leaves ``lo..hi-1`` (RFC 6962 splits, as if that range were a tree)."""
        block = self._blocks.get((lo, hi))
        if block is not None:
            return block
        leaves = self._segment(lo, hi)
        if leaves is not None:
            return root(leaves)
        if hi - lo == 1:
            raise MissingLeaf(lo)
        k = _split(hi - lo)
        return node_hash(self.root(lo, lo + k), self.root(lo + k, hi))

    def inclusion_path(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 PATH of leaf ``index`` in the tree of the first ``size`` leaves."""
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside a tree of {size} leaves")
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self.root(lo + k, hi))
                hi = lo + k
            else:
                path.append(self.root(lo, lo + k))
                lo = lo + k
        path.reverse()  # the RFC lists siblings from the leaf up
        return path

    def consistency_path(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 6962 PROOF(old_size, D[new_size])."""
        if not 0 <= old_size <= new_size:
            raise ValueError(f"old size {old_size} is outside 0..{new_size}")
        if old_size in (0, new_size):
            return []
        return self._subproof(0, new_size, old_size, True)

    def _subproof(self, lo: int, hi: int, m: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [self.root(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(lo, lo + k, m, whole), self.root(lo + k, hi)]
        return [*self._subproof(lo + k, hi, m - k, False), self.root(lo, lo + k)]
