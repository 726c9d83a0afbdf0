"""Daily usage per key: the :class:`Usage` counter and its persisted copy in the store.

:class:`UsageLedger` is the ``api_key_usage`` table seen as totals per (key, UTC day): both
limiters seed a day's counter from it and flush what they charged back into it, so a restart
does not reset a budget, and ``llmeco keys usage`` can read it without a running server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from llmeco.governance.tables import ApiKeyUsageRow
from llmeco.store import Store


@dataclass
class Usage:
    """Tokens and requests of one key on one UTC day."""

    key_id: str
    day: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens: what the daily budget counts."""
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "key_id": self.key_id,
            "day": self.day,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "requests": self.requests,
        }


class UsageLedger:
    """Daily usage in the store: read, add (an upsert that sums), prune."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def read(self, key_id: str, day: str) -> Usage:
        """One key's usage on one day (zeros when there is none)."""
        with self.store.session() as s:
            row = s.get(ApiKeyUsageRow, (key_id, day))
            if row is None:
                return Usage(key_id, day)
            return Usage(key_id, day, row.prompt_tokens, row.completion_tokens, row.requests)

    def read_day(self, day: str) -> list[Usage]:
        """Every key's usage on ``day``."""
        query = sa.select(ApiKeyUsageRow).where(ApiKeyUsageRow.day == day)
        with self.store.session() as s:
            return [
                Usage(r.key_id, r.day, r.prompt_tokens, r.completion_tokens, r.requests)
                for r in s.scalars(query)
            ]

    def add(self, deltas: dict[tuple[str, str], list[int]]) -> None:
        """Add ``(key_id, day) → [prompt, completion, requests]`` to the stored totals."""
        if not deltas:
            return
        rows = [
            {
                "key_id": k,
                "day": d,
                "prompt_tokens": p,
                "completion_tokens": c,
                "requests": r,
            }
            for (k, d), (p, c, r) in sorted(deltas.items())
        ]
        if self.store.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            ins: Any = pg_insert(ApiKeyUsageRow)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            ins = sqlite_insert(ApiKeyUsageRow)
        cols = ("prompt_tokens", "completion_tokens", "requests")
        stmt = ins.on_conflict_do_update(
            index_elements=["key_id", "day"],
            set_={c: getattr(ApiKeyUsageRow, c) + ins.excluded[c] for c in cols},
        )
        with self.store.session() as s:
            s.execute(stmt, rows)

    def prune(self, before_day: str) -> int:
        """Delete usage rows older than ``before_day``; returns how many (retention)."""
        query = sa.delete(ApiKeyUsageRow).where(ApiKeyUsageRow.day < before_day)
        with self.store.session() as s:
            result = s.execute(query)
            return int(getattr(result, "rowcount", 0) or 0)
