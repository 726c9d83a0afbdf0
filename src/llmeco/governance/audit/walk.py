"""Walking a stretch of the audit chain: the checks every entry must pass, wherever it lives.

A stretch starts from a :class:`ChainState` — the chain's tip and Merkle frontier after some
entry: genesis, the start of an archive file, or the boundary up to which the store's entries
were archived — and :class:`ChainWalker` is fed the entries that follow, in order: rows of
``audit_entries`` or lines of an archive file. For each one it checks that its seq follows
the previous one (nothing deleted, inserted or swapped), that its payload is its own
(``payload.seq``), that the indexed columns equal the payload, that ``prev_hash`` is the
previous entry's hash and that its own hash and leaf hash recompute; it extends the Merkle
frontier and keeps the root at every size a checkpoint needs. One walker can be fed several
stretches in a row (archives, then the live chain), so a broken link between them is caught
like any other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from llmeco.errors import InvalidRequest
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.ledger import chain_hash, indexed_columns
from llmeco.governance.audit.merkle import Frontier, leaf_hash

#: The admin action that records an archive in the ledger.
ARCHIVE_ACTION = "audit.archive"

#: Where a walker reports what it finds: (seq or None, message, exact).
ProblemSink = Callable[[int | None, str, bool], None]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the ledger; ``seq`` is the entry it was found at, if any.

    ``exact`` is False when ``seq`` only starts a range known to be wrong (a checkpoint's
    root no longer matches: somewhere in that range history was rewritten).
    """

    seq: int | None
    message: str
    exact: bool = True


@dataclass(frozen=True)
class ChainState:
    """Where the chain stands after entry ``seq``: that entry's hash and the Merkle frontier
    of the first ``seq`` leaves (hex subtree roots, as the ledger head stores them)."""

    seq: int
    entry_hash: str
    frontier: tuple[str, ...]

    @classmethod
    def genesis(cls) -> ChainState:
        """Before the first entry."""
        return cls(0, t.GENESIS_HASH, ())

    def tree(self) -> Frontier:
        """The frontier as a :class:`Frontier` (``ValueError`` if its shape is wrong)."""
        return Frontier.from_hex(self.seq, self.frontier)

    def root_hash(self) -> str:
        """The Merkle root of the first ``seq`` entries (hex)."""
        return self.tree().root().hex()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (archive headers)."""
        return {"seq": self.seq, "entry_hash": self.entry_hash, "frontier": list(self.frontier)}

    @classmethod
    def from_dict(cls, data: Any) -> ChainState:
        """Parse :meth:`to_dict`'s form; ``InvalidRequest`` if it is malformed."""
        try:
            state = cls(
                int(data["seq"]), str(data["entry_hash"]), tuple(str(n) for n in data["frontier"])
            )
            state.tree()
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"malformed chain state: {exc!r}") from None
        return state


class ChainWalker:
    """Checks entries fed in order from a starting :class:`ChainState` (see the module doc).

    ``where`` prefixes every message (``"archive a.jsonl: "``) and may be changed between
    stretches. ``roots`` maps each size in ``roots_needed`` reached so far to the tree's
    root; ``archive_records`` maps the seq of every ``audit.archive`` entry seen to its
    details (to match the store's archive rows against the ledger).
    """

    def __init__(
        self,
        start: ChainState,
        problem: ProblemSink,
        *,
        roots_needed: Collection[int] = (),
        where: str = "",
    ) -> None:
        self.problem = problem
        self.where = where
        self.start = start
        self.expected = start.seq + 1
        self.prev = start.entry_hash
        self.frontier = start.tree()
        self.roots_needed = set(roots_needed)
        self.roots: dict[int, bytes] = {}
        if start.seq in self.roots_needed:
            self.roots[start.seq] = self.frontier.root()
        self.archive_records: dict[int, dict[str, Any]] = {}
        self.fed = 0

    @property
    def state(self) -> ChainState:
        """Where the chain stands after the last entry fed."""
        return ChainState(self.expected - 1, self.prev, tuple(self.frontier.to_hex()))

    def jump(self, state: ChainState) -> None:
        """Continue from ``state``: after a stretch nobody can check (an archive not given),
        or after a broken link the caller has already reported."""
        self.expected = state.seq + 1
        self.prev = state.entry_hash
        self.frontier = state.tree()
        if state.seq in self.roots_needed:
            self.roots[state.seq] = self.frontier.root()

    def feed(self, row: Any) -> None:
        """Check one entry (anything with the ``audit_entries`` columns as attributes)."""
        seq = int(row.seq)
        expected = self.expected
        if seq != expected:
            if seq > expected:
                gone = f"entry {expected}" if seq == expected + 1 else f"entries {expected}"
                gone += "" if seq == expected + 1 else f"..{seq - 1}"
                self._problem(expected, f"{gone} missing: the entry after {expected - 1} is {seq}")
            else:
                self._problem(seq, f"entry {seq} appears after entry {expected - 1} (moved)")
            self.expected = seq
        payload = self._check_entry(row)
        if payload is not None and payload.get("action") == ARCHIVE_ACTION:
            details = payload.get("details")
            if payload.get("kind") == "admin" and isinstance(details, dict):
                self.archive_records[seq] = details
        self.frontier.append(leaf_hash(str(row.payload).encode()))
        if self.frontier.size in self.roots_needed:
            self.roots[self.frontier.size] = self.frontier.root()
        self.prev = str(row.entry_hash)
        self.expected += 1
        self.fed += 1

    def _problem(self, seq: int | None, message: str, exact: bool = True) -> None:
        self.problem(seq, self.where + message, exact)

    def _check_entry(self, row: Any) -> dict[str, Any] | None:
        seq = int(row.seq)
        payload_text = str(row.payload)
        try:
            payload = json.loads(payload_text)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError:
            self._problem(seq, f"entry {seq}: payload is not valid JSON")
            return None
        if payload.get("seq") != seq:
            self._problem(
                seq, f"entry {seq} holds the payload of entry {payload.get('seq')} (moved)"
            )
        for name, value in indexed_columns(payload).items():
            if getattr(row, name) != value:
                self._problem(
                    seq,
                    f"entry {seq}: column {name}={getattr(row, name)!r} disagrees with its "
                    f"hashed payload ({value!r})",
                )
                break
        if str(row.prev_hash) != self.prev:
            self._problem(
                seq,
                f"entry {seq}: prev_hash is not the hash of the entry before it "
                "(an entry was removed, inserted or reordered here)",
            )
        if chain_hash(str(row.prev_hash), payload_text.encode()) != str(row.entry_hash):
            self._problem(seq, f"entry {seq}: contents do not match its entry_hash (edited)")
        if leaf_hash(payload_text.encode()).hex() != str(row.leaf_hash):
            self._problem(seq, f"entry {seq}: leaf_hash does not match its contents")
        return payload
