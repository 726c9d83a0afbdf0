"""The backup manifest, hashing while copying, and checking a backup against its manifest.

``manifest.json`` lists every other file of the backup with its size and SHA-256. A backup
is good when the files on disk are exactly those: none missing, none extra, none whose bytes
hash differently. :func:`verify_backup` checks that and refuses a backup naming every file
that fails. The manifest does not hash itself; it guards against damage (a bad disk, a cut
copy), not against someone who rewrites the manifest too — keep a copy of its SHA-256
elsewhere if that matters.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmeco.errors import InvalidRequest, NotFound, UnsafeFile
from llmeco.registry.artifacts import file_sha256, safe_relpath

MANIFEST = "manifest.json"
FORMAT = "llmeco-backup"
FORMAT_VERSION = 1
_CHUNK = 1 << 20

#: Called with the number of bytes just read or written, for progress bars.
ByteProgress = Callable[[int], None]


@dataclass(frozen=True)
class FileRecord:
    """One file of a backup: its path inside the backup, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass
class Manifest:
    """What a backup holds and the state of the project it was taken from."""

    llmeco_version: str
    created_at: str
    store: dict[str, Any]
    ledger: dict[str, Any]
    keys: dict[str, Any]
    not_included: list[str]
    files: list[FileRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json``."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **asdict(self),
            "files": [asdict(f) for f in sorted(self.files, key=lambda f: f.path)],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Parse a manifest; ``InvalidRequest`` if it is not an llmeco backup manifest.

        Every file path is checked to stay inside the backup (no ``..``, no absolute path),
        so a tampered manifest cannot make a restore read or write elsewhere.
        """
        try:
            if data.get("format") != FORMAT:
                raise InvalidRequest(f"{MANIFEST} is not an {FORMAT} manifest")
            if int(data["format_version"]) > FORMAT_VERSION:
                raise InvalidRequest(
                    f"backup format {data['format_version']} is newer than this llmeco "
                    f"understands ({FORMAT_VERSION}); restore it with a newer llmeco"
                )
            files = [
                FileRecord(str(safe_relpath(str(f["path"]))), int(f["size"]), str(f["sha256"]))
                for f in data["files"]
            ]
            return cls(
                llmeco_version=str(data["llmeco_version"]),
                created_at=str(data["created_at"]),
                store=dict(data["store"]),
                ledger=dict(data["ledger"]),
                keys=dict(data["keys"]),
                not_included=[str(x) for x in data["not_included"]],
                files=files,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidRequest(f"malformed backup manifest: {exc!r}") from None

    def write(self, directory: Path) -> Path:
        """Write ``directory/manifest.json`` (fsynced) and return its path."""
        path = directory / MANIFEST
        with path.open("w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """The manifest of the backup in ``directory``.

        Raises:
            NotFound: no such backup, or it has no manifest.
            InvalidRequest: the manifest is not valid JSON or not an llmeco manifest.
        """
        if not directory.is_dir():
            raise NotFound(f"no backup at {directory} (expected a directory)")
        path = directory / MANIFEST
        if not path.is_file():
            raise NotFound(f"{directory} is not an llmeco backup: {MANIFEST} is missing")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"{path} is corrupted (not JSON: {exc})") from None
        return cls.from_dict(data)

    @property
    def total_bytes(self) -> int:
        """Bytes of all listed files together."""
        return sum(f.size for f in self.files)


def copy_hashed(source: Path, dest: Path, progress: ByteProgress | None = None) -> FileRecord:
    """Copy ``source`` to ``dest`` (fsynced), hashing the bytes as they are written.

    The record's path is left empty; the caller names the file inside the backup.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as src, dest.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
        dst.flush()
        os.fsync(dst.fileno())
    return FileRecord("", size, digest.hexdigest())


def walk_files(root: Path) -> Iterator[str]:
    """Relative POSIX paths of the regular files under ``root`` (symlinks not followed)."""
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(root).as_posix()


def verify_backup(directory: Path, progress: ByteProgress | None = None) -> Manifest:
    """Re-hash every file of the backup against its manifest; return the manifest if all match.

    Raises:
        NotFound: ``directory`` is not a backup (no manifest).
        InvalidRequest: the manifest is corrupted.
        UnsafeFile: a listed file is missing or has other bytes, or a file is there that the
            manifest does not list; the message names every such file.
    """
    manifest = Manifest.read(directory)
    listed = {f.path: f for f in manifest.files}
    on_disk = set(walk_files(directory)) - {MANIFEST}
    missing = sorted(set(listed) - on_disk)
    extra = sorted(on_disk - set(listed))
    corrupted: list[str] = []
    for rel in sorted(set(listed) & on_disk):
        record = listed[rel]
        path = directory / rel
        if path.stat().st_size != record.size:
            corrupted.append(f"{rel} (size {path.stat().st_size}, manifest says {record.size})")
            if progress is not None:
                progress(record.size)
            continue
        actual = file_sha256(path, progress)
        if actual != record.sha256:
            corrupted.append(f"{rel} (sha256 {actual[:12]}…, manifest says {record.sha256[:12]}…)")
    problems = [
        *(f"missing: {p}" for p in missing),
        *(f"corrupted: {p}" for p in corrupted),
        *(f"not in the manifest: {p}" for p in extra),
    ]
    if problems:
        shown = "; ".join(problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise UnsafeFile(f"backup {directory} is damaged, refusing it: {shown}{more}")
    return manifest
