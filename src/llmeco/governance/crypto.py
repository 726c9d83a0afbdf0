"""Encryption at rest: AES-256-GCM with a key ring, and key rotation of stored rows.

Anything the store keeps that may hold personal data (ledger bodies today; conversations and
feedback later) goes through one :class:`Cipher`::

    cipher = Cipher.from_settings(settings)
    blob = cipher.encrypt(b"text", aad=b"conversation:42")   # bytes for a LargeBinary column
    cipher.decrypt(blob, aad=b"conversation:42")             # -> b"text"

A blob is ``0x01 ‖ key id (4 bytes) ‖ nonce (12 bytes) ‖ ciphertext+tag``. The key id is
derived from the key, so a blob names the key that sealed it and decrypts under any key of the
ring. The AAD binds a blob to its row: a blob copied into another row fails to decrypt.

Keys come from ``LLMECO_ENCRYPTION_KEYS`` (comma-separated, newest first) or, when that is
empty, from ``HOME/keys/encryption.key`` (one key per line, newest first), created with a fresh
key and mode 0600 on first use. To rotate: put a new key in front, keep the old ones, run
:func:`rotate` (``llmeco audit rotate-keys``), which re-encrypts every registered column with
the newest key; then the old keys can go. Tables register their encrypted columns with
:func:`register_encrypted_column`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from llmeco.errors import ConfigError, InvalidRequest
from llmeco.settings import Settings
from llmeco.store import Store

VERSION = b"\x01"
KEY_BYTES = 32
NONCE_BYTES = 12
_HEADER = 1 + 4 + NONCE_BYTES


def generate_key() -> str:
    """A fresh random AES-256 key, base64 (what ``LLMECO_ENCRYPTION_KEYS`` takes)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def parse_key(text: str, *, size: int = KEY_BYTES, what: str = "encryption key") -> bytes:
    """Decode a key given as hex or (url-safe) base64; it must be ``size`` bytes."""
    text = text.strip()
    candidates: list[bytes] = []
    if len(text) == 2 * size:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(text + "=" * (-len(text) % 4)))
    for key in candidates:
        if len(key) == size:
            return key
    raise ConfigError(f"an {what} must be {size} bytes as hex or base64 (got {len(text)} chars)")


def secret_file(path: Path, make: Callable[[], str]) -> str:
    """The text of a 0600 secret file, created with ``make()`` if it does not exist yet.

    Creation is atomic (written aside, then hard-linked into place), so concurrent first
    starts agree on one secret. A file others can read is refused: fix it with chmod 600.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(make().strip() + "\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use its secret
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
    return path.read_text()


def key_id(key: bytes) -> bytes:
    """The 4-byte id a blob carries for the key that sealed it."""
    return hashlib.sha256(b"llmeco-key-id\x00" + key).digest()[:4]


class Cipher:
    """AES-256-GCM over a key ring: encrypts with the newest key, decrypts with any."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigError("the encryption key ring is empty")
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ConfigError(f"encryption keys must be {KEY_BYTES} bytes, got {len(key)}")
        self._newest = key_id(keys[0])
        self._aead = {key_id(k): AESGCM(k) for k in keys}
        self._primary = self._aead[self._newest]

    @classmethod
    def from_settings(cls, settings: Settings) -> Cipher:
        """The ring from ``LLMECO_ENCRYPTION_KEYS``, else from ``HOME/keys/encryption.key``."""
        text = settings.encryption_keys.get_secret_value()
        if not text.strip():
            text = secret_file(settings.home / "keys" / "encryption.key", generate_key)
        parts = [p for p in text.replace("\n", ",").split(",") if p.strip()]
        return cls([parse_key(p) for p in parts])

    def encrypt(self, data: bytes, aad: bytes = b"") -> bytes:
        """Seal ``data`` with the newest key; ``aad`` must be given again to decrypt."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return VERSION + self._newest + nonce + self._primary.encrypt(nonce, data, aad)

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Open a blob sealed by any key of the ring; ``InvalidRequest`` if it was altered,
        sealed with another AAD, or by a key not in the ring."""
        if len(blob) < _HEADER + 16 or blob[:1] != VERSION:
            raise InvalidRequest("not an llmeco encrypted blob")
        aead = self._aead.get(blob[1:5])
        if aead is None:
            raise InvalidRequest(
                f"blob was sealed with key id {blob[1:5].hex()}, which is not in the key ring"
            )
        try:
            return aead.decrypt(blob[5:_HEADER], blob[_HEADER:], aad)
        except InvalidTag:
            raise InvalidRequest(
                "encrypted blob failed authentication (altered or moved)"
            ) from None

    def is_current(self, blob: bytes) -> bool:
        """Whether ``blob`` is sealed with the newest key (rotation skips it)."""
        return blob[1:5] == self._newest


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding :class:`Cipher` blobs, and how to rebuild each row's AAD."""

    table: sa.Table
    column: str
    #: AAD of a row, from the row's values (``row._mapping``).
    aad: Callable[[Any], bytes]


_REGISTRY: dict[tuple[str, str], EncryptedColumn] = {}


def register_encrypted_column(
    table: sa.Table, column: str, aad: Callable[[Any], bytes]
) -> EncryptedColumn:
    """Declare a column of sealed blobs so :func:`rotate` re-encrypts it."""
    entry = EncryptedColumn(table, column, aad)
    _REGISTRY[(table.name, column)] = entry
    return entry


def encrypted_columns() -> list[EncryptedColumn]:
    """Every registered encrypted column."""
    return list(_REGISTRY.values())


def rotate(
    store: Store,
    cipher: Cipher,
    columns: Iterable[EncryptedColumn] | None = None,
    *,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-encrypt every blob not sealed with the newest key; returns how many were rewritten.

    Works in batches of ``batch`` rows per transaction, so a large table does not hold one
    long write lock; it is safe to interrupt and run again.
    """
    done = 0
    for col in columns if columns is not None else encrypted_columns():
        table = col.table
        pk = list(table.primary_key.columns)
        if len(pk) != 1:
            raise ConfigError(f"{table.name}: rotation needs a single-column primary key")
        key = pk[0]
        target = table.c[col.column]
        last: Any = None
        while True:
            query = sa.select(table).where(target.is_not(None)).order_by(key).limit(batch)
            if last is not None:
                query = query.where(key > last)
            with store.session() as s:
                rows = s.execute(query).all()
                for row in rows:
                    blob = row._mapping[col.column]
                    if cipher.is_current(blob):
                        continue
                    aad = col.aad(row._mapping)
                    sealed = cipher.encrypt(cipher.decrypt(blob, aad), aad)
                    s.execute(
                        sa.update(table)
                        .where(key == row._mapping[key.name])
                        .values({col.column: sealed})
                    )
                    done += 1
            if progress is not None:
                progress(len(rows))
            if len(rows) < batch:
                break
            last = rows[-1]._mapping[key.name]
    return done
