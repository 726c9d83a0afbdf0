"""Sealing the key files of a home with a passphrase, for a backup that carries them.

``home/keys/`` holds what the stored data depends on: ``encryption.key`` (the AES-GCM ring
sealing ledger bodies, conversations and feedback), ``audit-signing.key`` (the Ed25519 seed
signing ledger checkpoints) and ``api-key-secret`` (the HMAC secret API keys are hashed
with). A restore without them cannot decrypt those columns, sign checkpoints under the same
public key, or accept the existing API keys.

``keys.sealed`` is JSON: the scrypt parameters and salt, the AES-GCM nonce and the
ciphertext of ``{"files": {name: base64 bytes}}``. The key is
``scrypt(passphrase, salt, n=2**15, r=8, p=1)`` (32 bytes); the AAD names the format, so
the blob cannot be passed off as anything else. A wrong passphrase fails the GCM tag and is
refused as such.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from llmeco.errors import ConfigError, InvalidRequest
from llmeco.registry.artifacts import safe_relpath

SEALED_FORMAT = "llmeco-sealed-keys"
_AAD = b"llmeco-sealed-keys/1"
#: scrypt cost: 2**15 × 8 × 128 B = 32 MiB of memory, ~0.1 s per try on a server CPU.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSPHRASE = 8


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def check_passphrase(passphrase: str, source: str) -> str:
    """``passphrase`` if it is long enough to seal keys with; ``source`` names where it came
    from (the environment variable) in the error.

    Raises:
        ConfigError: empty or shorter than :data:`MIN_PASSPHRASE` characters.
    """
    if len(passphrase) < MIN_PASSPHRASE:
        what = "is empty or unset" if not passphrase else f"has {len(passphrase)} characters"
        raise ConfigError(
            f"the backup passphrase ({source}) {what}; it needs at least {MIN_PASSPHRASE}"
        )
    return passphrase


def key_files(keys_dir: Path) -> dict[str, bytes]:
    """The regular files directly in ``keys_dir`` (name → bytes); empty if it does not exist."""
    if not keys_dir.is_dir():
        return {}
    return {
        p.name: p.read_bytes()
        for p in sorted(keys_dir.iterdir())
        if p.is_file() and not p.is_symlink() and not p.name.startswith(".")
    }


def seal(files: dict[str, bytes], passphrase: str) -> bytes:
    """The ``keys.sealed`` bytes holding ``files``, encrypted under ``passphrase``."""
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    key = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    plain = json.dumps(
        {"files": {name: base64.b64encode(data).decode() for name, data in files.items()}}
    ).encode()
    sealed = {
        "format": SEALED_FORMAT,
        "version": 1,
        "kdf": {
            "name": "scrypt",
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": "aes-256-gcm",
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(AESGCM(key).encrypt(nonce, plain, _AAD)).decode(),
    }
    return (json.dumps(sealed, indent=2) + "\n").encode()


def unseal(blob: bytes, passphrase: str) -> dict[str, bytes]:
    """The key files sealed in ``blob`` (name → bytes).

    Raises:
        ConfigError: the passphrase is wrong (or the sealed file was altered).
        InvalidRequest: ``blob`` is not a sealed-keys file.
    """
    try:
        data: dict[str, Any] = json.loads(blob)
        if data.get("format") != SEALED_FORMAT or data.get("cipher") != "aes-256-gcm":
            raise InvalidRequest("keys.sealed is not an llmeco sealed-keys file")
        kdf = data["kdf"]
        if kdf.get("name") != "scrypt":
            raise InvalidRequest(f"keys.sealed uses an unknown KDF {kdf.get('name')!r}")
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(data["nonce"])
        ciphertext = base64.b64decode(data["ciphertext"])
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidRequest(f"keys.sealed is malformed: {exc!r}") from None
    if not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise InvalidRequest("keys.sealed asks for scrypt parameters out of range")
    try:
        plain = AESGCM(_derive(passphrase, salt, n, r, p)).decrypt(nonce, ciphertext, _AAD)
    except InvalidTag:
        raise ConfigError(
            "wrong passphrase for the backup's sealed keys (or keys.sealed was altered): "
            "nothing was restored from it"
        ) from None
    files = json.loads(plain)["files"]
    return {str(safe_relpath(name)): base64.b64decode(value) for name, value in files.items()}


def write_key_files(keys_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` into ``keys_dir`` (0700) as 0600 files, replacing any of the same name."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, stat.S_IRWXU)
    written = []
    for name, data in files.items():
        path = keys_dir / name
        tmp = keys_dir / f".{name}.restore-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        written.append(path)
    return written
