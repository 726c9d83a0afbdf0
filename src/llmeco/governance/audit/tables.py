"""The audit ledger's tables (migration ``0003_audit``).

* ``audit_entries`` — one row per event, append-only. ``payload`` is the canonical JSON
  that is hashed; the other descriptive columns (kind, request id, key id, route, status) are
  copies for indexing, and ``llmeco audit verify`` checks they still equal the payload.
  ``request_body``/``response_body`` hold sealed, redacted bodies when bodies are kept; they
  are not hashed themselves (their SHA-256 of the original bytes is in the payload), so key
  rotation can rewrite them.
* ``audit_head`` — a single row: the chain's tip (last seq and hash), the Merkle frontier and
  when the last checkpoint was written. Every append locks this row first, which serialises
  writers across processes and replicas on SQLite and PostgreSQL alike.
* ``audit_checkpoints`` — signed (size, root hash, time) statements.
* ``audit_archives`` — one row per archived prefix (``0009_audit_archive``, see
  ``audit/archive.py``): where the live chain and Merkle tree continue from.
"""

from __future__ import annotations

import sqlalchemy as sa

from llmeco.store import Base


class AuditEntry(Base):
    """One ledger entry."""

    __table__ = sa.Table(
        "audit_entries",
        Base.metadata,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String, nullable=True),
        sa.Column("key_id", sa.String, nullable=True),
        sa.Column("route", sa.String, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.Column("request_body", sa.LargeBinary, nullable=True),
        sa.Column("response_body", sa.LargeBinary, nullable=True),
        sa.Column("bodies_redacted_at", sa.String(32), nullable=True),  # 0008: bodies erased
        sa.Index("ix_audit_entries_request_id", "request_id"),
        sa.Index("ix_audit_entries_key_id_ts", "key_id", "ts"),
        sa.Index("ix_audit_entries_ts", "ts"),
    )


class AuditHead(Base):
    """The chain's tip and Merkle frontier (exactly one row, id 1)."""

    __table__ = sa.Table(
        "audit_head",
        Base.metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger, nullable=False),
        sa.Column("checkpoint_time", sa.Float, nullable=False),
        sa.Column("writes", sa.BigInteger, nullable=False),
    )


class AuditCheckpoint(Base):
    """A signed statement of the tree's size and root at a time."""

    __table__ = sa.Table(
        "audit_checkpoints",
        Base.metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Index("ix_audit_checkpoints_size", "size"),
    )


class AuditArchive(Base):
    """One archived prefix of the chain (migration ``0009_audit_archive``): entries
    ``first_seq..last_seq`` went to a file and left the store. ``entry_hash`` and ``frontier``
    are the chain tip and Merkle frontier at ``last_seq`` (a signed checkpoint's size): the
    live chain and tree continue from the newest row. ``record_seq`` is the ledger entry that
    recorded the archive; ``sha256`` is the archive file's."""

    __table__ = sa.Table(
        "audit_archives",
        Base.metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String, nullable=False),
        sa.Column("record_seq", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
    )


entries: sa.Table = AuditEntry.__table__
head: sa.Table = AuditHead.__table__
checkpoints: sa.Table = AuditCheckpoint.__table__
archives: sa.Table = AuditArchive.__table__

GENESIS_HASH = "0" * 64
