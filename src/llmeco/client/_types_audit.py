"""Client-side shapes of the audit-ledger routes (``/admin/audit``), re-exported by
:mod:`llmeco.client.types`.
"""

from __future__ import annotations

from typing import Any, Literal

from llmeco.client._types_base import Response


class AuditEntry(Response):
    """One ledger entry: its hashed ``payload`` and indexed copies (bodies when asked)."""

    seq: int
    ts: str
    kind: str
    request_id: str | None = None
    key_id: str | None = None
    route: str | None = None
    status: int | None = None
    payload: dict[str, Any]
    entry_hash: str
    bodies_redacted_at: str | None = None
    request_body: str | None = None
    response_body: str | None = None


class AuditEntryList(Response):
    """A page of entries; pass ``last_seq`` as ``after`` for the next one."""

    object: str = "list"
    data: list[AuditEntry]
    has_more: bool
    first_seq: int | None = None
    last_seq: int | None = None


class VerifyProblem(Response):
    """Something that failed to check (``seq``: the entry, when one is named)."""

    seq: int | None
    message: str


class VerifyResult(Response):
    """The outcome of re-walking the ledger (``llmeco audit verify --json``)."""

    ok: bool
    entries: int
    checkpoints: int
    archived_up_to: int
    archived_checked: int
    unchecked_checkpoints: int
    first_bad_seq: int | None
    problems: list[VerifyProblem]
    notes: list[str]
    public_key: str


class AuditCheckpoint(Response):
    """A signed statement of the tree's size and Merkle root (the export format)."""

    id: int | None = None
    log: str
    size: int
    root_hash: str
    timestamp: str
    public_key: str
    signature: str


class CheckpointList(Response):
    """Stored checkpoints, newest first."""

    object: str = "list"
    data: list[AuditCheckpoint]


class InclusionProof(Response):
    """Proof that entry ``seq`` is in the signed tree of ``tree_size`` entries; check it
    offline with ``llmeco audit verify --proof`` (the JSON is the same)."""

    type: Literal["inclusion"]
    seq: int
    leaf_index: int
    tree_size: int
    entry: str
    leaf_hash: str
    audit_path: list[str]
    checkpoint: AuditCheckpoint
