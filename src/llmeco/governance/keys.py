"""API keys: create, authenticate, list, revoke, re-limit — stored as keyed hashes only.

A key reads ``sk-llmeco-<id>-<secret>``: ``id`` (12 hex characters) is public and names the
key everywhere (lists, usage, the audit ledger); ``secret`` is 32 random bytes, URL-safe
base64. The store keeps ``HMAC-SHA256(server secret, whole key)``, so a leaked database does
not yield usable keys without the server secret. Authentication looks the row up by id, then
compares hashes with :func:`hmac.compare_digest` (constant time). The plaintext is returned
once, by :meth:`KeyStore.create`, and never stored or logged.

Every write takes an optional ``actor`` (the key doing it, from the admin API); with one, the
no-escalation rules of :mod:`llmeco.governance.scopes` apply. Without one the caller is the
machine's operator (the CLI), who may do anything.

The server secret is ``LLMECO_SECRET_KEY`` or, when that is empty, a random one kept in the
0600 file ``HOME/keys/api-key-secret`` created on first use. Replicas sharing a database
must share it. Changing it invalidates every key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from llmeco.errors import AuthError, InvalidRequest, NotFound
from llmeco.governance.scopes import SCOPES, Grant, check_can_grant, check_can_manage, excess
from llmeco.governance.tables import ApiKeyRow
from llmeco.settings import Settings
from llmeco.store import Store

PREFIX = "sk-llmeco-"
_ID_HEX = 12
_TOKEN = re.compile(r"^sk-llmeco-([0-9a-f]{12})-([A-Za-z0-9_\-]{20,128})$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: ``created_by`` of keys made from the command line (the machine's operator).
CLI_ACTOR = "cli"


def utc_now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def _utc(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"2w"``, ``"45s"`` → a positive timedelta."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) <= 0:
        raise InvalidRequest(
            f"invalid duration {text!r}: use a positive number and a unit, e.g. 30d, 12h, 2w",
            param="expires",
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def server_secret(settings: Settings) -> bytes:
    """The HMAC key for API-key hashes (``LLMECO_SECRET_KEY`` or the 0600 file)."""
    given = settings.secret_key.get_secret_value().strip()
    if given:
        return given.encode()
    from llmeco.governance.crypto import secret_file

    path = settings.home / "keys" / "api-key-secret"
    return secret_file(path, lambda: secrets.token_hex(32)).strip().encode()


@dataclass(frozen=True, kw_only=True)
class ApiKey(Grant):
    """One key as stored (without its hash): its grant plus who, when and whether revoked."""

    id: str
    name: str
    created_at: datetime
    created_by: str = CLI_ACTOR
    revoked_at: datetime | None = None

    def status(self, now: datetime | None = None) -> str:
        """``"active"``, ``"revoked"`` or ``"expired"``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utc_now()):
            return "expired"
        return "active"

    def allows_model(self, names: set[str] | frozenset[str]) -> bool:
        """Whether a model known by any of ``names`` is on the allow-list (empty = all)."""
        return not self.models or bool(self.models & names)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description (never the secret or its hash)."""

        def iso(dt: datetime | None) -> str | None:
            return dt.isoformat() if dt is not None else None

        return {
            "id": self.id,
            "name": self.name,
            "scopes": [s for s in SCOPES if s in self.scopes],
            "models": sorted(self.models),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "daily_tokens": self.daily_tokens,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "created_by": self.created_by,
            "status": self.status(),
        }


def _from_row(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=frozenset(s for s in row.scopes.split(",") if s),
        models=frozenset(m for m in (row.models or "").split(",") if m),
        rpm=row.rpm,
        tpm=row.tpm,
        daily_tokens=row.daily_tokens,
        created_at=_utc(row.created_at) or utc_now(),
        expires_at=_utc(row.expires_at),
        revoked_at=_utc(row.revoked_at),
        created_by=row.created_by,
    )


def split_token(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, else None."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


class KeyStore:
    """API keys in the store, hashed with the server secret."""

    def __init__(self, store: Store, secret: bytes) -> None:
        if not secret:
            raise ValueError("the server secret must not be empty")
        self.store = store
        self._secret = secret
        # Compared against when the id is unknown, so timing does not reveal which ids exist.
        self._decoy = self.hash(PREFIX + "0" * _ID_HEX + "-" + "x" * 43)

    @classmethod
    def from_settings(cls, settings: Settings, store: Store | None = None) -> KeyStore:
        """Keys of the store the settings name (migrated), with the settings' server secret."""
        return cls(store or Store.from_settings(settings), server_secret(settings))

    def hash(self, token: str) -> str:
        """HMAC-SHA256 of a whole key under the server secret, hex."""
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()

    # ---- writing ---------------------------------------------------------------------------

    def create(self, name: str, grant: Grant, *, actor: ApiKey | None = None) -> tuple[ApiKey, str]:
        """Store a new key and return it with its plaintext (shown once, never stored).

        With ``actor``, the new key may not hold more than the actor (403 otherwise).
        """
        if actor is not None:
            check_can_grant(actor, grant)
        created_by = actor.id if actor is not None else CLI_ACTOR
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequest("a key needs a name of 1 to 200 characters", param="name")
        for field, value in (("rpm", grant.rpm), ("tpm", grant.tpm)):
            if value is not None and value < 1:
                raise InvalidRequest(
                    f"{field} must be at least 1 (omit it for no limit)", param=field
                )
        if grant.daily_tokens is not None and grant.daily_tokens < 1:
            raise InvalidRequest(
                "daily_tokens must be at least 1 (omit it for no limit)", param="daily_tokens"
            )
        key_id = secrets.token_hex(_ID_HEX // 2)
        token = f"{PREFIX}{key_id}-{secrets.token_urlsafe(32)}"
        key = ApiKey(
            id=key_id,
            name=name,
            created_at=utc_now(),
            created_by=created_by,
            scopes=grant.scopes,
            models=grant.models,
            rpm=grant.rpm,
            tpm=grant.tpm,
            daily_tokens=grant.daily_tokens,
            expires_at=grant.expires_at,
        )
        with self.store.session() as s:
            s.add(
                ApiKeyRow(
                    id=key.id,
                    name=key.name,
                    key_hash=self.hash(token),
                    scopes=",".join(s for s in SCOPES if s in key.scopes),
                    models=",".join(sorted(key.models)),
                    rpm=key.rpm,
                    tpm=key.tpm,
                    daily_tokens=key.daily_tokens,
                    created_at=key.created_at,
                    expires_at=key.expires_at,
                    revoked_at=None,
                    created_by=created_by,
                )
            )
        return key, token

    def revoke(self, key_id: str, *, actor: ApiKey | None = None) -> ApiKey:
        """Revoke a key (idempotent); 404 for an unknown id, 403 if ``actor`` may not."""
        if actor is not None:
            check_can_manage(actor, self.get(key_id), "revoke it")
        with self.store.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}", param="key_id")
            if row.revoked_at is None:
                row.revoked_at = utc_now()
            return _from_row(row)

    def update_limits(
        self, key_id: str, limits: Mapping[str, int | None], *, actor: ApiKey | None = None
    ) -> ApiKey:
        """Set any of ``rpm``, ``tpm``, ``daily_tokens`` (None = unlimited); 404 if unknown.

        With ``actor``: it must dominate the key and the new limits must be within its own,
        so no key can raise its own limits.
        """
        bad = set(limits) - {"rpm", "tpm", "daily_tokens"}
        if bad:
            raise InvalidRequest(f"not a limit: {', '.join(sorted(bad))}")
        if actor is not None:
            target = self.get(key_id)
            check_can_manage(actor, target, "change its limits")
            check_can_grant(actor, replace(target, **limits))  # type: ignore[arg-type]
        for field, value in limits.items():
            if value is not None and value < 1:
                raise InvalidRequest(f"{field} must be at least 1 (null for no limit)", param=field)
        with self.store.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}", param="key_id")
            for field, value in limits.items():
                setattr(row, field, value)
            return _from_row(row)

    # ---- reading ---------------------------------------------------------------------------

    def get(self, key_id: str) -> ApiKey:
        """One key by id; 404 when unknown."""
        found = self.lookup(key_id)
        if found is None:
            raise NotFound(f"no API key with id {key_id!r}", param="key_id")
        return found[0]

    def lookup(self, key_id: str) -> tuple[ApiKey, str] | None:
        """A key and its stored hash, or None."""
        with self.store.session() as s:
            row = s.get(ApiKeyRow, key_id)
            return (_from_row(row), row.key_hash) if row is not None else None

    def all_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """Every key, oldest first (revoked ones only when asked)."""
        query = sa.select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        with self.store.session() as s:
            return [_from_row(r) for r in s.scalars(query)]

    def visible_to(self, actor: ApiKey, *, include_revoked: bool = False) -> list[ApiKey]:
        """Keys ``actor`` may see and manage: itself and every key it dominates."""
        return [
            k
            for k in self.all_keys(include_revoked=include_revoked)
            if k.id == actor.id or not excess(actor, k)
        ]

    def count(self) -> int:
        """How many keys exist (revoked included)."""
        with self.store.session() as s:
            return int(s.scalar(sa.select(sa.func.count()).select_from(ApiKeyRow)) or 0)

    def verify(self, token: str, found: tuple[ApiKey, str] | None) -> ApiKey:
        """The key ``token`` proves, given its looked-up row; ``AuthError`` otherwise.

        The hash is checked before the key's state, so a caller who knows only an id learns
        nothing about it. Messages never repeat the token.
        """
        digest = self.hash(token)
        stored = found[1] if found is not None else self._decoy
        if not hmac.compare_digest(digest, stored) or found is None:
            raise AuthError("Incorrect API key provided.")
        key = found[0]
        status = key.status()
        if status == "revoked":
            raise AuthError(f"API key {key.id} has been revoked.")
        if status == "expired":
            assert key.expires_at is not None
            raise AuthError(f"API key {key.id} expired at {key.expires_at.isoformat()}.")
        return key

    def authenticate(self, token: str) -> ApiKey:
        """The active key ``token`` names (store lookup, constant-time compare)."""
        parts = split_token(token)
        return self.verify(token, self.lookup(parts[0]) if parts else None)

    def ensure_first_admin(self) -> str | None:
        """On an empty key table, create an unlimited admin key and return its plaintext.

        ``llmeco serve`` calls this so auth is on from the first start; returns None when
        any key (even a revoked one) exists.
        """
        if self.count():
            return None
        _, token = self.create("first admin", Grant(scopes=frozenset(SCOPES)))
        return token
