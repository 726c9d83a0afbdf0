"""Signed ledger checkpoints: (size, Merkle root, time) under an Ed25519 key.

A checkpoint says "the first ``size`` entries of this ledger hash to ``root_hash``". It is
signed over the canonical JSON ``{"log": "llmeco-audit", "root_hash", "size", "timestamp"}``
and exported as JSON with the signature and the public key, so it can be anchored outside
the system (mailed, committed to git, notarised). Anyone holding it can later check that the
ledger still contains those entries unchanged (``llmeco audit verify --checkpoint FILE``)
or that a single entry is in it (``--proof FILE``).

The signing key is ``LLMECO_AUDIT_SIGNING_KEY`` (the 32-byte seed, hex or base64) or, when
that is empty, ``HOME/keys/audit-signing.key`` (created 0600 on first use).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from llmeco.errors import InvalidRequest
from llmeco.governance.crypto import parse_key, secret_file
from llmeco.settings import Settings

LOG_NAME = "llmeco-audit"


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes every ledger hash and signature covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the ledger's size and Merkle root."""

    size: int
    root_hash: str
    timestamp: str
    public_key: str
    signature: str

    def message(self) -> bytes:
        """The exact bytes the signature covers."""
        return checkpoint_message(self.size, self.root_hash, self.timestamp)

    def signature_ok(self, public_key: str | None = None) -> bool:
        """Whether the signature is valid under ``public_key`` (hex; default: the one the
        checkpoint names — only meaningful if you trust that key)."""
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key or self.public_key))
            key.verify(bytes.fromhex(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """The export format (what ``llmeco audit checkpoint --export`` writes)."""
        return {"log": LOG_NAME, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        """Parse an exported checkpoint; ``InvalidRequest`` if it is not one."""
        try:
            if data.get("log", LOG_NAME) != LOG_NAME:
                raise InvalidRequest(f"not an {LOG_NAME} checkpoint: log={data.get('log')!r}")
            return cls(
                size=int(data["size"]),
                root_hash=str(data["root_hash"]),
                timestamp=str(data["timestamp"]),
                public_key=str(data["public_key"]),
                signature=str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidRequest(f"malformed checkpoint: {exc!r}") from None


def checkpoint_message(size: int, root_hash: str, timestamp: str) -> bytes:
    """Canonical bytes of a checkpoint's signed fields."""
    return canonical_json(
        {"log": LOG_NAME, "size": size, "root_hash": root_hash, "timestamp": timestamp}
    )


class Signer:
    """Signs checkpoints with the ledger's Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = raw.hex()

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        """The key from ``LLMECO_AUDIT_SIGNING_KEY`` or ``HOME/keys/audit-signing.key``."""
        text = settings.audit_signing_key.get_secret_value()
        if not text.strip():
            path = settings.home / "keys" / "audit-signing.key"
            text = secret_file(path, lambda: secrets.token_bytes(32).hex())
        seed = parse_key(text, size=32, what="audit signing key")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, size: int, root_hash: str, timestamp: str) -> Checkpoint:
        """A checkpoint of ``size`` entries with that root, signed now."""
        signature = self._key.sign(checkpoint_message(size, root_hash, timestamp)).hex()
        return Checkpoint(size, root_hash, timestamp, self.public_key, signature)
