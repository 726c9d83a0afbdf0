"""Checking the audit ledger: re-walk the chain and checkpoints, prove and check inclusion.

:func:`verify_ledger` reads every entry in order and checks, for each one: its seq follows
the previous one (nothing deleted or inserted), its payload is its own (``payload.seq``),
its indexed columns equal the payload, ``prev_hash`` is the previous entry's hash, its own
hash and leaf hash recompute. It rebuilds the Merkle tree as it goes and checks every stored
checkpoint and any exported ones given to it: signature under the ledger's public key, size
not beyond the log (else the tail was cut), and root equal to the rebuilt tree's root at that
size (else history was rewritten — even with every hash recomputed). Problems name the first
bad entry.

Proofs are self-contained JSON (RFC 6962 audit/consistency paths plus the signed checkpoint
they lead to), so a third party can check them without the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from llmeco.errors import InvalidRequest, NotFound
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.checkpoint import Checkpoint
from llmeco.governance.audit.ledger import chain_hash, indexed_columns, latest_checkpoint
from llmeco.governance.audit.merkle import (
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from llmeco.governance.crypto import Cipher
from llmeco.store import Store

#: Stop collecting problems after this many (the first one is what matters).
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the ledger; ``seq`` is the entry it was found at, if any.

    ``exact`` is False when ``seq`` only starts a range known to be wrong (a checkpoint's
    root no longer matches: somewhere in that range history was rewritten).
    """

    seq: int | None
    message: str
    exact: bool = True


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_ledger`."""

    entries: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        """The problem at the lowest seq, preferring exact findings over ranges (or the first
        one found when none names an entry)."""
        for pick in (
            [p for p in self.problems if p.seq is not None and p.exact],
            [p for p in self.problems if p.seq is not None],
        ):
            if pick:
                return min(pick, key=lambda p: p.seq or 0)
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``llmeco audit verify --json``."""
        first = self.first_bad
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "first_bad_seq": first.seq if first else None,
            "problems": [{"seq": p.seq, "message": p.message} for p in self.problems],
        }


def stored_checkpoints(store: Store) -> list[tuple[int, Checkpoint]]:
    """Every checkpoint in the store with its row id, oldest first."""
    with store.session() as s:
        rows = s.execute(sa.select(t.checkpoints).order_by(t.checkpoints.c.id)).all()
    return [(r.id, Checkpoint(r.size, r.root_hash, r.ts, r.public_key, r.signature)) for r in rows]


def verify_ledger(
    store: Store,
    public_key: str,
    external: Sequence[Checkpoint] = (),
    *,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Re-walk the whole ledger; see the module doc for what is checked."""
    report = VerifyReport()
    problems = report.problems

    def problem(seq: int | None, message: str, exact: bool = True) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(Problem(seq, message, exact))

    anchors: list[tuple[str, Checkpoint]] = [
        (f"checkpoint #{cid}", cp) for cid, cp in stored_checkpoints(store)
    ]
    anchors += [("exported checkpoint", cp) for cp in external]
    report.checkpoints = len(anchors)
    roots_needed = {cp.size for _, cp in anchors}
    roots: dict[int, bytes] = {}

    frontier = Frontier()
    expected, prev = 1, t.GENESIS_HASH
    cols = [t.entries.c[c] for c in (*indexed_columns({}), "seq", "payload")]
    cols += [t.entries.c.prev_hash, t.entries.c.entry_hash, t.entries.c.leaf_hash]
    query = sa.select(*cols).order_by(t.entries.c.seq)
    with store.engine.connect() as conn:
        result = conn.execution_options(yield_per=2000).execute(query)
        for row in result:
            seq = int(row.seq)
            if seq != expected:
                if seq > expected:
                    gone = f"entry {expected}" if seq == expected + 1 else f"entries {expected}"
                    gone += "" if seq == expected + 1 else f"..{seq - 1}"
                    problem(expected, f"{gone} missing: the entry after {expected - 1} is {seq}")
                else:
                    problem(seq, f"entry {seq} appears twice")
                expected = seq
            _check_entry(row, prev, problem)
            leaf = leaf_hash(str(row.payload).encode())
            frontier.append(leaf)
            if frontier.size in roots_needed:
                roots[frontier.size] = frontier.root()
            prev = str(row.entry_hash)
            expected += 1
            if progress is not None and frontier.size % 2000 == 0:
                progress(2000)
        if progress is not None:
            progress(frontier.size % 2000)
        head = conn.execute(sa.select(t.head).where(t.head.c.id == 1)).one()
    report.entries = n = frontier.size
    last = expected - 1
    if int(head.seq) != last or str(head.entry_hash) != prev:
        bad = min(int(head.seq), last) + 1
        problem(
            bad,
            f"the ledger head says {head.seq} entries but the log ends at entry {last}"
            + (": the tail was cut" if int(head.seq) > last else ""),
        )
    _check_anchors(anchors, roots, n, public_key, problem)
    return report


def _check_entry(row: Any, prev: str, problem: Callable[..., None]) -> None:
    seq = int(row.seq)
    payload_text = str(row.payload)
    try:
        payload = json.loads(payload_text)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        problem(seq, f"entry {seq}: payload is not valid JSON")
        return
    if payload.get("seq") != seq:
        problem(seq, f"entry {seq} holds the payload of entry {payload.get('seq')} (moved)")
    for name, value in indexed_columns(payload).items():
        if getattr(row, name) != value:
            problem(
                seq,
                f"entry {seq}: column {name}={getattr(row, name)!r} disagrees with its "
                f"hashed payload ({value!r})",
            )
            break
    if str(row.prev_hash) != prev:
        problem(
            seq,
            f"entry {seq}: prev_hash is not the hash of the entry before it "
            "(an entry was removed, inserted or reordered here)",
        )
    if chain_hash(str(row.prev_hash), payload_text.encode()) != str(row.entry_hash):
        problem(seq, f"entry {seq}: contents do not match its entry_hash (edited)")
    if leaf_hash(payload_text.encode()).hex() != str(row.leaf_hash):
        problem(seq, f"entry {seq}: leaf_hash does not match its contents")


def _check_anchors(
    anchors: Iterable[tuple[str, Checkpoint]],
    roots: dict[int, bytes],
    n: int,
    public_key: str,
    problem: Callable[[int | None, str, bool], None],
) -> None:
    good_below = 0  # largest size a checkpoint vouches for so far, to bound rewritten ranges
    for name, cp in sorted(anchors, key=lambda a: a[1].size):
        if cp.public_key != public_key or not cp.signature_ok(public_key):
            problem(None, f"{name} (size {cp.size}) is not signed by this ledger's key", True)
            continue
        if cp.size > n:
            problem(
                n + 1,
                f"{name} signed at {cp.timestamp} covers {cp.size} entries but the log has "
                f"{n}: entries {n + 1}..{cp.size} were removed",
                True,
            )
        elif roots.get(cp.size, b"").hex() != cp.root_hash and cp.size > 0:
            problem(
                good_below + 1,
                f"{name} ({cp.size} entries, signed at {cp.timestamp}) does not match the log: "
                f"entries {good_below + 1}..{cp.size} were rewritten",
                False,
            )
        else:
            good_below = max(good_below, cp.size)


# ---- proofs ---------------------------------------------------------------------------------


def _leaves(store: Store, size: int) -> list[bytes]:
    query = sa.select(t.entries.c.leaf_hash).order_by(t.entries.c.seq).limit(size)
    with store.session() as s:
        leaves = [bytes.fromhex(h) for h in s.scalars(query)]
    if len(leaves) < size:
        raise NotFound(f"the log has {len(leaves)} entries, fewer than {size}")
    return leaves


def _covering(store: Store, size: int) -> Checkpoint:
    cp = latest_checkpoint(store)
    if cp is None or cp.size < size:
        raise NotFound(
            f"no signed checkpoint covers entry {size} yet; "
            "run `llmeco audit checkpoint --now` (or wait for the next one)"
        )
    return cp


def make_inclusion_proof(
    store: Store, seq: int, checkpoint: Checkpoint | None = None
) -> dict[str, Any]:
    """An inclusion proof of entry ``seq`` against ``checkpoint`` (default: the latest)."""
    cp = checkpoint or _covering(store, seq)
    if not 1 <= seq <= cp.size:
        raise InvalidRequest(f"entry {seq} is outside the checkpoint's {cp.size} entries")
    with store.session() as s:
        payload = s.scalar(sa.select(t.entries.c.payload).where(t.entries.c.seq == seq))
    if payload is None:
        raise NotFound(f"entry {seq} does not exist")
    leaves = _leaves(store, cp.size)
    return {
        "type": "inclusion",
        "seq": seq,
        "leaf_index": seq - 1,
        "tree_size": cp.size,
        "entry": payload,
        "leaf_hash": leaves[seq - 1].hex(),
        "audit_path": [h.hex() for h in inclusion_proof(leaves, seq - 1)],
        "checkpoint": cp.to_dict(),
    }


def make_consistency_proof(
    store: Store, old_size: int, checkpoint: Checkpoint | None = None
) -> dict[str, Any]:
    """A proof that the first ``old_size`` entries are unchanged in ``checkpoint``'s tree."""
    cp = checkpoint or _covering(store, old_size)
    if not 0 < old_size <= cp.size:
        raise InvalidRequest(f"old size must be in 1..{cp.size}")
    leaves = _leaves(store, cp.size)
    return {
        "type": "consistency",
        "old_size": old_size,
        "old_root": root(leaves[:old_size]).hex(),
        "new_size": cp.size,
        "proof": [h.hex() for h in consistency_proof(leaves, old_size)],
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


def read_entry(store: Store, seq: int, cipher: Cipher | None = None) -> dict[str, Any]:
    """Entry ``seq``: its payload, hashes and (with a cipher) its decrypted, redacted bodies."""
    with store.session() as s:
        row = s.execute(sa.select(t.entries).where(t.entries.c.seq == seq)).first()
    if row is None:
        raise NotFound(f"entry {seq} does not exist")
    out: dict[str, Any] = {
        "payload": json.loads(row.payload),
        "prev_hash": row.prev_hash,
        "entry_hash": row.entry_hash,
    }
    for part in ("request", "response"):
        blob = getattr(row, f"{part}_body")
        if blob is not None and cipher is not None:
            out[f"{part}_body"] = cipher.decrypt(blob, f"audit:{seq}:{part}".encode()).decode()
    return out
