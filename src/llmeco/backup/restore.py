"""Restoring a backup into a home (``llmeco backup restore``).

Everything that can refuse does so before anything is written: the backup is re-hashed
against its manifest (a missing, extra or damaged file is named), its schema revisions must
be known to this llmeco, sealed keys must open with the passphrase, the home must be empty
(or ``force``), and a PostgreSQL target must exist and be empty (or ``force``). Then the
store is loaded (SQLite: ``HOME/llmeco.db``; PostgreSQL: ``pg_restore`` into the target),
the home files copied back (each re-hashed against the manifest while written), the keys
written 0600 into ``HOME/keys``, and the restored ledger's head is checked against the
manifest's. The home is usable at once: ``llmeco audit verify``, ``models verify`` and
``kb search`` work against it.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from llmeco.backup.create import KEYS_FILE, StageHook
from llmeco.backup.keys import unseal, write_key_files
from llmeco.backup.manifest import ByteProgress, Manifest, copy_hashed, verify_backup
from llmeco.backup.snapshot import (
    PG_FILE,
    SQLITE_FILE,
    check_revisions,
    load_postgres,
    load_sqlite,
    postgres_tables,
    read_ledger_head,
)
from llmeco.errors import ConfigError, UnsafeFile


@dataclass
class RestoreResult:
    """A finished restore: the home, the store URL it uses, the manifest, keys written."""

    home: Path
    database_url: str
    manifest: Manifest
    keys: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)


def _check_home(home: Path, force: bool) -> None:
    if home.exists() and not home.is_dir():
        raise ConfigError(f"{home} exists and is not a directory")
    if home.is_dir() and any(home.iterdir()) and not force:
        raise ConfigError(
            f"{home} is not empty; restore into a new home, or pass --force to overwrite "
            "its store, artifacts and keys"
        )


def _copy_home_files(
    backup: Path, manifest: Manifest, home: Path, progress: ByteProgress | None
) -> None:
    for record in manifest.files:
        if not record.path.startswith("home/"):
            continue
        rel = record.path.removeprefix("home/")
        target = home / rel
        tmp = target.with_name(f".{target.name}.restore-{uuid.uuid4().hex[:8]}")
        got = copy_hashed(backup / record.path, tmp, progress)
        if got.sha256 != record.sha256:
            tmp.unlink(missing_ok=True)
            raise UnsafeFile(f"{record.path} changed while it was restored; run the restore again")
        if rel.startswith("artifacts/sha256/"):
            os.chmod(tmp, 0o444)  # blobs are read-only, as the artifact store keeps them
            if target.exists():
                os.chmod(target, 0o644)
        os.replace(tmp, target)


def restore_backup(
    backup: Path,
    home: Path,
    *,
    force: bool = False,
    database_url: str | None = None,
    passphrase: str | None = None,
    on_stage: StageHook | None = None,
    progress: ByteProgress | None = None,
) -> RestoreResult:
    """Restore ``backup`` into ``home`` (and, for a PostgreSQL backup, the ``database_url``
    database); see the module docstring for what is checked first.

    Raises:
        UnsafeFile: the backup is damaged (the message names the files).
        ConfigError: non-empty home or target database without ``force``; an unknown schema;
            sealed keys without a passphrase or with a wrong one; a missing or a pointless
            ``database_url``.
        ServiceUnavailable: the target database cannot be reached or ``pg_restore`` fails.
    """
    started = time.monotonic()
    stage = on_stage or (lambda _name, _total: None)
    backup = backup.absolute()
    home = home.absolute()
    manifest = Manifest.read(backup)
    stage("verifying", manifest.total_bytes)
    manifest = verify_backup(backup, progress)
    check_revisions(list(manifest.store.get("schema_revisions", [])))
    kind = manifest.store.get("kind")

    keys: dict[str, bytes] = {}
    if manifest.keys.get("included"):
        if not passphrase:
            raise ConfigError(
                "this backup holds sealed keys: pass --passphrase-env VAR with the passphrase "
                "it was made with"
            )
        keys = unseal((backup / KEYS_FILE).read_bytes(), passphrase)

    _check_home(home, force)
    if kind == "sqlite":
        if database_url:
            raise ConfigError(
                "this is a SQLite backup: it restores into HOME/llmeco.db; --database-url is "
                "only for PostgreSQL backups"
            )
        url = f"sqlite:///{home / 'llmeco.db'}"
    elif kind == "postgresql":
        if not database_url:
            raise ConfigError(
                "this is a PostgreSQL backup: pass --database-url (or set LLMECO_DATABASE_URL) "
                "naming an existing, empty database to restore into"
            )
        url = database_url
        if postgres_tables(url) and not force:
            raise ConfigError(
                "the target database is not empty; restore into a new database, or pass "
                "--force to replace the objects the backup holds"
            )
    else:
        raise ConfigError(f"the backup's store kind {kind!r} is not one this llmeco restores")

    home.mkdir(parents=True, exist_ok=True)
    stage("store", None)
    if kind == "sqlite":
        load_sqlite(backup / SQLITE_FILE, home)
    else:
        load_postgres(backup / PG_FILE, url, clean=force)
    home_bytes = sum(f.size for f in manifest.files if f.path.startswith("home/"))
    stage("home files", home_bytes)
    _copy_home_files(backup, manifest, home, progress)
    if keys:
        write_key_files(home / "keys", keys)

    head = read_ledger_head(url)
    expected = int(manifest.ledger.get("head_seq") or 0)
    if head != expected:
        raise UnsafeFile(
            f"the restored ledger ends at entry {head} but the backup recorded {expected}"
        )
    warnings = []
    if not manifest.keys.get("included"):
        warnings.append(
            "the backup holds no keys: copy the original home's keys/ (encryption.key, "
            f"audit-signing.key, api-key-secret) into {home / 'keys'} (mode 0600) or set the "
            "same LLMECO_* keys, or encrypted data, checkpoints and API keys will not work"
        )
    return RestoreResult(home, url, manifest, sorted(keys), time.monotonic() - started, warnings)
