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

Each task's ``type`` selects its config class from :data:`llmeco.evaluation.tasks.TASK_TYPES`
(built-ins: ``perplexity``, ``multiple_choice``, ``classification``, ``generation``,
``retrieval``; plugins may register more). Unknown fields are errors, so a typo never silently
changes what is measured. The suite's ``sha256`` covers the YAML and every data file, so two
runs with the same hash measured the same thing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from llmeco.errors import ConfigError

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class TaskConfig(BaseModel):
    """Fields every task has; each task type subclasses it with its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Task name; metrics are reported as NAME.METRIC.")
    type: str = Field(description="Task type (perplexity, multiple_choice, …).")
    data: Path = Field(description="JSONL file, relative to the suite file.")
    limit: int | None = Field(default=None, ge=1, description="Use only the first N records.")
    description: str = Field(default="", description="What the task measures, for the report.")

    #: Directory of the suite file; relative paths in the task are relative to it.
    _base: Path = PrivateAttr(default_factory=Path.cwd)

    def relative(self, value: str) -> Path:
        """``value`` as a path relative to the suite file's directory."""
        return self._base / value

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or not set(value) <= _NAME_CHARS:
            raise ValueError(
                f"task name {value!r} may only use letters, digits, '_' and '-' "
                "(metrics are named TASK.METRIC)"
            )
        return value


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
    from llmeco.evaluation.tasks import TASK_TYPES

    registry = types if types is not None else {k: v.config for k, v in TASK_TYPES.items()}
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
    if not set(name) <= _NAME_CHARS | {"."}:
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


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (blank lines skipped), at most ``limit``.

    Raises:
        ConfigError: a line is not a JSON object (the message names file and line).
    """
    out: list[dict[str, Any]] = []
    for number, line in _lines(path):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{path}:{number}: each line must be a JSON object")
        out.append(value)
        if limit is not None and len(out) >= limit:
            break
    return out


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line


def field(record: dict[str, Any], key: str, path: Path, index: int) -> Any:
    """``record[key]``, or a ConfigError naming the file, the record and the missing field."""
    if key not in record:
        raise ConfigError(f"{path}: record {index + 1} has no {key!r} field")
    return record[key]
