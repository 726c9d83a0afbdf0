"""``llmeco plugins list``: what is loaded, from where, and what each plugin registered."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

plugins_app = typer.Typer(help="Plugins: readers, loaders, backends, tasks, apps, tools.")

_SHORT = {
    "register_model_loaders": "loaders",
    "register_backends": "backends",
    "register_readers": "readers",
    "register_eval_tasks": "tasks",
    "register_apps": "apps",
    "register_tools": "tools",
    "register_redaction_rules": "redaction",
}


@plugins_app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    builtins: Annotated[
        bool, typer.Option("--builtins/--no-builtins", help="Include llmeco's own plugins.")
    ] = True,
) -> None:
    """Every plugin: its source (built-in or the distribution), what it registered, and the
    error of any plugin that failed to load (the server starts without it).

    Exits 1 when a plugin failed, so a deployment check can run it.
    """
    from llmeco.plugins import get_registry

    registry = get_registry()
    registry.load_all()
    rows = [p for p in registry.plugins if builtins or not p.builtin]
    failed = any(p.error and p.allowed for p in rows)
    if as_json:
        registered = {
            "readers": sorted(registry.readers()),
            "model_loaders": [x.name for x in registry.model_loaders()],
            "backends": sorted(registry.backends()),
            "eval_tasks": sorted(registry.eval_tasks()),
            "apps": registry.app_sources(),
            "tools": sorted(registry.tools()),
            "redaction_rules": [r.kind for r in registry.redaction_rules()],
        }
        typer.echo(
            json.dumps({"plugins": [p.to_dict() for p in rows], "registered": registered}, indent=2)
        )
    else:
        table = Table("plugin", "source", "registered", "status")
        for p in rows:
            what = ", ".join(f"{_SHORT[h]} {n}" for h, n in p.hooks.items())
            status = (
                "[yellow]not allowed (LLMECO_PLUGINS)[/]"
                if not p.allowed
                else f"[red]{p.error}[/]"
                if p.error
                else "[green]loaded[/]"
            )
            table.add_row(p.name if p.builtin else f"{p.name} ({p.module})", p.source, what, status)
        Console().print(table)
    if failed:
        raise typer.Exit(1)
