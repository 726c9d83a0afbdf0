"""The tamper-evident audit ledger: a hash chain with signed Merkle checkpoints.

* :mod:`~llmeco.governance.audit.ledger` — :class:`AuditLedger`, the group-commit writer
  every request and admin action goes through (its module doc explains the design);
* :mod:`~llmeco.governance.audit.sql` — the writer's SQL, run straight on the driver;
* :mod:`~llmeco.governance.audit.checkpoint` — Ed25519-signed (size, root, time) checkpoints;
* :mod:`~llmeco.governance.audit.merkle` — the RFC 6962 Merkle tree over the entries;
* :mod:`~llmeco.governance.audit.tables` — the ledger's tables (migration ``0003_audit``);
* :mod:`~llmeco.governance.audit.verify` — re-walking the ledger (with
  :mod:`~llmeco.governance.audit.walk`, the per-entry checks);
* :mod:`~llmeco.governance.audit.proofs` — inclusion and consistency proofs, over
  :mod:`~llmeco.governance.audit.partial` once old leaves are archived;
* :mod:`~llmeco.governance.audit.archive` — moving the oldest entries, up to a signed
  checkpoint, into a file (:mod:`~llmeco.governance.audit.archive_file`) and out of the store.

Importing this package imports :mod:`~llmeco.governance.audit.ledger`, which registers the
ledger's tables on the store's metadata and its sealed body columns with
:func:`~llmeco.governance.crypto.register_encrypted_column` (what key rotation re-encrypts),
exactly as importing the ledger module always did.
"""

from __future__ import annotations

from llmeco.governance.audit.checkpoint import Checkpoint, Signer, canonical_json
from llmeco.governance.audit.ledger import (
    AuditLedger,
    RequestRecord,
    chain_hash,
    indexed_columns,
    latest_checkpoint,
    utc_now,
)
from llmeco.governance.audit.verify import (
    Problem,
    VerifyReport,
    make_consistency_proof,
    make_inclusion_proof,
    read_entry,
    verify_ledger,
    verify_proof,
)

__all__ = [
    "AuditLedger",
    "Checkpoint",
    "Problem",
    "RequestRecord",
    "Signer",
    "VerifyReport",
    "canonical_json",
    "chain_hash",
    "indexed_columns",
    "latest_checkpoint",
    "make_consistency_proof",
    "make_inclusion_proof",
    "read_entry",
    "utc_now",
    "verify_ledger",
    "verify_proof",
]
