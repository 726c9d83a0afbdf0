"""The content-addressed artifact store: every registered file, once, named by its sha256.

Layout under ``LLMECO_HOME/artifacts``::

    sha256/ab/abcdef…   a blob (read-only), its name the SHA-256 of its bytes
    tmp/                files being copied in (renamed into place when complete)

A version's files are a manifest of ``(relative path, sha256, size)`` in the store; a loadable
directory is materialised under ``LLMECO_HOME/registry/NAME/VERSION`` as symlinks to the
blobs (:meth:`ArtifactStore.link_view`). Relative paths are checked lexically (no absolute
paths, no ``..``, no backslashes or NULs) both when a directory is registered and when a view
is built from a manifest read from the store, so a tampered manifest cannot write or link
outside the view (the path-traversal class of MLflow CVE-2023-6977).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from llmeco.errors import NotFound, UnsafeFile

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20

#: Called with the number of bytes just read, for progress bars.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: where it sits in the model directory and which blob holds it."""

    path: str
    sha256: str
    size: int


def safe_relpath(value: str) -> PurePosixPath:
    """``value`` as a relative POSIX path that stays inside whatever directory it is joined to.

    Raises:
        UnsafeFile: empty, absolute, with ``..``/``.`` parts, a backslash, a NUL or a drive.
    """
    path = PurePosixPath(value)
    bad = (
        not value
        or "\\" in value
        or "\0" in value
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in value.split("/"))
        or ":" in path.parts[0]
    )
    if bad:
        raise UnsafeFile(f"refusing artifact path {value!r}: it must stay inside its directory")
    return path


def file_sha256(path: Path, progress: Progress | None = None) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


class ArtifactStore:
    """Blobs under ``root/sha256``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob_path(self, digest: str) -> Path:
        """Where the blob with this hex SHA-256 lives (whether or not it exists).

        Raises:
            UnsafeFile: ``digest`` is not 64 lowercase hex characters.
        """
        if not _DIGEST.match(digest):
            raise UnsafeFile(f"refusing artifact id {digest!r}: not a sha256 hex digest")
        return self.root / "sha256" / digest[:2] / digest

    def put(self, source: Path, progress: Progress | None = None) -> FileEntry:
        """Copy ``source`` into the store (hashing while copying) and return its entry.

        An existing blob with the same digest is kept when it is intact and replaced when it
        is not, so registering again heals a damaged store.
        """
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / uuid.uuid4().hex
        digest = hashlib.sha256()
        size = 0
        try:
            with source.open("rb") as src, tmp.open("wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                dst.flush()
                os.fsync(dst.fileno())
            hexdigest = digest.hexdigest()
            blob = self.blob_path(hexdigest)
            if blob.is_file() and file_sha256(blob) == hexdigest:
                tmp.unlink()
            else:
                blob.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                if blob.exists():
                    os.chmod(blob, 0o644)
                os.replace(tmp, blob)
        finally:
            if tmp.exists():
                tmp.unlink()
        return FileEntry("", hexdigest, size)

    def verify(self, entry: FileEntry, label: str, progress: Progress | None = None) -> None:
        """Check that the blob of ``entry`` exists with the right size and SHA-256.

        ``label`` names the file in the error (e.g. ``support:3/model.safetensors``).

        Raises:
            NotFound: the blob is missing.
            UnsafeFile: its bytes do not hash to the recorded SHA-256.
        """
        blob = self.blob_path(entry.sha256)
        if not blob.is_file():
            raise NotFound(f"artifact of {label} is missing from the store ({blob})")
        actual = file_sha256(blob, progress)
        if actual != entry.sha256:
            raise UnsafeFile(
                f"refusing to load {label}: its sha256 is {actual} but the registry recorded "
                f"{entry.sha256} (blob {blob}); the file was modified or corrupted. Register "
                "the model again from a good copy."
            )

    def link_view(self, view: Path, files: Iterable[FileEntry]) -> Path:
        """Make ``view`` a directory of symlinks ``path → blob`` for ``files``; return it.

        An existing view whose links are all right is kept; otherwise it is rebuilt in a
        temporary directory and swapped in, so a concurrent loader never sees half a view.
        """
        entries = list(files)
        wanted = {str(safe_relpath(e.path)): self.blob_path(e.sha256) for e in entries}
        if view.is_dir() and _view_matches(view, wanted):
            return view
        view.parent.mkdir(parents=True, exist_ok=True)
        tmp = view.parent / f".tmp-{view.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for rel, blob in wanted.items():
                link = tmp / rel
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(blob.resolve())
            old = view.parent / f".old-{view.name}-{uuid.uuid4().hex[:8]}"
            if view.exists() or view.is_symlink():
                os.replace(view, old)
            os.replace(tmp, view)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return view


def _view_matches(view: Path, wanted: dict[str, Path]) -> bool:
    """True when ``view`` holds exactly the wanted symlinks, each pointing at its blob."""
    found: set[str] = set()
    for dirpath, _dirs, names in os.walk(view):
        for name in names:
            link = Path(dirpath) / name
            rel = link.relative_to(view).as_posix()
            blob = wanted.get(rel)
            if blob is None or not link.is_symlink():
                return False
            if Path(os.readlink(link)) != blob.resolve():
                return False
            found.add(rel)
    return found == set(wanted)
