"""Evaluation suites: a YAML file listing tasks over JSONL data.

::

    name: shipped                      # letters, digits, '.', '_' or '-'
    description: Lumen Cycles held-out sets
    tasks:
      - name: handbook_ppl
        type: perplexity               # see llmeco.evaluation.tasks for each type's fields
        data: ppl.jsonl                # relative to this file
      - name: bikes_mc
        type: multiple_choice
        data: mc.jsonl

Each task's ``type`` selects its config class from :func:`llmeco.evaluation.tasks.task_types`
(built-ins: ``perplexity``, ``multiple_choice``, ``classification``, ``generation``,
``retrieval``, registered through the plugin hook ``register_eval_tasks`` like a plugin's). Unknown
fields are errors, so a typo never silently changes what is measured. The suite's ``sha256``
covers the YAML and every data file, so two runs with the same hash measured the same thing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from llmeco.errors import ConfigError
from llmeco.evaluation.builtin_tasks import register_builtin_retrievers
from llmeco.evaluation.context import RETRIEVERS
from llmeco.evaluation.tasks import NAME_CHARS, TaskConfig, task_types

# Every suite may name ``kb:`` retrievers; a plugin that registered one keeps its own.
register_builtin_retrievers(RETRIEVERS)


@dataclass(frozen=True)
class Suite:
    """A loaded suite: its tasks with data paths made absolute, and a content hash."""

    name: str
    description: str
    path: Path
    sha256: str
    tasks: tuple[TaskConfig, ...]

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for results files."""
        return {
            "name": self.name,
            "description": self.description,
            "path": str(self.path),
            "sha256": self.sha256,
        }


def load_suite(path: Path, types: dict[str, type[TaskConfig]] | None = None) -> Suite:
    """Read and validate a suite file.

    Raises:
        NotFound-like ConfigError: the file or a data file is missing; ConfigError: bad YAML,
            an unknown task type or field, duplicate task names (the message names the task).
    """
    registry = types if types is not None else {k: v.config for k, v in task_types().items()}
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist")
    raw_bytes = path.read_bytes()
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list) or not raw["tasks"]:
        raise ConfigError(f"{path}: a suite needs 'name' and a non-empty 'tasks' list")
    name = str(raw.get("name") or path.stem)
    if not set(name) <= NAME_CHARS | {"."}:
        raise ConfigError(
            f"{path}: suite name {name!r} may only use letters, digits, '.', '_', '-'"
        )
    unknown = set(raw) - {"name", "description", "tasks"}
    if unknown:
        raise ConfigError(f"{path}: unknown suite field(s) {', '.join(sorted(unknown))}")
    tasks: list[TaskConfig] = []
    digest = hashlib.sha256(raw_bytes)
    for index, item in enumerate(raw["tasks"]):
        task = _task(path, index, item, registry)
        if any(t.name == task.name for t in tasks):
            raise ConfigError(f"{path}: two tasks are named {task.name!r}")
        task._base = path.parent.resolve()
        task.data = (path.parent / task.data).resolve()
        if not task.data.is_file():
            raise ConfigError(f"{path}: task {task.name!r}: data file {task.data} does not exist")
        digest.update(task.data.read_bytes())
        tasks.append(task)
    return Suite(
        name, str(raw.get("description", "")), path.resolve(), digest.hexdigest(), tuple(tasks)
    )


def _task(path: Path, index: int, item: Any, types: dict[str, type[TaskConfig]]) -> TaskConfig:
    label = f"{path}: task {index + 1}"
    if not isinstance(item, dict):
        raise ConfigError(f"{label} must be a mapping")
    kind = item.get("type")
    if kind not in types:
        raise ConfigError(f"{label}: unknown type {kind!r} (known: {', '.join(sorted(types))})")
    try:
        return types[kind].model_validate(item)
    except ValidationError as exc:
        where = item.get("name", index + 1)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'task'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: task {where!r}: {problems}") from None
