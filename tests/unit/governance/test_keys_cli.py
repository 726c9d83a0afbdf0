"""``llmeco keys …`` and ``llmeco serve``'s auth: checked in the database afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from llmeco.cli.main import app
from llmeco.governance.keys import KeyStore
from llmeco.governance.limits import UsageLedger, today
from llmeco.governance.scopes import Grant
from llmeco.settings import Settings

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMECO_HOME", str(tmp_path))
    monkeypatch.delenv("LLMECO_REDIS_URL", raising=False)
    monkeypatch.delenv("LLMECO_DATABASE_URL", raising=False)
    return tmp_path


def keystore(home: Path) -> KeyStore:
    return KeyStore.from_settings(Settings(home=home))


def test_create_list_limit_revoke(home: Path) -> None:
    args = [
        "keys",
        "create",
        "--name",
        "ci",
        "--scopes",
        "chat,completions",
        "--models",
        "m1,m2",
        "--rpm",
        "60",
        "--tpm",
        "1000",
        "--daily-tokens",
        "5000",
        "--expires",
        "30d",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("sk-llmeco-")
    keys = keystore(home)
    key = keys.authenticate(token)
    assert key.scopes == {"chat", "completions"} and key.models == {"m1", "m2"}
    assert (key.rpm, key.tpm, key.daily_tokens) == (60, 1000, 5000)
    assert key.expires_at is not None and key.created_by == "cli"
    with keys.store.session() as s:
        stored = " ".join(str(v) for v in s.execute(text("SELECT * FROM api_keys")).one())
        actions = [
            json.loads(p)["action"]
            for (p,) in s.execute(text("SELECT payload FROM audit_entries ORDER BY seq"))
        ]
    assert token not in stored and actions == ["key.create"]

    listed = runner.invoke(app, ["keys", "list", "--json"])
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["id"] for row in rows] == [key.id] and "key_hash" not in rows[0]
    assert token not in listed.stdout

    r = runner.invoke(app, ["keys", "limits", key.id, "--rpm", "0", "--daily-tokens", "10"])
    assert r.exit_code == 0, r.output
    assert (keys.get(key.id).rpm, keys.get(key.id).daily_tokens) == (None, 10)

    assert runner.invoke(app, ["keys", "revoke", key.id]).exit_code == 0
    assert keys.get(key.id).status() == "revoked"
    assert runner.invoke(app, ["keys", "list", "--json"]).stdout.strip() == ""
    assert len(runner.invoke(app, ["keys", "list", "--all", "--json"]).stdout.splitlines()) == 1


def test_usage_command_reads_the_stored_counter(home: Path) -> None:
    keys = keystore(home)
    key, _ = keys.create("u", Grant(scopes=frozenset({"chat"}), daily_tokens=100))
    UsageLedger(keys.store).add({(key.id, today()): [30, 12, 2]})
    r = runner.invoke(app, ["keys", "usage", key.id, "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert (row["total_tokens"], row["requests"], row["daily_tokens"]) == (42, 2, 100)
    assert runner.invoke(app, ["keys", "usage"]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scopes", "chat,root"], "unknown scope"),
        (["--expires", "soon"], "invalid duration"),
        (["--scopes", ""], "at least one scope"),
    ],
)
def test_bad_options_are_usage_errors(home: Path, args: list[str], message: str) -> None:
    r = runner.invoke(app, ["keys", "create", "--name", "x", *args])
    assert r.exit_code == 2 and message in r.output


def test_revoking_an_unknown_key_is_a_clear_error(home: Path) -> None:
    r = runner.invoke(app, ["keys", "revoke", "000000000000"])
    assert r.exit_code == 2 and "no API key" in r.output


def test_serve_no_auth_refuses_a_public_host(home: Path) -> None:
    r = runner.invoke(app, ["serve", "--no-auth", "--host", "0.0.0.0"])
    assert r.exit_code == 2
    assert "loopback" in r.output and "0.0.0.0" in r.output


def test_serve_creates_and_prints_the_first_admin_key_once(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from llmeco.cli.serve import is_loopback
    from llmeco.server.runtime import open_auth

    settings = Settings(home=home)
    auth = open_auth(settings, None)
    printed = capsys.readouterr().out
    token = next(w for w in printed.split() if w.startswith("sk-llmeco-"))
    admin = auth.keys.authenticate(token)
    assert "admin" in admin.scopes and admin.rpm is None
    asyncio.run(auth.aclose())
    again = open_auth(settings, None)  # a restart: the key exists, nothing printed
    assert "sk-llmeco-" not in capsys.readouterr().out
    asyncio.run(again.aclose())
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com"))
