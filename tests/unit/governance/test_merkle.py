"""RFC 6962 Merkle trees: known roots, the frontier, inclusion and consistency proofs."""

from __future__ import annotations

import hashlib

import pytest

from llmeco.governance.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The test vectors of Certificate Transparency's reference implementation (merkle_tree_test):
# eight leaf inputs and the MTH of each prefix.
INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(str(i).encode()) for i in range(n)]


def test_known_roots_and_hash_rules() -> None:
    assert EMPTY_ROOT.hex() == hashlib.sha256(b"").hexdigest()
    hashed = [leaf_hash(x) for x in INPUTS]
    assert hashed[0] == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(hashed[0], hashed[1]) == hashlib.sha256(b"\x01" + hashed[0] + hashed[1]).digest()
    )
    for n, expected in enumerate(ROOTS, start=1):
        assert root(hashed[:n]).hex() == expected


def test_frontier_matches_recursive_root_and_survives_serialisation() -> None:
    frontier = Frontier()
    all_leaves = leaves(70)
    assert frontier.root() == EMPTY_ROOT
    for n, leaf in enumerate(all_leaves, start=1):
        frontier.append(leaf)
        assert frontier.root() == root(all_leaves[:n])
        assert len(frontier.nodes) == n.bit_count()
        frontier = Frontier.from_hex(frontier.size, frontier.to_hex())
    with pytest.raises(ValueError):
        Frontier(3, [b"x"])


def test_every_inclusion_proof_verifies_and_forgeries_fail() -> None:
    for n in range(1, 34):
        tree = leaves(n)
        r = root(tree)
        for i in range(n):
            proof = inclusion_proof(tree, i)
            assert verify_inclusion(tree[i], i, n, proof, r)
            assert not verify_inclusion(leaf_hash(b"forged"), i, n, proof, r)
            if proof:
                bad = [*proof[:-1], leaf_hash(b"x")]
                assert not verify_inclusion(tree[i], i, n, bad, r)
                assert not verify_inclusion(tree[i], i, n, proof[:-1], r)  # too short
            if n > 1:
                assert not verify_inclusion(tree[i], (i + 1) % n, n, proof, r)
            assert not verify_inclusion(tree[i], i, n, [*proof, tree[0]], r)  # too long
    with pytest.raises(ValueError):
        inclusion_proof(leaves(3), 3)


def test_every_consistency_proof_verifies_and_forgeries_fail() -> None:
    for n in range(1, 21):
        tree = leaves(n)
        rn = root(tree)
        for m in range(1, n + 1):
            rm = root(tree[:m])
            proof = consistency_proof(tree, m)
            assert verify_consistency(m, n, rm, rn, proof), (m, n)
            if m < n:
                assert not verify_consistency(m, n, leaf_hash(b"x"), rn, proof)
                assert not verify_consistency(m, n, rm, leaf_hash(b"x"), proof)
                assert not verify_consistency(m, n, rm, rn, [])
                # A different history of the same size is not consistent.
                other = root([leaf_hash(b"other"), *tree[1:m]])
                assert not verify_consistency(m, n, other, rn, proof)
    assert verify_consistency(0, 5, EMPTY_ROOT, root(leaves(5)), [])
    assert not verify_consistency(6, 5, EMPTY_ROOT, EMPTY_ROOT, [])
