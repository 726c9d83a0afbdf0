"""Durable file operations shared by everything that writes outside the database (audit
archives, backups): a rename is only durable once its directory entry is on disk."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Flush ``path``'s directory entries (after creating or renaming a file in it) so the
    new name survives a power cut, not only the file's bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
