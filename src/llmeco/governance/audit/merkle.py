"""RFC 6962 (Certificate Transparency) Merkle trees over the audit ledger's entries.

Hashes (RFC 6962 §2.1, SHA-256)::

    leaf  = SHA-256(0x00 ‖ entry bytes)
    node  = SHA-256(0x01 ‖ left ‖ right)
    MTH({})        = SHA-256("")
    MTH(D[n]), n>1 = node(MTH(D[0:k]), MTH(D[k:n]))  with k the largest power of two < n

:class:`Frontier` keeps only the roots of the perfect subtrees that make up a tree of ``n``
leaves (one per set bit of ``n``), so the writer can append and compute the root in
O(log n) without re-reading old leaves. Inclusion and consistency proofs follow RFC 6962
§2.1.1–2.1.2 (generation) and RFC 9162 §2.1.3.2 / §2.1.4.2 (verification).
All functions take and return raw 32-byte hashes; callers hex-encode for storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of already-hashed leaves (the RFC's recursive definition)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of ``leaves`` (RFC 6962 PATH(m, D[n]))."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is outside a tree of {n} leaves")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(leaves[:k], index), root(leaves[k:])]
    return [*inclusion_proof(leaves[k:], index - k), root(leaves[:k])]


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for ``leaf`` at ``index`` in a tree of ``size``.

    RFC 9162 §2.1.3.2; raises ``ValueError`` when the proof has the wrong shape.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """Whether ``proof`` shows ``leaf`` at ``index`` in the tree of ``size`` with that root."""
    try:
        return root_from_inclusion(leaf, index, size, proof) == expected_root
    except ValueError:
        return False


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof that the tree of the first ``old_size`` leaves is a prefix of ``leaves``.

    RFC 6962 PROOF(m, D[n]); empty when ``old_size`` is 0 or equals ``len(leaves)``.
    """
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} is outside 0..{n}")
    if old_size in (0, n):
        return []
    return _subproof(leaves, old_size, True)


def _subproof(leaves: Sequence[bytes], m: int, whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves[:k], m, whole), root(leaves[k:])]
    return [*_subproof(leaves[k:], m - k, False), root(leaves[:k])]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the ``old_size`` tree (``old_root``) is a prefix of the
    ``new_size`` tree (``new_root``) — RFC 9162 §2.1.4.2."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class Frontier:
    """The compact state of an append-only tree: roots of its perfect subtrees, left to right.

    ``nodes[i]`` covers ``2**h`` leaves, with heights strictly decreasing, one per set bit of
    :attr:`size`. Appending merges equal-height neighbours like binary addition.
    """

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if len(nodes) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} subtree roots")
        self.size = size
        self.nodes = list(nodes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash on the right."""
        self.nodes.append(leaf)
        self.size += 1
        # Each trailing zero bit of the new size is one merge of two equal-height subtrees.
        merges = (self.size & -self.size).bit_length() - 1
        for _ in range(merges):
            right = self.nodes.pop()
            left = self.nodes.pop()
            self.nodes.append(node_hash(left, right))

    def root(self) -> bytes:
        """MTH of every leaf appended so far."""
        if not self.nodes:
            return EMPTY_ROOT
        r = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            r = node_hash(node, r)
        return r

    def to_hex(self) -> list[str]:
        """The subtree roots hex-encoded (for storing in the ledger's head row)."""
        return [n.hex() for n in self.nodes]

    @classmethod
    def from_hex(cls, size: int, nodes: Sequence[str]) -> Frontier:
        """Rebuild a frontier saved with :meth:`to_hex`."""
        return cls(size, [bytes.fromhex(n) for n in nodes])
