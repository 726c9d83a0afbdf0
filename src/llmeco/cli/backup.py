"""``llmeco backup``: create a consistent backup while the server runs, verify it, restore it.

A backup is a directory (see :mod:`llmeco.backup`). The passphrase sealing keys is read
from the environment variable ``--passphrase-env`` names, never from the command line (where
``ps`` and shell history would show it). ``verify`` and ``restore`` refuse a damaged backup
naming every bad file (exit 2).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from llmeco.backup.create import StageHook
    from llmeco.backup.manifest import ByteProgress

backup_app = typer.Typer(
    help="Back up a running home (store, artifacts, knowledge bases, keys), verify, restore.",
    no_args_is_help=True,
)

_PASSPHRASE_ENV = typer.Option(
    "--passphrase-env",
    metavar="VAR",
    help="Environment variable holding the passphrase that seals (or opens) the keys.",
)


def _passphrase(var: str | None) -> str | None:
    from llmeco.backup.keys import check_passphrase

    if var is None:
        return None
    return check_passphrase(os.environ.get(var, ""), f"${var}")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@contextmanager
def _bars(quiet: bool = False) -> Iterator[tuple[StageHook, ByteProgress]]:
    """A progress bar that each stage of the library call resets (name, bytes)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def stage(name: str, total: int | None) -> None:
            bar.update(task, description=name, total=total, completed=0)

        yield stage, lambda n: bar.advance(task, n)


def _warn(lines: list[str]) -> None:
    err = Console(stderr=True, highlight=False)
    for line in lines:
        err.print(f"warning: {line}", style="yellow", markup=False, soft_wrap=True)


@backup_app.command()
def create(
    out: Annotated[Path, typer.Argument(help="New directory to write the backup to.")],
    include_keys: Annotated[
        bool,
        typer.Option("--include-keys", help="Also back up home/keys, sealed with the passphrase."),
    ] = False,
    passphrase_env: Annotated[str | None, _PASSPHRASE_ENV] = None,
) -> None:
    """Snapshot the store and copy the home's files into OUT (safe while the server runs)."""
    from llmeco.backup.create import create_backup
    from llmeco.errors import ConfigError
    from llmeco.settings import Settings

    if include_keys and passphrase_env is None:
        raise ConfigError("--include-keys needs --passphrase-env VAR (the passphrase's variable)")
    passphrase = _passphrase(passphrase_env) if include_keys else None
    with _bars() as (stage, progress):
        result = create_backup(
            Settings(),
            out,
            include_keys=include_keys,
            passphrase=passphrase,
            on_stage=stage,
            progress=progress,
        )
    m = result.manifest
    ledger = m.ledger
    typer.echo(
        f"backup {result.path}: {len(m.files)} files, {_size(m.total_bytes)}, "
        f"{m.store['kind']} store, ledger head {ledger['head_seq']}, "
        f"keys {'sealed' if m.keys['included'] else 'not included'} "
        f"({result.seconds:.1f} s)"
    )
    _warn(result.warnings)


@backup_app.command()
def verify(
    backup: Annotated[Path, typer.Argument(help="Backup directory to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest summary.")] = False,
) -> None:
    """Re-hash every file against the manifest; exit 2 naming each missing, extra or bad file."""
    from llmeco.backup.manifest import Manifest, verify_backup

    total = Manifest.read(backup).total_bytes
    with _bars(quiet=as_json) as (stage, progress):
        stage("verifying", total)
        m = verify_backup(backup, progress)
    if as_json:
        summary = {k: v for k, v in m.to_dict().items() if k != "files"}
        typer.echo(json.dumps({**summary, "files": len(m.files), "ok": True}, indent=2))
        return
    typer.echo(
        f"backup {backup}: {len(m.files)} files, {_size(m.total_bytes)} verified "
        f"(llmeco {m.llmeco_version}, {m.store['kind']}, taken {m.created_at}, "
        f"ledger head {m.ledger['head_seq']})"
    )


@backup_app.command()
def restore(
    backup: Annotated[Path, typer.Argument(help="Backup directory to restore.")],
    home: Annotated[Path, typer.Option("--home", help="Home to restore into (new or empty).")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a non-empty home / target database.")
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="PostgreSQL backups: the (existing, empty) database to restore into; "
            "default LLMECO_DATABASE_URL.",
        ),
    ] = None,
    passphrase_env: Annotated[str | None, _PASSPHRASE_ENV] = None,
) -> None:
    """Verify BACKUP, then restore its store, files and (with the passphrase) keys."""
    from llmeco.backup.manifest import Manifest
    from llmeco.backup.restore import restore_backup
    from llmeco.settings import Settings

    if database_url is None and Manifest.read(backup).store.get("kind") == "postgresql":
        database_url = Settings().database_url or None
    with _bars() as (stage, progress):
        result = restore_backup(
            backup,
            home,
            force=force,
            database_url=database_url,
            passphrase=_passphrase(passphrase_env),
            on_stage=stage,
            progress=progress,
        )
    m = result.manifest
    typer.echo(
        f"restored {backup} into {result.home}: {m.store['kind']} store, ledger head "
        f"{m.ledger['head_seq']}, {sum(f.path.startswith('home/') for f in m.files)} files, "
        f"keys: {', '.join(result.keys) or 'none'} ({result.seconds:.1f} s)"
    )
    if m.store["kind"] == "postgresql":
        typer.echo("use it with LLMECO_HOME and LLMECO_DATABASE_URL set to the restored database")
    _warn(result.warnings)
