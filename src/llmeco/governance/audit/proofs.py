"""Inclusion and consistency proofs of the audit ledger, also after archiving.

Proofs are self-contained JSON (RFC 6962 audit/consistency paths plus the signed checkpoint
they lead to), so a third party can check them without the database (:func:`verify_proof`).

They are built over a :class:`~llmeco.governance.audit.partial.PartialTree` that knows the
live leaves (rows after the archived boundary), the frontier of every archived boundary (from
``audit_archives``) and the leaves and frontiers of any archive files given. So:

* a **live entry** is provable from the store alone, against any checkpoint that covers it;
* an **archived entry** needs the archive that holds it; by default it is proved against
  that archive's own signed checkpoint (nothing else needed), and a consistency proof from
  that checkpoint (``llmeco audit consistency SIZE``) ties it to the newest one;
* asked for a proof that needs leaves nobody gave, ``NotFound`` names the entry and says
  which archive to pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import groupby
from typing import Any

import sqlalchemy as sa

from llmeco.errors import InvalidRequest, NotFound
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.archive_file import ArchiveFile, archive_rows
from llmeco.governance.audit.checkpoint import Checkpoint
from llmeco.governance.audit.ledger import latest_checkpoint
from llmeco.governance.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from llmeco.governance.audit.partial import MissingLeaf, PartialTree
from llmeco.store import Store


def _covering(store: Store, size: int) -> Checkpoint:
    cp = latest_checkpoint(store)
    if cp is None or cp.size < size:
        raise NotFound(
            f"no signed checkpoint covers entry {size} yet; "
            "run `llmeco audit checkpoint --now` (or wait for the next one)"
        )
    return cp


def _tree(store: Store, size: int, archives: Sequence[ArchiveFile]) -> tuple[PartialTree, int]:
    """What is known of the first ``size`` leaves, and the archived boundary."""
    tree = PartialTree()
    rows = archive_rows(store)
    for row in rows:
        tree.add_frontier(row.end.tree())
    archived = rows[-1].last_seq if rows else 0
    c = t.entries.c
    query = sa.select(c.seq, c.leaf_hash).where(c.seq > archived, c.seq <= size).order_by(c.seq)
    with store.session() as s:
        live = s.execute(query).all()
    # Runs of consecutive seqs (a gap would misplace every later leaf).
    for _, run in groupby(enumerate(live), key=lambda p: int(p[1].seq) - p[0]):
        stretch = [r for _, r in run]
        tree.add_leaves(int(stretch[0].seq) - 1, [bytes.fromhex(r.leaf_hash) for r in stretch])
    seen: set[tuple[int, int]] = set()
    for archive in archives:
        tree.add_frontier(archive.start.tree())
        tree.add_frontier(archive.end.tree())
        span = (archive.first_seq, archive.last_seq)
        if span not in seen and archive.last_seq <= archived:
            seen.add(span)
            tree.add_leaves(archive.first_seq - 1, archive.leaves())
    return tree, archived


def _holder(seq: int, archives: Sequence[ArchiveFile], archived: int) -> ArchiveFile:
    for archive in archives:
        if archive.first_seq <= seq <= archive.last_seq:
            return archive
    raise NotFound(
        f"entry {seq} was archived (entries 1..{archived} are no longer in the store); "
        "pass the archive that holds it (--archive FILE)"
    )


def _missing(exc: MissingLeaf, what: str) -> NotFound:
    return NotFound(
        f"{what} needs entry {exc.index + 1}, which is archived and in no archive given; "
        "pass its archive (--archive FILE)"
    )


def make_inclusion_proof(
    store: Store,
    seq: int,
    checkpoint: Checkpoint | None = None,
    *,
    archives: Sequence[ArchiveFile] = (),
) -> dict[str, Any]:
    """An inclusion proof of entry ``seq`` against ``checkpoint`` (default: the latest; for
    an archived entry, the checkpoint its archive ends at). See the module doc."""
    rows = archive_rows(store)
    archived = rows[-1].last_seq if rows else 0
    holder = _holder(seq, archives, archived) if seq <= archived else None
    if holder is not None:
        cp = checkpoint or holder.checkpoint
        entry = holder.entry(seq)
        payload = None if entry is None else str(entry.payload)
    else:
        cp = checkpoint or _covering(store, seq)
        with store.session() as s:
            payload = s.scalar(sa.select(t.entries.c.payload).where(t.entries.c.seq == seq))
    if not 1 <= seq <= cp.size:
        raise InvalidRequest(f"entry {seq} is outside the checkpoint's {cp.size} entries")
    if payload is None:
        raise NotFound(f"entry {seq} does not exist")
    tree, _ = _tree(store, cp.size, archives)
    try:
        leaf = tree.leaf(seq - 1)
        path = tree.inclusion_path(seq - 1, cp.size)
    except MissingLeaf as exc:
        raise _missing(exc, f"proving entry {seq} in the tree of {cp.size} entries") from None
    return {
        "type": "inclusion",
        "seq": seq,
        "leaf_index": seq - 1,
        "tree_size": cp.size,
        "entry": payload,
        "leaf_hash": leaf.hex(),
        "audit_path": [h.hex() for h in path],
        "checkpoint": cp.to_dict(),
    }


def make_consistency_proof(
    store: Store,
    old_size: int,
    checkpoint: Checkpoint | None = None,
    *,
    archives: Sequence[ArchiveFile] = (),
) -> dict[str, Any]:
    """A proof that the first ``old_size`` entries are unchanged in ``checkpoint``'s tree
    (from an archived boundary onwards it needs no archive; see the module doc)."""
    cp = checkpoint or _covering(store, old_size)
    if not 0 < old_size <= cp.size:
        raise InvalidRequest(f"old size must be in 1..{cp.size}")
    tree, _ = _tree(store, cp.size, archives)
    try:
        old_root = tree.root(0, old_size)
        path = tree.consistency_path(old_size, cp.size)
    except MissingLeaf as exc:
        raise _missing(exc, f"a consistency proof from {old_size} to {cp.size}") from None
    return {
        "type": "consistency",
        "old_size": old_size,
        "old_root": old_root.hex(),
        "new_size": cp.size,
        "proof": [h.hex() for h in path],
        "checkpoint": cp.to_dict(),
    }


def verify_proof(proof: Any, public_key: str, anchor: Checkpoint | None = None) -> tuple[bool, str]:
    """Check a proof made by :func:`make_inclusion_proof` / :func:`make_consistency_proof`.

    The proof's own checkpoint must be signed by ``public_key``. With ``anchor`` (an exported
    checkpoint): an inclusion proof must lead to the anchor's root; a consistency proof must
    start from the anchor (its size and root) — i.e. the anchored history is intact.
    Returns (ok, reason).
    """
    try:
        cp = Checkpoint.from_dict(proof["checkpoint"])
        kind = proof["type"]
    except (KeyError, TypeError) as exc:
        raise InvalidRequest(f"malformed proof: {exc!r}") from None
    if not cp.signature_ok(public_key) or cp.public_key != public_key:
        return False, "the proof's checkpoint is not signed by this ledger's key"
    if anchor is not None and not anchor.signature_ok(public_key):
        return False, "the anchor checkpoint is not signed by this ledger's key"
    try:
        if kind == "inclusion":
            return _verify_inclusion(proof, cp, anchor)
        if kind == "consistency":
            return _verify_consistency(proof, cp, anchor)
    except (KeyError, TypeError, ValueError) as exc:
        return False, f"malformed proof: {exc!r}"
    return False, f"unknown proof type {kind!r}"


def _verify_inclusion(proof: Any, cp: Checkpoint, anchor: Checkpoint | None) -> tuple[bool, str]:
    target = anchor or cp
    seq, size = int(proof["seq"]), int(proof["tree_size"])
    if size != target.size:
        return False, f"the proof is for a tree of {size} entries, the checkpoint has {target.size}"
    leaf = bytes.fromhex(proof["leaf_hash"])
    entry = proof.get("entry")
    if entry is not None:
        if leaf_hash(str(entry).encode()) != leaf:
            return False, "the entry does not hash to the proof's leaf"
        if json.loads(entry).get("seq") != seq:
            return False, f"the entry is not entry {seq}"
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    if int(proof["leaf_index"]) != seq - 1:
        return False, "leaf index and seq disagree"
    if not verify_inclusion(leaf, seq - 1, size, path, bytes.fromhex(target.root_hash)):
        return False, f"the audit path does not lead to the checkpoint's root ({size} entries)"
    return True, f"entry {seq} is in the signed tree of {size} entries ({target.timestamp})"


def _verify_consistency(proof: Any, cp: Checkpoint, anchor: Checkpoint | None) -> tuple[bool, str]:
    old_size, new_size = int(proof["old_size"]), int(proof["new_size"])
    old_root = bytes.fromhex(proof["old_root"])
    if anchor is not None and (anchor.size != old_size or anchor.root_hash != old_root.hex()):
        return False, "the proof does not start from the given checkpoint"
    if new_size != cp.size:
        return False, "the proof's new size is not its checkpoint's size"
    path = [bytes.fromhex(h) for h in proof["proof"]]
    if not verify_consistency(old_size, new_size, old_root, bytes.fromhex(cp.root_hash), path):
        return False, f"the first {old_size} entries are not a prefix of the {new_size}-entry tree"
    return True, f"the first {old_size} entries are unchanged in the {new_size}-entry tree"
