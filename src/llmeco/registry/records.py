"""What the registry hands out: versions, models, alias moves and attached eval runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from llmeco.registry.artifacts import FileEntry


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were written as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Version:
    """One immutable version of a registered model."""

    name: str
    version: int
    created_at: datetime
    created_by: str
    source: str
    description: str
    lineage: dict[str, Any] | None
    config: dict[str, Any] | None
    files: tuple[FileEntry, ...]
    total_bytes: int
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """``NAME:VERSION``, the reference that always means exactly this version."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class RegisteredModel:
    """A model name with its latest version number and where its aliases point."""

    name: str
    latest_version: int
    created_at: datetime
    aliases: dict[str, int]
    alias_epoch: int


@dataclass(frozen=True)
class AliasEvent:
    """One alias move: ``from_version`` → ``to_version`` (None: the alias did not exist)."""

    id: int
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: str
    actor: str
    at: datetime
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (also what goes into the audit ledger)."""
        return {
            "model": self.name,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "action": self.action,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "note": self.note,
        }


@dataclass(frozen=True)
class EvalRecord:
    """An evaluation run attached to a version; ``metrics`` are flat ``task.metric`` → value."""

    name: str
    version: int
    run_id: str
    suite: str
    suite_sha256: str
    metrics: dict[str, float]
    path: str
    created_at: datetime
