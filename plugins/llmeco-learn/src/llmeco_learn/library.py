"""The content library: a folder of lessons and exercises, each a Markdown file.

Each file starts with a small front matter (``key: value`` lines between ``---`` lines) with
``id``, ``title``, ``topic``, ``difficulty`` (1–3) and ``kind`` (lesson or exercise); the rest
is the item's text. Items are embedded with the server's embedder (the packaged MiniLM) once
per library and kept in memory: the library is small (tens to a few thousand items), every
recommendation scores all of it, and the vectors are rebuilt from the files in well under a
second, so there is nothing to keep in sync on disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from llmeco.errors import ConfigError

#: Difficulty levels, easiest first.
LEVELS = (1, 2, 3)
KINDS = ("lesson", "exercise")


class TextEmbedder(Protocol):
    """What the library needs from an embedder: unit-length vectors for texts."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length row per text."""
        ...


@dataclass(frozen=True)
class Item:
    """One lesson or exercise."""

    id: str
    title: str
    topic: str
    difficulty: int
    kind: str
    text: str

    @property
    def document(self) -> str:
        """What is embedded: title, topic and text."""
        return f"{self.title}. Topic: {self.topic.replace('-', ' ')}. {self.text}"


def default_library_dir() -> Path:
    """``LLMECO_LEARN_LIBRARY`` if set, else the library shipped with this package."""
    env = os.environ.get("LLMECO_LEARN_LIBRARY")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "data" / "library"


def parse_item(path: Path) -> Item:
    """Read one item file; ``ConfigError`` naming the file when it is malformed."""
    raw = path.read_text(encoding="utf-8")
    parts = raw.split("---\n", 2)
    if len(parts) != 3 or parts[0].strip():
        raise ConfigError(f"{path}: an item starts with a '---' front matter block")
    meta: dict[str, str] = {}
    for line in parts[1].splitlines():
        if line.strip():
            key, sep, value = line.partition(":")
            if not sep:
                raise ConfigError(f"{path}: front matter line {line!r} is not 'key: value'")
            meta[key.strip()] = value.strip()
    missing = [k for k in ("title", "topic", "difficulty", "kind") if not meta.get(k)]
    if missing:
        raise ConfigError(f"{path}: front matter lacks {', '.join(missing)}")
    try:
        difficulty = int(meta["difficulty"])
    except ValueError:
        difficulty = 0
    if difficulty not in LEVELS:
        raise ConfigError(f"{path}: difficulty must be one of {LEVELS}, not {meta['difficulty']}")
    if meta["kind"] not in KINDS:
        raise ConfigError(f"{path}: kind must be one of {KINDS}, not {meta['kind']}")
    text = parts[2].strip()
    if not text:
        raise ConfigError(f"{path}: the item has no text")
    return Item(
        id=meta.get("id") or path.stem,
        title=meta["title"],
        topic=meta["topic"],
        difficulty=difficulty,
        kind=meta["kind"],
        text=text,
    )


class Library:
    """The items of one folder with their embeddings (rows of :attr:`vectors`)."""

    def __init__(self, items: Sequence[Item], vectors: np.ndarray) -> None:
        if len(items) != len(vectors):
            raise ValueError("one vector per item")
        self.items = list(items)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.by_id = {item.id: i for i, item in enumerate(self.items)}
        self.topics = sorted({item.topic for item in self.items})

    @classmethod
    def load(cls, folder: Path, embedder: TextEmbedder) -> Library:
        """Read every ``*.md`` item under ``folder`` and embed it."""
        if not folder.is_dir():
            raise ConfigError(f"the learning library {folder} is not a folder")
        items = [parse_item(p) for p in sorted(folder.glob("*.md"))]
        if not items:
            raise ConfigError(f"the learning library {folder} has no *.md items")
        ids = [item.id for item in items]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError(f"the learning library {folder} repeats item ids {dupes}")
        return cls(items, embedder.embed([item.document for item in items]))

    def item(self, item_id: str) -> Item | None:
        """The item with ``item_id``, or None."""
        index = self.by_id.get(item_id)
        return None if index is None else self.items[index]

    def vector(self, item_id: str) -> np.ndarray:
        """The embedding of ``item_id`` (which must exist)."""
        row: np.ndarray = self.vectors[self.by_id[item_id]]
        return row
