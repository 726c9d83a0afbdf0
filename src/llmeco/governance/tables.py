"""The API-key tables (migration ``0002_keys``).

* ``api_keys`` — one row per key. The secret is never stored: ``key_hash`` is
  HMAC-SHA256 of the whole key under the server secret (see :mod:`llmeco.governance.keys`).
  Scopes and the model allow-list are comma-separated (empty models = every model); a NULL
  limit means unlimited. Rows are never deleted: revocation sets ``revoked_at``.
* ``api_key_usage`` — tokens and requests per key per UTC day, the persisted copy of the
  counter that enforces the daily budget (:mod:`llmeco.governance.limits`). The primary key
  (key, day) is the index every read and upsert uses; ``day`` is also indexed so old days can
  be pruned (:meth:`~llmeco.governance.limits.usage.UsageLedger.prune`).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from llmeco.store import Base


class ApiKeyRow(Base):
    """One API key (hash only)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    scopes: Mapped[str] = mapped_column(sa.String(200))
    models: Mapped[str] = mapped_column(sa.Text, default="")
    rpm: Mapped[int | None] = mapped_column(sa.Integer)
    tpm: Mapped[int | None] = mapped_column(sa.Integer)
    daily_tokens: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(sa.String(64))


class ApiKeyUsageRow(Base):
    """Tokens and requests of one key on one UTC day."""

    __tablename__ = "api_key_usage"
    __table_args__ = (sa.Index("ix_api_key_usage_day", "day"),)

    key_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    day: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    prompt_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    requests: Mapped[int] = mapped_column(sa.BigInteger, default=0)
