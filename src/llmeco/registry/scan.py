"""Reading a model directory to register: which files go in, and which are refused."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmeco.errors import ConfigError, NotFound, UnsafeFile
from llmeco.registry import model_files
from llmeco.registry.artifacts import safe_relpath

#: Directories of a training output that are not part of the model (resume state, logs).
EXCLUDED_DIRS = frozenset({"checkpoints", "tensorboard", "__pycache__", ".git"})
#: The lineage record a training run writes next to its model.
TRAINING_RECORD = "training.json"


@dataclass
class Scan:
    """Files found in a directory to register."""

    files: list[tuple[str, Path]] = field(default_factory=list)
    total: int = 0


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when absent.

    Raises:
        ConfigError: the file is not a JSON object.
    """
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return value


def scan_model_dir(directory: Path) -> Scan:
    """Files to register from a model directory (see :meth:`Registry.register`)."""
    if not directory.is_dir():
        raise NotFound(f"{directory} is not a directory")
    if not (directory / "config.json").is_file():
        raise ConfigError(f"{directory} has no config.json: register a whole model directory")
    model_files.require_safetensors(directory)
    if not model_files.has_tokenizer(directory):
        raise ConfigError(f"{directory} has no tokenizer files; save the tokenizer there first")
    root = directory.resolve()
    scan = Scan()
    for path in sorted(_walk(directory)):
        rel = path.relative_to(directory).as_posix()
        safe_relpath(rel)
        if model_files.is_pickle_path(path):
            raise model_files.refuse_pickle(path)
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise UnsafeFile(f"refusing to register {path}: it links outside {directory}")
        scan.files.append((rel, path))
        scan.total += path.stat().st_size
    return scan


def _walk(directory: Path) -> Iterator[Path]:
    """Regular files (and links to them) under ``directory``, skipping :data:`EXCLUDED_DIRS`."""
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file():
                yield path
