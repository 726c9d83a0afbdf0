"""The audit archive file format, and the store's record of archives (``audit_archives``).

An archive is one JSONL file. Line 1 is a header::

    {"format": "llmeco-audit-archive", "version": 1, "first_seq", "last_seq", "count",
     "start": {"seq", "entry_hash", "frontier"}, "end": {...}, "checkpoint": {...},
     "entries_sha256", "binary_columns", "created"}

then one line per entry, exactly as stored (every ``audit_entries`` column, canonical JSON;
sealed bodies base64). ``start`` is the chain tip and Merkle frontier before ``first_seq``
(genesis, or the end of the previous archive), ``end`` the same after ``last_seq``;
``checkpoint`` is the signed checkpoint of size ``last_seq`` — an archive always ends exactly
at one, so its entries stay pinned by a signature whatever happens to the file.
``entries_sha256`` covers the entry lines; the SHA-256 of the whole file is kept in the
store's ``audit_archives`` row and in the ``audit.archive`` ledger entry.

:func:`check_archive` walks a file with the same checks as the live chain; it is what
``verify --archive`` and the archiving run itself (before deleting anything) rely on.
Making archives is :mod:`~llmeco.governance.audit.archive`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from llmeco.errors import InvalidRequest, NotFound
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.checkpoint import Checkpoint
from llmeco.governance.audit.walk import ChainState, ChainWalker, ProblemSink
from llmeco.store import Store

FORMAT = "llmeco-audit-archive"
VERSION = 1


@dataclass(frozen=True)
class ArchiveRow:
    """One row of ``audit_archives``: entries ``first_seq..end.seq`` were archived."""

    first_seq: int
    end: ChainState
    root_hash: str
    sha256: str
    file_name: str
    record_seq: int
    ts: str

    @property
    def last_seq(self) -> int:
        """The last archived entry (a signed checkpoint's size)."""
        return self.end.seq


def archive_rows(store: Store) -> list[ArchiveRow]:
    """Every archive the store records, oldest first."""
    with store.session() as s:
        rows = s.execute(sa.select(t.archives).order_by(t.archives.c.last_seq)).all()
    return [
        ArchiveRow(
            int(r.first_seq),
            ChainState(int(r.last_seq), str(r.entry_hash), tuple(json.loads(r.frontier))),
            str(r.root_hash),
            str(r.sha256),
            str(r.file_name),
            int(r.record_seq),
            str(r.ts),
        )
        for r in rows
    ]


def boundary(store: Store) -> ChainState:
    """Where the live chain starts from: the newest archive's end, or genesis."""
    rows = archive_rows(store)
    return rows[-1].end if rows else ChainState.genesis()


def binary_columns() -> list[str]:
    return [c.name for c in t.entries.columns if isinstance(c.type, sa.LargeBinary)]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ArchiveFile:
    """An archive on disk: its parsed header, the file's SHA-256, its entries on demand."""

    def __init__(self, path: Path, header: dict[str, Any], sha256: str) -> None:
        self.path = path
        self.name = path.name
        self.sha256 = sha256
        self.header = header
        try:
            self.first_seq = int(header["first_seq"])
            self.last_seq = int(header["last_seq"])
            self.count = int(header["count"])
            self.entries_sha256 = str(header["entries_sha256"])
            self.binary_columns = [str(c) for c in header.get("binary_columns", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"archive {path}: malformed header: {exc!r}") from None
        self.start = ChainState.from_dict(header.get("start"))
        self.end = ChainState.from_dict(header.get("end"))
        self.checkpoint = Checkpoint.from_dict(header.get("checkpoint"))
        #: SHA-256 of the entry lines, set once :meth:`entries` has read them all.
        self.entries_digest: str | None = None

    @classmethod
    def open(cls, path: Path) -> ArchiveFile:
        """Read an archive's header; ``NotFound`` / ``InvalidRequest`` if it is not one."""
        if not path.is_file():
            raise NotFound(f"archive file {path} does not exist")
        with path.open("rb") as f:
            first = f.readline()
        try:
            header = json.loads(first)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise InvalidRequest(f"{path} is not an llmeco audit archive")
        if header.get("version") != VERSION:
            raise InvalidRequest(f"archive {path}: unknown version {header.get('version')!r}")
        return cls(path, header, _file_sha256(path))

    def entries(self, problem: ProblemSink | None = None) -> Iterator[SimpleNamespace]:
        """The entries in file order, as rows with the stored columns as attributes.

        A line that is not an entry is reported to ``problem`` (with its line number) and
        skipped; :attr:`entries_digest` is set after the last line.
        """
        digest = hashlib.sha256()
        columns = [c.name for c in t.entries.columns]
        with self.path.open("rb") as f:
            f.readline()
            for number, line in enumerate(f, start=2):
                digest.update(line)
                try:
                    data = json.loads(line)
                    row = SimpleNamespace(**{c: data[c] for c in columns})
                    for c in self.binary_columns:
                        value = getattr(row, c, None)
                        if value is not None:
                            setattr(row, c, base64.b64decode(value))
                except (ValueError, KeyError, TypeError) as exc:
                    if problem is not None:
                        problem(
                            None,
                            f"archive {self.name}: line {number} is not an entry ({exc!r})",
                            True,
                        )
                    continue
                yield row
        self.entries_digest = digest.hexdigest()

    def entry(self, seq: int) -> SimpleNamespace | None:
        """Entry ``seq`` if this archive holds it."""
        if not self.first_seq <= seq <= self.last_seq:
            return None
        return next((r for r in self.entries() if int(r.seq) == seq), None)

    def leaves(self) -> list[bytes]:
        """The stored leaf hashes, in file order (for proofs)."""
        return [bytes.fromhex(str(r.leaf_hash)) for r in self.entries()]


def check_archive(
    archive: ArchiveFile,
    walker: ChainWalker,
    public_key: str,
    recorded: Mapping[int, ArchiveRow] | None = None,
) -> None:
    """Walk ``archive`` with ``walker`` (positioned where the archive should start) and check
    its header: the start links to what came before, the entries hash to ``entries_sha256``,
    the end state and signed checkpoint match the walked entries, and the file is the one the
    store recorded (``recorded``: archive rows by last seq). Problems go to the walker's sink."""
    name = archive.name
    where = f"archive {name}: "

    def problem(seq: int | None, message: str, exact: bool = True) -> None:
        walker.problem(seq, where + message, exact)

    before = walker.state
    if before != archive.start:
        if before.seq < archive.start.seq:
            problem(
                before.seq + 1,
                f"starts after entry {archive.start.seq} but the chain before it ends at "
                f"{before.seq}: entries {before.seq + 1}..{archive.start.seq} are in no given "
                "archive",
            )
        elif before.seq > archive.start.seq:
            problem(archive.start.seq + 1, f"overlaps entries up to {before.seq} checked before")
        else:
            problem(
                archive.first_seq,
                f"does not link to the entries before it (its start state differs at entry "
                f"{before.seq})",
            )
        walker.jump(archive.start)
    walker.where = where
    fed = walker.fed
    for row in archive.entries(walker.problem):
        walker.feed(row)
    walker.where = ""
    count = walker.fed - fed
    if archive.entries_digest != archive.entries_sha256:
        problem(
            archive.first_seq,
            "its entry lines do not hash to the header's entries_sha256 (the file was edited)",
            False,
        )
    if count != archive.count or archive.last_seq - archive.first_seq + 1 != archive.count:
        problem(
            archive.first_seq,
            f"holds {count} entries but its header says {archive.count} "
            f"({archive.first_seq}..{archive.last_seq})",
            False,
        )
    after = walker.state
    if after.seq != archive.end.seq:
        problem(after.seq + 1, f"ends at entry {after.seq} but its header says {archive.end.seq}")
    elif after != archive.end:
        problem(archive.end.seq, "its end state (hash, frontier) does not match its entries")
    cp = archive.checkpoint
    if cp.public_key != public_key or not cp.signature_ok(public_key):
        problem(None, f"its checkpoint (size {cp.size}) is not signed by this ledger's key")
    elif cp.size != archive.last_seq:
        problem(
            archive.last_seq, f"its checkpoint covers {cp.size} entries, not {archive.last_seq}"
        )
    elif walker.frontier.size == cp.size and walker.frontier.root().hex() != cp.root_hash:
        problem(
            archive.first_seq,
            f"its entries do not match its signed checkpoint ({cp.size} entries, signed at "
            f"{cp.timestamp}): entries {archive.first_seq}..{cp.size} were rewritten",
            False,
        )
    mine = (recorded or {}).get(archive.last_seq)
    if mine is not None and (mine.sha256 != archive.sha256 or mine.first_seq != archive.first_seq):
        problem(
            archive.first_seq,
            f"is not the file archived at {mine.ts} ({mine.file_name}): its sha256 "
            f"{archive.sha256[:16]}… differs from the recorded {mine.sha256[:16]}…",
            False,
        )
