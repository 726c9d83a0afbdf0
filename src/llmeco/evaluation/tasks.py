"""The task interface and the table of task types (no task type is defined here).

A task type is a config class (a :class:`TaskConfig` subclass: the fields a suite may set)
and an ``async run(config, ctx) -> TaskResult`` (:mod:`.context`). The built-in types live in
:mod:`.builtin_tasks` and are registered by :mod:`.plugin` through the plugin hook
``register_eval_tasks``; a plugin adds a type the same way::

    class MyTask(TaskConfig):
        type: Literal["my_task"]
        threshold: float = 0.5

    async def run_my_task(config: MyTask, ctx: EvalContext) -> TaskResult: ...

    @hookimpl
    def register_eval_tasks() -> list[EvalTaskSpec]:
        return [EvalTaskSpec("my_task", MyTask, run_my_task)]

:func:`register_task` adds one to this process only (scripts, tests).

Tasks read their ``data`` with :func:`read_jsonl` and :func:`field`, whose errors name the
file, the record and the missing field. What a plugin needs from :mod:`.context`
(:class:`EvalContext`, :class:`TaskResult`, :func:`register_retriever` …) is importable from
here too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from llmeco.errors import ConfigError
from llmeco.evaluation.context import (
    RETRIEVERS,
    EvalContext,
    ProgressFn,
    Retriever,
    RetrieverFactory,
    TaskResult,
    register_retriever,
)
from llmeco.plugins import get_registry

__all__ = [
    "NAME_CHARS",
    "RETRIEVERS",
    "TASK_TYPES",
    "EvalContext",
    "ProgressFn",
    "Retriever",
    "RetrieverFactory",
    "TaskConfig",
    "TaskResult",
    "TaskRunner",
    "TaskType",
    "field",
    "read_jsonl",
    "register_retriever",
    "register_task",
    "task_types",
]

#: Characters of a task name (metrics are reported as ``TASK.METRIC``); a suite name may
#: also use ``.``.
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


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
        if not value or not set(value) <= NAME_CHARS:
            raise ValueError(
                f"task name {value!r} may only use letters, digits, '_' and '-' "
                "(metrics are named TASK.METRIC)"
            )
        return value


TaskRunner = Callable[[Any, EvalContext], Awaitable[TaskResult]]


@dataclass(frozen=True)
class TaskType:
    """A registered task type: its config class and its runner."""

    config: type[TaskConfig]
    run: TaskRunner


#: Task types added in this process with :func:`register_task` (over the plugin registry's).
TASK_TYPES: dict[str, TaskType] = {}


def register_task(name: str, config: type[TaskConfig], run: TaskRunner) -> None:
    """Make task type ``name`` available to suites in this process (scripts, tests)."""
    TASK_TYPES[name] = TaskType(config, run)


def task_types() -> dict[str, TaskType]:
    """Every task type suites may name: the plugin registry's (built-ins included), then
    those :func:`register_task` added."""
    table = {
        name: TaskType(spec.config, spec.run) for name, spec in get_registry().eval_tasks().items()
    }
    table.update(TASK_TYPES)
    return table


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
