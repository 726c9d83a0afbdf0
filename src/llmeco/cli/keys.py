"""``llmeco keys``: create, list, revoke and re-limit API keys; show usage.

The command line acts as the machine's operator: it may create any key (the no-escalation
rules bind keys acting through ``/admin/keys``, not the operator). A new key is printed once
on stdout, alone on its line, so ``KEY=$(llmeco keys create --name ci)`` works; it is stored
only as a keyed hash. Every change is also appended to the audit ledger.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from llmeco.governance.keys import ApiKey, KeyStore
    from llmeco.settings import Settings

keys_app = typer.Typer(
    help="API keys: create (shown once), list, revoke, change limits, usage.",
    no_args_is_help=True,
)

_DEFAULT_SCOPES = "chat,completions,embeddings,models"


def _open() -> tuple[Settings, KeyStore]:
    from llmeco.governance.keys import KeyStore
    from llmeco.settings import Settings

    settings = Settings()
    return settings, KeyStore.from_settings(settings)


def _audit(settings: Settings, keys: KeyStore, action: str, details: dict[str, Any]) -> None:
    """Append an operator action to the audit ledger (when auditing is on)."""
    if not settings.audit:
        return
    from llmeco.governance.audit import AuditLedger

    with AuditLedger.open(settings, keys.store) as ledger:
        ledger.record_admin("cli", action, details).result(30)


def _limit(value: int | None) -> int | None:
    """CLI convention: 0 means "no limit"."""
    return None if value is None or value == 0 else value


def _table(keys: list[ApiKey]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "scopes", "models", "rpm", "tpm", "daily", "expires", "status")
    for k in keys:
        d = k.as_dict()
        table.add_row(
            k.id,
            k.name,
            ",".join(d["scopes"]),
            ",".join(d["models"]) or "all",
            str(k.rpm or "-"),
            str(k.tpm or "-"),
            str(k.daily_tokens or "-"),
            (d["expires_at"] or "never")[:19],
            d["status"],
        )
    Console().print(table)


@keys_app.command()
def create(
    name: Annotated[str, typer.Option(help="What the key is for (shown in lists and usage).")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: chat, completions, embeddings, models, admin.")
    ] = _DEFAULT_SCOPES,
    models: Annotated[
        str, typer.Option(help="Comma-separated model allow-list; empty = every model.")
    ] = "",
    rpm: Annotated[int | None, typer.Option(min=0, help="Requests per minute (0 = none).")] = None,
    tpm: Annotated[int | None, typer.Option(min=0, help="Tokens per minute (0 = none).")] = None,
    daily_tokens: Annotated[
        int | None, typer.Option(min=0, help="Token budget per UTC day (0 = none).")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 30d, 12h, 2w (default: never).")
    ] = None,
) -> None:
    """Create a key and print it once (stdout); only its keyed hash is stored."""
    from rich.console import Console

    from llmeco.governance.keys import parse_duration, utc_now
    from llmeco.governance.scopes import Grant, parse_models, parse_scopes

    settings, keys = _open()
    grant = Grant(
        scopes=parse_scopes(scopes),
        models=parse_models(models),
        rpm=_limit(rpm),
        tpm=_limit(tpm),
        daily_tokens=_limit(daily_tokens),
        expires_at=utc_now() + parse_duration(expires) if expires else None,
    )
    key, token = keys.create(name, grant)
    _audit(settings, keys, "key.create", key.as_dict())
    err = Console(stderr=True, highlight=False)
    err.print(f"created key [bold]{key.id}[/] ({key.name}); it is shown once — store it now:")
    typer.echo(token)


@keys_app.command("list")
def list_keys(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """List keys (never their secrets)."""
    _, keys = _open()
    found = keys.all_keys(include_revoked=all_)
    if as_json:
        for k in found:
            typer.echo(json.dumps(k.as_dict()))
    else:
        _table(found)


@keys_app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")]) -> None:
    """Revoke a key; servers stop accepting it within LLMECO_KEY_CACHE_SECONDS."""
    settings, keys = _open()
    key = keys.revoke(key_id)
    _audit(settings, keys, "key.revoke", {"key_id": key.id, "name": key.name})
    typer.echo(f"revoked {key.id} ({key.name})")


@keys_app.command()
def limits(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    rpm: Annotated[int | None, typer.Option(min=0, help="Requests per minute (0 = none).")] = None,
    tpm: Annotated[int | None, typer.Option(min=0, help="Tokens per minute (0 = none).")] = None,
    daily_tokens: Annotated[
        int | None, typer.Option(min=0, help="Token budget per UTC day (0 = none).")
    ] = None,
) -> None:
    """Change a key's limits (options left out keep their value)."""
    from llmeco.errors import InvalidRequest

    settings, keys = _open()
    given = {"rpm": rpm, "tpm": tpm, "daily_tokens": daily_tokens}
    changes = {k: _limit(v) for k, v in given.items() if v is not None}
    if not changes:
        raise InvalidRequest("give at least one of --rpm, --tpm, --daily-tokens")
    key = keys.update_limits(key_id, changes)
    _audit(settings, keys, "key.update", {"key_id": key.id, **changes})
    _table([key])


@keys_app.command()
def usage(
    key_id: Annotated[str | None, typer.Argument(help="One key (default: every key).")] = None,
    day: Annotated[str | None, typer.Option(help="UTC day YYYY-MM-DD (default today).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Tokens and requests per key for a day: Redis's live counter when LLMECO_REDIS_URL is
    set, else the store's (servers write theirs every LLMECO_USAGE_FLUSH_SECONDS)."""
    from rich.console import Console
    from rich.table import Table

    from llmeco.governance.limits import UsageLedger, today
    from llmeco.governance.limits.redis import read_usage

    settings, keys = _open()
    day = day or today()
    targets = [keys.get(key_id)] if key_id else keys.all_keys(include_revoked=True)
    ledger = UsageLedger(keys.store)
    rows = []
    for k in targets:
        live = read_usage(settings.redis_url, k.id, day) if settings.redis_url else None
        u = live or ledger.read(k.id, day)
        rows.append({**u.as_dict(), "name": k.name, "daily_tokens": k.daily_tokens})
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table("id", "name", "day", "prompt", "completion", "total", "requests", "budget")
    for r in rows:
        table.add_row(
            r["key_id"],
            r["name"],
            r["day"],
            str(r["prompt_tokens"]),
            str(r["completion_tokens"]),
            str(r["total_tokens"]),
            str(r["requests"]),
            str(r["daily_tokens"] or "-"),
        )
    Console().print(table)
