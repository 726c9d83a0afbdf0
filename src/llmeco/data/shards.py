"""Shard files: JSON lines, plain or zstd-compressed, read and written as streams.

Output shards are ``.jsonl.zst`` written with one fixed compression level and no worker
threads, so the same records always give the same bytes (the single-process and Ray runs
are compared by their shards' sha256).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import zstandard

ZSTD_LEVEL = 3


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Objects of a ``.jsonl`` or ``.jsonl.zst`` file, one line at a time."""
    with path.open("rb") as raw:
        if path.name.endswith(".zst"):
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            text: io.TextIOBase = io.TextIOWrapper(reader, encoding="utf-8")
        else:
            text = io.TextIOWrapper(raw, encoding="utf-8")
        for line in text:
            if line.strip():
                yield json.loads(line)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` to ``path`` (zstd when it ends in ``.zst``) through a temporary file
    renamed into place; return how many were written."""
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("wb") as raw:
        if path.name.endswith(".zst"):
            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
            with compressor.stream_writer(raw, closefd=False) as out:
                for row in rows:
                    out.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
                    count += 1
        else:
            for row in rows:
                raw.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
                count += 1
    os.replace(tmp, path)
    return count


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it does not exist or is unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def digest(*parts: str) -> str:
    """sha256 hex of ``parts`` joined (a stage's input key)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
