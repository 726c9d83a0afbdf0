"""What the registry hands out: versions, models, alias moves and attached eval runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from llmeco.errors import InvalidRequest
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


#: Which way a metric improves: ``"higher"`` (accuracy, F1 …) or ``"lower"`` (perplexity …).
Direction = Literal["higher", "lower"]

#: Metric names (the part after ``task.``) that improve downwards, for eval runs attached
#: without directions (every run attached before directions were stored, and callers that
#: pass none): the names the evaluation package reported as lower-is-better when those
#: runs were made. Every other metric without a stored direction improves upwards.
KNOWN_LOWER_IS_BETTER = frozenset(
    {"perplexity", "loss", "nll", "bits_per_byte", "byte_perplexity", "word_perplexity"}
)


def default_lower_is_better(metric: str) -> bool:
    """Whether ``metric`` (``task.metric`` or bare) improves downwards, judged by its name
    alone: the fallback for metrics whose eval run stored no direction."""
    return metric.rsplit(".", 1)[-1] in KNOWN_LOWER_IS_BETTER


@dataclass(frozen=True)
class EvalRecord:
    """An evaluation run attached to a version; ``metrics`` are flat ``task.metric`` → value.

    ``directions`` says which way each metric improves, as the evaluation reported it when
    the run was attached; runs attached without it leave it empty (see
    :meth:`lower_is_better`).
    """

    name: str
    version: int
    run_id: str
    suite: str
    suite_sha256: str
    metrics: dict[str, float]
    path: str
    created_at: datetime
    directions: dict[str, Direction] = field(default_factory=dict)

    def lower_is_better(self, metric: str) -> bool:
        """Whether a smaller value of ``metric`` is an improvement: the stored direction, or
        :func:`default_lower_is_better` when the run stored none for it."""
        return lower_is_better(metric, self)


def lower_is_better(metric: str, *records: EvalRecord | None) -> bool:
    """Whether a smaller value of ``metric`` is an improvement.

    The first of ``records`` that stored a direction for ``metric`` decides (pass the
    candidate's run first); with none, the metric's name decides
    (:func:`default_lower_is_better`), as it always did for runs attached without one.
    """
    for record in records:
        if record is not None and metric in record.directions:
            return record.directions[metric] == "lower"
    return default_lower_is_better(metric)


def check_directions(
    directions: Mapping[str, str], metrics: Mapping[str, float]
) -> dict[str, Direction]:
    """The directions of ``metrics`` out of ``directions`` (others are dropped), validated.

    Raises:
        InvalidRequest: a direction that is neither ``"higher"`` nor ``"lower"``.
    """
    out: dict[str, Direction] = {}
    for metric, direction in directions.items():
        if metric not in metrics:
            continue
        if direction == "higher":
            out[metric] = "higher"
        elif direction == "lower":
            out[metric] = "lower"
        else:
            raise InvalidRequest(
                f"metric {metric!r}: direction {direction!r} is not 'higher' or 'lower'"
            )
    return out
