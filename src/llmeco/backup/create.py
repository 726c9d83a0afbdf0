"""Taking a backup of a home while the server runs (``llmeco backup create``).

Order matters for consistency: the store is snapshotted first (one point in time, see
:mod:`~llmeco.backup.snapshot`), then the files of the home are copied. The registry writes
a blob before the row that references it commits, and blobs never change (their name is
their SHA-256), so every blob the snapshot references is already there when the copy runs;
a blob registered after the snapshot is copied too and is simply unreferenced after a
restore. Each blob is re-hashed while copied and a blob whose bytes do not match its name
is refused, so a backup never carries a damaged artifact.

What is in it: the store (SQLite file or PostgreSQL dump: the ledger, API keys, the
registry's versions and aliases, knowledge bases with their chunks and embeddings, support
conversations and feedback); every file under the home except those below; with
``include_keys`` the key files of ``home/keys``, sealed with a passphrase.

What is not: ``models/`` (the converted-model cache, rebuilt from the packaged model or the
source on first use), ``registry/`` (symlink views of versions, rebuilt on checkout),
``artifacts/tmp/`` (copies in progress), the live store files (``llmeco.db`` and its
``-wal``/``-shm``, covered by the snapshot), backups kept inside the home and, without
``include_keys``, ``keys/``. Keys
given through ``LLMECO_ENCRYPTION_KEYS``, ``LLMECO_AUDIT_SIGNING_KEY`` or
``LLMECO_SECRET_KEY`` are never in a backup: they are not in the home.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from llmeco import __version__
from llmeco.backup.keys import key_files, seal
from llmeco.backup.manifest import (
    MANIFEST,
    ByteProgress,
    FileRecord,
    Manifest,
    copy_hashed,
    walk_files,
)
from llmeco.backup.snapshot import snapshot_postgres, snapshot_sqlite
from llmeco.errors import ConfigError, UnsafeFile
from llmeco.registry.artifacts import file_sha256
from llmeco.settings import Settings
from llmeco.store.db import database_url
from llmeco.store.files import fsync_dir

#: Called when a stage starts, with its name and how many bytes it will go through (or None).
StageHook = Callable[[str, int | None], None]

NOT_INCLUDED = [
    "models/: the converted-model cache, rebuilt on first use",
    "registry/: symlink views of registered versions, rebuilt on checkout",
    "artifacts/tmp/: copies in progress",
    "backups kept inside the home (backups never nest)",
]
KEYS_FILE = "keys.sealed"
_STORE_FILES = {"llmeco.db", "llmeco.db-wal", "llmeco.db-shm", "llmeco.db-journal"}
_SKIP_DIRS = {"models", "registry", "keys"}
_PARTIAL = re.compile(r"^\..+\.partial-[0-9a-f]{8}$")


@dataclass
class BackupResult:
    """A finished backup: where it is, its manifest, how long it took, what to warn about."""

    path: Path
    manifest: Manifest
    seconds: float
    warnings: list[str] = field(default_factory=list)


def _is_backup(manifest: Path) -> bool:
    """Whether ``manifest`` is the manifest of an llmeco backup (by its first bytes)."""
    try:
        with manifest.open("rb") as f:
            head = f.read(200)
    except OSError:
        return False
    return b'"format": "llmeco-backup"' in head


def home_files(home: Path, exclude: list[Path]) -> list[str]:
    """Files of ``home`` a backup copies (relative POSIX paths); see the module docstring.

    Backups kept inside the home (and half-written ones) are skipped, so backups never nest.
    """
    skip = [p.resolve() for p in exclude]
    rels = list(walk_files(home)) if home.is_dir() else []
    backups = [
        PurePosixPath(rel).parent
        for rel in rels
        if PurePosixPath(rel).name == MANIFEST and _is_backup(home / rel)
    ]
    found = []
    for rel in rels:
        path = PurePosixPath(rel)
        parts = path.parts
        if len(parts) == 1 and parts[0] in _STORE_FILES:
            continue
        if parts[0] in _SKIP_DIRS or parts[:2] == ("artifacts", "tmp"):
            continue
        if any(_PARTIAL.match(part) for part in parts[:-1]):
            continue
        if any(b != PurePosixPath(".") and path.is_relative_to(b) for b in backups):
            continue
        full = (home / rel).resolve()
        if any(full.is_relative_to(s) for s in skip):
            continue
        found.append(rel)
    return found


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _check_blob(rel: str, record: FileRecord) -> None:
    """A blob under ``artifacts/sha256`` must hash to its own name."""
    parts = PurePosixPath(rel).parts
    if parts[:2] == ("artifacts", "sha256") and parts[-1] != record.sha256:
        raise UnsafeFile(
            f"artifact {rel} is damaged (its bytes hash to {record.sha256}), so it is not "
            "backed up: register that model again from a good copy, then back up"
        )


def _key_warnings(settings: Settings, include_keys: bool) -> list[str]:
    warnings = []
    from_env = [
        name
        for name, value in (
            ("LLMECO_ENCRYPTION_KEYS", settings.encryption_keys),
            ("LLMECO_AUDIT_SIGNING_KEY", settings.audit_signing_key),
            ("LLMECO_SECRET_KEY", settings.secret_key),
        )
        if value.get_secret_value().strip()
    ]
    if from_env:
        warnings.append(
            f"{', '.join(from_env)} come from the environment, not the home: they are not in "
            "this backup; the restored home needs the same values"
        )
    if not include_keys:
        warnings.append(
            "keys are NOT in this backup (no --include-keys): the restore needs the same "
            f"key files ({settings.home / 'keys'}: encryption.key, audit-signing.key, "
            "api-key-secret); without them encrypted columns cannot be read, checkpoints are "
            "signed under another key and existing API keys stop working"
        )
    return warnings


def _prepare_out(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty directory; pick a new path")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def create_backup(
    settings: Settings,
    out: Path,
    *,
    include_keys: bool = False,
    passphrase: str | None = None,
    on_stage: StageHook | None = None,
    progress: ByteProgress | None = None,
) -> BackupResult:
    """Back up the home and store ``settings`` name into the new directory ``out``.

    Safe while a server writes to the same home. The backup is built in a hidden directory
    next to ``out`` and renamed to ``out`` when complete; on any error it is removed.

    Raises:
        ConfigError: ``out`` exists and is not empty; keys asked for without a passphrase.
        NotFound: there is no store to back up.
        UnsafeFile: a blob of the artifact store is damaged.
        ServiceUnavailable: the PostgreSQL store cannot be dumped.
    """
    if include_keys and not passphrase:
        raise ConfigError("--include-keys needs a passphrase (--passphrase-env VAR)")
    started = time.monotonic()
    out = out.absolute()
    tmp = _prepare_out(out)
    stage = on_stage or (lambda _name, _total: None)
    try:
        url = database_url(settings)
        stage("store snapshot", None)
        if url.startswith("sqlite"):
            facts = snapshot_sqlite(url, tmp / "store" / "llmeco.db")
        else:
            facts = snapshot_postgres(url, tmp / "store" / "llmeco.pgdump")
        store_file = tmp / facts.file
        records = [FileRecord(facts.file, store_file.stat().st_size, "")]

        home = settings.home
        rels = home_files(home, [out, tmp])
        stage("home files", sum(_size(home / r) for r in rels))
        for rel in rels:
            try:
                record = copy_hashed(home / rel, tmp / "home" / rel, progress)
            except FileNotFoundError:  # removed while we walked (e.g. an eval run's scratch)
                continue
            _check_blob(rel, record)
            records.append(FileRecord(f"home/{rel}", record.size, record.sha256))

        keys: dict[str, object] = {"included": False, "file": None, "names": []}
        if include_keys:
            assert passphrase is not None
            files = key_files(home / "keys")
            (tmp / KEYS_FILE).write_bytes(seal(files, passphrase))
            keys = {"included": True, "file": KEYS_FILE, "names": sorted(files)}
            records.append(FileRecord(KEYS_FILE, 0, ""))

        stage("hashing store", store_file.stat().st_size)
        final = []
        for r in records:
            if r.sha256:
                final.append(r)
            else:
                path = tmp / r.path
                prog = progress if r.path == facts.file else None
                final.append(FileRecord(r.path, path.stat().st_size, file_sha256(path, prog)))

        manifest = Manifest(
            llmeco_version=__version__,
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            store=facts.store_dict(),
            ledger=facts.ledger,
            keys=keys,
            not_included=NOT_INCLUDED + ([] if include_keys else ["keys/: no --include-keys"]),
            files=final,
        )
        manifest.write(tmp)
        fsync_dir(tmp)
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    warnings = _key_warnings(settings, include_keys)
    if include_keys and not keys["names"]:
        warnings.append(f"--include-keys: {home / 'keys'} holds no key files; none were sealed")
    return BackupResult(out, manifest, time.monotonic() - started, warnings)
