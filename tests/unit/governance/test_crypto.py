"""Encryption at rest: AES-GCM blobs, the key ring, key files, and rotation of stored rows."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmeco.errors import ConfigError, InvalidRequest
from llmeco.governance.crypto import (
    Cipher,
    EncryptedColumn,
    generate_key,
    parse_key,
    rotate,
)
from llmeco.settings import Settings
from llmeco.store import Store


def key() -> bytes:
    return base64.b64decode(generate_key())


def test_round_trip_binds_aad_and_detects_tampering() -> None:
    cipher = Cipher([key()])
    blob = cipher.encrypt(b"my conversation", b"conversation:1")
    assert b"my conversation" not in blob
    assert cipher.decrypt(blob, b"conversation:1") == b"my conversation"
    assert cipher.encrypt(b"x", b"a") != cipher.encrypt(b"x", b"a")  # fresh nonce each time
    with pytest.raises(InvalidRequest, match="authentication"):
        cipher.decrypt(blob, b"conversation:2")  # moved to another row
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(InvalidRequest, match="authentication"):
        cipher.decrypt(flipped, b"conversation:1")
    with pytest.raises(InvalidRequest, match="not in the key ring"):
        Cipher([key()]).decrypt(blob, b"conversation:1")
    with pytest.raises(InvalidRequest):
        cipher.decrypt(b"garbage", b"")


def test_key_ring_decrypts_old_blobs_and_encrypts_with_newest() -> None:
    old, new = key(), key()
    blob = Cipher([old]).encrypt(b"secret")
    ring = Cipher([new, old])
    assert ring.decrypt(blob) == b"secret"
    assert not ring.is_current(blob)
    assert ring.is_current(ring.encrypt(b"secret"))


def test_keys_from_settings_hex_or_base64_and_key_file(tmp_path: Path) -> None:
    k1, k2 = key(), key()
    settings = Settings(
        home=tmp_path, encryption_keys=f"{base64.b64encode(k1).decode()},{k2.hex()}"
    )
    blob = Cipher([k2]).encrypt(b"v")
    assert Cipher.from_settings(settings).decrypt(blob) == b"v"
    # No keys configured: a 0600 key file is generated once and reused.
    home = tmp_path / "home"
    first = Cipher.from_settings(Settings(home=home)).encrypt(b"v")
    path = home / "keys" / "encryption.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Cipher.from_settings(Settings(home=home)).decrypt(first) == b"v"
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Cipher.from_settings(Settings(home=home))
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_key("too-short")


def test_rotate_re_encrypts_stored_rows(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    meta = sa.MetaData()
    notes = sa.Table(
        "notes",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.LargeBinary, nullable=True),
    )
    meta.create_all(store.engine)
    old, new = key(), key()
    before = Cipher([old])

    def aad(row: object) -> bytes:
        return f"note:{row['id']}".encode()  # type: ignore[index]

    with store.session() as s:
        s.execute(
            sa.insert(notes),
            [
                {"id": i, "body": before.encrypt(f"note {i}".encode(), f"note:{i}".encode())}
                for i in range(1, 8)
            ]
            + [{"id": 8, "body": None}],
        )
    column = EncryptedColumn(notes, "body", aad)
    ring = Cipher([new, old])
    assert rotate(store, ring, [column], batch=3) == 7
    assert rotate(store, ring, [column], batch=3) == 0  # idempotent
    only_new = Cipher([new])
    with store.session() as s:
        rows = s.execute(sa.select(notes).where(notes.c.body.is_not(None))).all()
    assert [only_new.decrypt(r.body, f"note:{r.id}".encode()) for r in rows] == [
        f"note {i}".encode() for i in range(1, 8)
    ]
    store.close()
