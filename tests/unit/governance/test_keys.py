"""API keys: format, keyed hashes only, constant-time verification, revocation, expiry,
the server secret file, and the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from llmeco.errors import AuthError, InvalidRequest, NotFound
from llmeco.governance.keys import (
    PREFIX,
    KeyStore,
    parse_duration,
    server_secret,
    split_token,
    utc_now,
)
from llmeco.governance.limits import UsageLedger
from llmeco.governance.scopes import SCOPES, Grant
from llmeco.settings import Settings
from llmeco.store import Store

CHAT = Grant(scopes=frozenset({"chat"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def keystore(request: pytest.FixtureRequest, tmp_path: Path) -> KeyStore:
    if request.param == "sqlite":
        store = Store.from_settings(Settings(home=tmp_path))
    else:
        store = Store(request.getfixturevalue("postgres_url"))
        store.migrate()
    yield KeyStore(store, b"secret")
    store.close()


def test_key_roundtrip_stores_only_a_keyed_hash(keystore: KeyStore) -> None:
    key, token = keystore.create("ci", Grant(scopes=frozenset({"chat", "models"}), rpm=5))
    assert token.startswith(PREFIX + key.id + "-")
    assert split_token(token) is not None
    assert keystore.authenticate(token) == key
    with keystore.store.session() as s:
        row = s.execute(text("SELECT * FROM api_keys")).mappings().one()
    dumped = " ".join(str(v) for v in row.values())
    secret = token.removeprefix(PREFIX + key.id + "-")  # the secret may itself hold a "-"
    assert len(secret) >= 20 and secret not in dumped and token not in dumped
    assert row["key_hash"] == keystore.hash(token) and len(row["key_hash"]) == 64
    # A different server secret cannot verify the same key.
    with pytest.raises(AuthError):
        KeyStore(keystore.store, b"other").authenticate(token)


def test_bad_tokens_are_401_without_echoing_them(keystore: KeyStore) -> None:
    _key, token = keystore.create("ci", CHAT)
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (wrong, "sk-llmeco-nothex-abc", "not-a-key", PREFIX + "0" * 12 + "-" + "x" * 43):
        with pytest.raises(AuthError) as info:
            keystore.authenticate(bad)
        assert bad not in info.value.message


def test_revoked_and_expired_keys_are_refused(keystore: KeyStore) -> None:
    key, token = keystore.create("r", CHAT)
    keystore.revoke(key.id)
    with pytest.raises(AuthError, match="revoked"):
        keystore.authenticate(token)
    assert keystore.get(key.id).status() == "revoked"
    past = Grant(scopes=frozenset({"chat"}), expires_at=utc_now() - timedelta(seconds=1))
    old, old_token = keystore.create("old", past)
    with pytest.raises(AuthError, match="expired"):
        keystore.authenticate(old_token)
    assert [k.id for k in keystore.all_keys()] == [old.id]
    assert len(keystore.all_keys(include_revoked=True)) == 2
    with pytest.raises(NotFound):
        keystore.revoke("0" * 12)


def test_limits_update_and_validation(keystore: KeyStore) -> None:
    key, _ = keystore.create("l", Grant(scopes=frozenset({"chat"}), rpm=5, daily_tokens=100))
    updated = keystore.update_limits(key.id, {"rpm": None, "tpm": 50})
    assert (updated.rpm, updated.tpm, updated.daily_tokens) == (None, 50, 100)
    with pytest.raises(InvalidRequest):
        keystore.update_limits(key.id, {"rpm": 0})
    with pytest.raises(InvalidRequest):
        keystore.create("", CHAT)


def test_usage_ledger_sums_deltas(keystore: KeyStore) -> None:
    ledger = UsageLedger(keystore.store)
    ledger.add({("k1", "2026-01-01"): [10, 5, 1]})
    ledger.add({("k1", "2026-01-01"): [1, 2, 1], ("k1", "2026-01-02"): [3, 0, 1]})
    u = ledger.read("k1", "2026-01-01")
    assert (u.prompt_tokens, u.completion_tokens, u.requests, u.total_tokens) == (11, 7, 2, 18)
    assert ledger.prune("2026-01-02") == 1
    assert ledger.read("k1", "2026-01-01").total_tokens == 0
    assert [x.day for x in ledger.read_day("2026-01-02")] == ["2026-01-02"]


def test_first_admin_key_only_on_an_empty_store(keystore: KeyStore) -> None:
    token = keystore.ensure_first_admin()
    assert token is not None
    admin = keystore.authenticate(token)
    assert admin.scopes == frozenset(SCOPES) and admin.rpm is None
    assert keystore.ensure_first_admin() is None


def test_server_secret_file_is_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = server_secret(settings)
    path = tmp_path / "keys" / "api-key-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert server_secret(settings) == first and len(first) == 64
    given = Settings(home=tmp_path, secret_key="from-env")  # type: ignore[arg-type]
    assert server_secret(given) == b"from-env"


@pytest.mark.parametrize(
    ("text_", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("2w", 1209600), ("90s", 90)]
)
def test_durations(text_: str, seconds: int) -> None:
    assert parse_duration(text_).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "0d", "-1d", "10y", "d"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_duration(bad)
