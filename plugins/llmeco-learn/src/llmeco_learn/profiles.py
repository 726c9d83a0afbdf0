"""Learner profiles: goals, level and the scored exercise history, in the app's own SQLite.

The tables live in ``LLMECO_HOME/apps/learn.db`` (not the server's store: a plugin does not
add migrations to llmeco's schema), opened through :class:`llmeco.store.db.Store`, so it gets
the same WAL, foreign keys and busy timeout. Every write is one transaction: a profile and
its history are replaced together or not at all, and feedback either lands or leaves nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from llmeco.errors import NotFound
from llmeco.store.db import Store

metadata = sa.MetaData()

learners = sa.Table(
    "learn_learners",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("goals", sa.Text, nullable=False),  # JSON list of strings
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

attempts = sa.Table(
    "learn_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "learner_id",
        sa.String(128),
        sa.ForeignKey("learn_learners.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("item_id", sa.String(200), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class Attempt:
    """One scored exercise (score in [0, 1])."""

    item_id: str
    score: float
    at: float = 0.0


@dataclass
class Profile:
    """A learner: goals, self-declared level (1–3) and history, oldest attempt first."""

    id: str
    level: int
    goals: list[str]
    history: list[Attempt] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0


def db_path(home: Path) -> Path:
    """Where the app's database lives under ``LLMECO_HOME``."""
    return home / "apps" / "learn.db"


class ProfileStore:
    """Create, replace and read learner profiles; record feedback."""

    def __init__(self, path: Path) -> None:
        self.store = Store(f"sqlite:///{path}")
        metadata.create_all(self.store.engine)

    def close(self) -> None:
        """Release the database connections."""
        self.store.close()

    def put(
        self, learner_id: str, level: int, goals: Sequence[str], history: Sequence[Attempt] | None
    ) -> Profile:
        """Create or replace a profile; ``history`` (if given) replaces the old one."""
        now = time.time()
        with self.store.session() as s:
            row = s.execute(
                sa.select(learners.c.created_at).where(learners.c.id == learner_id)
            ).first()
            values = {"level": level, "goals": json.dumps(list(goals)), "updated_at": now}
            if row is None:
                s.execute(learners.insert().values(id=learner_id, created_at=now, **values))
            else:
                s.execute(learners.update().where(learners.c.id == learner_id).values(**values))
            if history is not None:
                s.execute(attempts.delete().where(attempts.c.learner_id == learner_id))
                if history:
                    s.execute(
                        attempts.insert(),
                        [
                            {
                                "learner_id": learner_id,
                                "item_id": a.item_id,
                                "score": a.score,
                                "at": a.at or now,
                            }
                            for a in history
                        ],
                    )
            return self._read(s, learner_id)

    def get(self, learner_id: str) -> Profile:
        """The profile; ``NotFound`` for an unknown learner."""
        with self.store.session() as s:
            return self._read(s, learner_id)

    def record(self, learner_id: str, item_id: str, score: float) -> Profile:
        """Append one scored attempt; ``NotFound`` for an unknown learner."""
        now = time.time()
        with self.store.session() as s:
            self._read(s, learner_id)  # 404 before writing anything
            s.execute(
                attempts.insert().values(
                    learner_id=learner_id, item_id=item_id, score=score, at=now
                )
            )
            s.execute(learners.update().where(learners.c.id == learner_id).values(updated_at=now))
            return self._read(s, learner_id)

    @staticmethod
    def _read(s: Session, learner_id: str) -> Profile:
        row = s.execute(sa.select(learners).where(learners.c.id == learner_id)).first()
        if row is None:
            raise NotFound(f"no learner {learner_id!r}; create it with PUT", param="learner_id")
        rows = s.execute(
            sa.select(attempts.c.item_id, attempts.c.score, attempts.c.at)
            .where(attempts.c.learner_id == learner_id)
            .order_by(attempts.c.id)
        ).all()
        return Profile(
            id=row.id,
            level=row.level,
            goals=list(json.loads(row.goals)),
            history=[Attempt(r.item_id, r.score, r.at) for r in rows],
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
