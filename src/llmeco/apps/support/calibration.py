"""Calibrating the support assistant's hand-off for one knowledge base.

``llmeco kb calibrate NAME ANSWERABLE.jsonl UNANSWERABLE.jsonl`` retrieves for each labelled
question, fits an answerability gate on the signals (:func:`llmeco.apps.answerability.fit_gate`)
and stores it with the knowledge base's name in ``support_gates``; from then on the assistant
serving ``support:NAME`` decides hand-offs with it. Question files are JSONL with a ``query``
per line (``examples/kb-questions`` has the format).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from llmeco.apps.answerability import HANDOFF_TARGET, Gate, Signals, fit_gate, open_gate
from llmeco.apps.support.cache import CachedEmbeddings
from llmeco.apps.support.plan import plan_turn
from llmeco.apps.support.protocols import Embeds, Searcher
from llmeco.errors import ConfigError, NotFound
from llmeco.store import Base, Store

gates_table = sa.Table(
    "support_gates",
    Base.metadata,
    sa.Column("kb", sa.String(200), primary_key=True),
    sa.Column("gate", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class GateStore:
    """Calibrated gates by knowledge-base name."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, kb: str) -> Gate | None:
        """The gate calibrated for ``kb``, or None (the assistant then uses the default)."""
        with self.store.session() as s:
            text = s.execute(
                sa.select(gates_table.c.gate).where(gates_table.c.kb == kb)
            ).scalar_one_or_none()
        return None if text is None else Gate.from_json(text)

    def put(self, kb: str, gate: Gate) -> None:
        """Store ``gate`` for ``kb``, replacing an earlier one."""
        with self.store.session() as s:
            s.execute(sa.delete(gates_table).where(gates_table.c.kb == kb))
            s.execute(
                sa.insert(gates_table).values(
                    kb=kb, gate=gate.to_json(), created_at=datetime.now(UTC)
                )
            )

    def delete(self, kb: str) -> bool:
        """Forget ``kb``'s gate (back to the default); whether there was one."""
        with self.store.session() as s:
            result = s.execute(sa.delete(gates_table).where(gates_table.c.kb == kb))
        return bool(getattr(result, "rowcount", 0))


def read_questions(path: Path) -> list[str]:
    """The ``query`` of every line of a JSONL question file.

    Raises:
        NotFound: no such file. ConfigError: a line that is not a JSON object with a
            non-empty string ``query`` (the message names the line).
    """
    if not path.is_file():
        raise NotFound(f"no question file {path}")
    queries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record: Any = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"{path}:{n}: not JSON ({e})") from e
        query = record.get("query") if isinstance(record, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"{path}:{n}: needs a non-empty string 'query'")
        queries.append(query)
    return queries


#: Told ``(questions done, questions in all)`` after each question.
Progress = Callable[[int, int], None]


def question_signals(
    kb: Searcher, embedder: Embeds, queries: Sequence[str], progress: Progress | None = None
) -> list[Signals]:
    """Retrieve for each question as the assistant would and return its gate signals."""
    if not isinstance(embedder, CachedEmbeddings):
        embedder = CachedEmbeddings(embedder)
    out = []
    for query in queries:
        turn = plan_turn([{"role": "user", "content": query}], kb, embedder, gate=open_gate())
        out.append(turn.signals)
        if progress is not None:
            progress(len(out), len(queries))
    return out


def calibrate(
    kb: Searcher,
    embedder: Embeds,
    embed_model: str,
    answerable: Path,
    unanswerable: Path,
    *,
    handoff_target: float = HANDOFF_TARGET,
    progress: Progress | None = None,
) -> Gate:
    """Fit ``kb``'s gate on two question files (see the module docstring); not stored.

    Raises:
        NotFound / ConfigError: as :func:`read_questions`; ConfigError also for too few
            questions or a hand-off target outside (0, 1].
    """
    if not 0 < handoff_target <= 1:
        raise ConfigError(f"the hand-off target must be in (0, 1], not {handoff_target}")
    a, u = read_questions(answerable), read_questions(unanswerable)
    sources = {
        "knowledge_base": kb.name,
        "files": {
            str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in (answerable, unanswerable)
        },
    }
    signals = question_signals(kb, embedder, [*a, *u], progress)
    return fit_gate(
        signals[: len(a)],
        signals[len(a) :],
        embed_model=embed_model,
        handoff_target=handoff_target,
        sources=sources,
    )
