"""Fake model directories for the registry's tests (the registry never parses weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def make_model_dir(
    path: Path, weights: bytes = b"weights-v1", config: dict[str, Any] | None = None, **extra: str
) -> Path:
    """A directory that passes the registry's checks: config.json, weights, a tokenizer."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(
        json.dumps(config or {"model_type": "llama", "hidden_size": 64})
    )
    (path / "model.safetensors").write_bytes(weights)
    (path / "tokenizer.json").write_text('{"version": "1.0"}')
    for name, text in extra.items():
        (path / name).write_text(text)
    return path


def eval_results(
    suite: str, metrics: dict[str, dict[str, float]], run_id: str = "r"
) -> dict[str, Any]:
    """A minimal results.json of an eval run."""
    return {
        "run_id": run_id,
        "suite": {"name": suite, "sha256": "0" * 64},
        "tasks": {task: {"metrics": m} for task, m in metrics.items()},
    }
