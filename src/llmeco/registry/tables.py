"""Registry tables: models, immutable versions with their files, aliases, alias history, evals.

Schema (all created by migration ``0004_registry``)::

    registry_models        one row per model name; ``latest_version`` hands out version
                           numbers (monotonic, never reused) and ``alias_epoch`` counts alias
                           moves so a server can poll one integer to learn that an alias moved
    registry_versions      (model, version) → where it came from, lineage, config.json
    registry_files         (version, path) → sha256 and size of a blob in the artifact store
    registry_aliases       (model, alias) → version now
    registry_alias_events  every alias move: who, when, from, to, why (append-only)
    registry_evals         evaluation runs attached to a version (metrics as JSON, with
                           the direction each improves in once the evaluation gave it)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from llmeco.store import Base


class ModelRow(Base):
    """A registered model name."""

    __tablename__ = "registry_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    latest_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    alias_epoch: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    alias_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class VersionRow(Base):
    """One immutable version of a model."""

    __tablename__ = "registry_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_registry_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    lineage: Mapped[str | None] = mapped_column(Text)
    config: Mapped[str | None] = mapped_column(Text)
    total_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    file_count: Mapped[int] = mapped_column(Integer, nullable=False)


class FileRow(Base):
    """One file of a version: its relative path and the blob holding its bytes."""

    __tablename__ = "registry_files"
    __table_args__ = (
        UniqueConstraint("version_id", "path", name="uq_registry_files"),
        Index("ix_registry_files_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("registry_versions.id", ondelete="CASCADE"), nullable=False
    )
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)


class AliasRow(Base):
    """Where an alias of a model points now."""

    __tablename__ = "registry_aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("registry_versions.id", ondelete="RESTRICT"), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_by: Mapped[str] = mapped_column(String(200), nullable=False)


class AliasEventRow(Base):
    """One alias move (append-only): the answer to "what was in production on date D"."""

    __tablename__ = "registry_alias_events"
    __table_args__ = (Index("ix_registry_alias_events_model", "model_id", "alias", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), nullable=False
    )
    alias: Mapped[str] = mapped_column(String(128), nullable=False)
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")


class EvalRow(Base):
    """An evaluation run attached to a version: suite, metrics and where the report is."""

    __tablename__ = "registry_evals"
    __table_args__ = (Index("ix_registry_evals_version_suite", "version_id", "suite", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("registry_versions.id", ondelete="CASCADE"), nullable=False
    )
    run_id: Mapped[str] = mapped_column(String(64), nullable=False)
    suite: Mapped[str] = mapped_column(String(200), nullable=False)
    suite_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    #: JSON: ``{"task.metric": value}``, or ``{"values": {...}, "directions": {...}}`` for a
    #: run attached with metric directions (see ``Registry.attach_eval``).
    metrics: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
