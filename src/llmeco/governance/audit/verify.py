"""Checking the audit ledger: re-walk the chain and checkpoints, also across archives.

:func:`verify_ledger` walks every entry in order with a
:class:`~llmeco.governance.audit.walk.ChainWalker` (which names the first bad entry: missing,
moved, edited, a broken link). It rebuilds the Merkle tree as it goes and checks every stored
checkpoint and any exported ones given to it: signature under the ledger's public key, size
not beyond the log (else the tail was cut), and root equal to the rebuilt tree's root at that
size (else history was rewritten — even with every hash recomputed).

After archiving (``audit/archive.py``) the walk starts at the store's archived boundary: the
first live entry must link to the boundary's entry hash and the tree continues from its
frontier, so every checkpoint from the boundary on still checks; checkpoints inside the
archived prefix cannot be checked without their archive and are counted as unchecked. Given
the archive files, the walk starts at the first one's start (genesis for the first archive)
and goes through each archive — its header, entries, end state, signed checkpoint and the
sha256 the store recorded — into the live chain: the whole history. Each ``audit.archive``
ledger entry the walk meets must match the store's row for that archive.

Proofs live in :mod:`~llmeco.governance.audit.proofs` (re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from llmeco.errors import NotFound
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.archive_file import (
    ArchiveFile,
    ArchiveRow,
    archive_rows,
    check_archive,
)
from llmeco.governance.audit.checkpoint import Checkpoint
from llmeco.governance.audit.proofs import (
    make_consistency_proof,
    make_inclusion_proof,
    verify_proof,
)
from llmeco.governance.audit.walk import ChainState, ChainWalker, Problem
from llmeco.governance.crypto import Cipher
from llmeco.store import Store

__all__ = [
    "Problem",
    "VerifyReport",
    "make_consistency_proof",
    "make_inclusion_proof",
    "read_entry",
    "stored_checkpoints",
    "verify_ledger",
    "verify_proof",
]

#: Stop collecting problems after this many (the first one is what matters).
MAX_PROBLEMS = 50
#: Entries between two progress callbacks.
PROGRESS_STEP = 2000


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_ledger`."""

    entries: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: Entries 1..archived_up_to are archived (no longer in the store).
    archived_up_to: int = 0
    #: Entries checked from archive files.
    archived_checked: int = 0
    #: Checkpoints inside an archived stretch no archive was given for.
    unchecked_checkpoints: int = 0
    #: What was not checked, and why (not problems).
    notes: list[str] = field(default_factory=list)

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
            "archived_up_to": self.archived_up_to,
            "archived_checked": self.archived_checked,
            "unchecked_checkpoints": self.unchecked_checkpoints,
            "first_bad_seq": first.seq if first else None,
            "problems": [{"seq": p.seq, "message": p.message} for p in self.problems],
            "notes": list(self.notes),
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
    archives: Sequence[ArchiveFile] = (),
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Re-walk the ledger from its archived boundary, or through ``archives`` from the first
    one's start; see the module doc for what is checked."""
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
    rows = archive_rows(store)
    by_last = {r.last_seq: r for r in rows}
    boundary = rows[-1].end if rows else ChainState.genesis()
    report.archived_up_to = boundary.seq
    files = sorted(archives, key=lambda a: (a.start.seq, a.end.seq))

    start = files[0].start if files else boundary
    if start.seq > 0 and start != (by_last[start.seq].end if start.seq in by_last else None):
        problem(
            None,
            f"the archives start after entry {start.seq}, where the store records "
            "no archive boundary",
        )
    if files and start.seq > 0:
        report.notes.append(f"entries 1..{start.seq} were not checked: their archive was not given")
    try:
        walker = ChainWalker(start, problem, roots_needed={cp.size for _, cp in anchors})
    except ValueError as exc:
        problem(start.seq, f"the archived boundary at entry {start.seq} is malformed: {exc}")
        return report
    for archive in files:
        check_archive(archive, walker, public_key, by_last)
    report.archived_checked = walker.fed
    if walker.state.seq < boundary.seq:
        if files:
            report.notes.append(
                f"entries {walker.state.seq + 1}..{boundary.seq} were not checked: "
                "their archive was not given"
            )
        walker.jump(boundary)
    elif files and walker.state.seq == boundary.seq and walker.state != boundary:
        problem(
            boundary.seq,
            f"the store's archive boundary at entry {boundary.seq} does not match the "
            "archives' end (its entry hash or frontier was changed)",
        )
    _walk_live(store, walker, report, problem, progress)
    _check_records(rows, walker, problem)
    report.unchecked_checkpoints = _check_anchors(
        anchors, walker.roots, walker.frontier.size, public_key, problem, start.seq
    )
    if boundary.seq and not any(cp.size == boundary.seq for _, cp in anchors):
        problem(None, f"the archive boundary {boundary.seq} is at no stored checkpoint")
    if report.unchecked_checkpoints:
        report.notes.append(
            f"{report.unchecked_checkpoints} checkpoints inside archived entries were not "
            "checked (give their archives)"
        )
    return report


def _walk_live(
    store: Store,
    walker: ChainWalker,
    report: VerifyReport,
    problem: Callable[..., None],
    progress: Callable[[int], None] | None,
) -> None:
    """Feed the store's entries after the walker's position; check the head row."""
    skip = walker.state.seq
    c = t.entries.c
    cols = [c[name] for name in ("ts", "kind", "request_id", "key_id", "route", "status")]
    cols += [c.seq, c.payload, c.prev_hash, c.entry_hash, c.leaf_hash]
    query = sa.select(*cols).where(c.seq > skip).order_by(c.seq)
    fed = walker.fed
    with store.engine.connect() as conn:
        leftovers = conn.execute(sa.select(sa.func.count()).where(c.seq <= skip)).scalar()
        for row in conn.execution_options(yield_per=PROGRESS_STEP).execute(query):
            walker.feed(row)
            if progress is not None and (walker.fed - fed) % PROGRESS_STEP == 0:
                progress(PROGRESS_STEP)
        if progress is not None:
            progress((walker.fed - fed) % PROGRESS_STEP)
        head = conn.execute(sa.select(t.head).where(t.head.c.id == 1)).one()
    report.entries = walker.fed
    if leftovers:
        report.notes.append(
            f"{leftovers} archived entries (up to {skip}) are still in the store and were "
            "skipped: an archive run did not finish deleting them; `llmeco audit archive` does"
        )
    last, prev = walker.state.seq, walker.state.entry_hash
    if int(head.seq) != last or str(head.entry_hash) != prev:
        problem(
            min(int(head.seq), last) + 1,
            f"the ledger head says {head.seq} entries but the log ends at entry {last}"
            + (": the tail was cut" if int(head.seq) > last else ""),
        )


def _check_records(
    rows: Sequence[ArchiveRow], walker: ChainWalker, problem: Callable[..., None]
) -> None:
    """Each archive row's ``audit.archive`` entry, where the walk passed it, must match."""
    seen = walker.archive_records
    for row in rows:
        if row.record_seq <= walker.start.seq or row.record_seq > walker.state.seq:
            continue
        details = seen.get(row.record_seq)
        if details is None or (
            details.get("last_seq") != row.last_seq or details.get("sha256") != row.sha256
        ):
            problem(
                row.record_seq,
                f"the store says entries {row.first_seq}..{row.last_seq} were archived "
                f"(sha256 {row.sha256[:16]}…) but ledger entry {row.record_seq} does not "
                "record that archive",
            )


def _check_anchors(
    anchors: Iterable[tuple[str, Checkpoint]],
    roots: dict[int, bytes],
    n: int,
    public_key: str,
    problem: Callable[[int | None, str, bool], None],
    checked_from: int,
) -> int:
    """Check the checkpoints against the walked tree; returns how many could not be (their
    size falls in an archived stretch that was not walked)."""
    good_below = checked_from  # largest size vouched for so far, to bound rewritten ranges
    unchecked = 0
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
        elif cp.size > 0 and cp.size not in roots:
            unchecked += 1
        elif cp.size > 0 and roots[cp.size].hex() != cp.root_hash:
            problem(
                good_below + 1,
                f"{name} ({cp.size} entries, signed at {cp.timestamp}) does not match the log: "
                f"entries {good_below + 1}..{cp.size} were rewritten",
                False,
            )
        else:
            good_below = max(good_below, cp.size)
    return unchecked


def read_entry(
    store: Store,
    seq: int,
    cipher: Cipher | None = None,
    archives: Sequence[ArchiveFile] = (),
) -> dict[str, Any]:
    """Entry ``seq``: its payload, hashes and (with a cipher) its decrypted, redacted bodies;
    from the store, or from the archive given that holds it."""
    with store.session() as s:
        row: Any = s.execute(sa.select(t.entries).where(t.entries.c.seq == seq)).first()
    for archive in archives if row is None else ():
        row = archive.entry(seq)
        if row is not None:
            break
    if row is None:
        archived = max((r.last_seq for r in archive_rows(store)), default=0)
        hint = f" (entries 1..{archived} are archived: pass the archive)" if seq <= archived else ""
        raise NotFound(f"entry {seq} does not exist{hint}")
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
