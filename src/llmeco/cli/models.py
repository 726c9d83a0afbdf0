"""``llmeco models``: the model registry — register, list, show, alias, promote, rollback,
diff, history, attach.

::

    llmeco models register runs/sft-support --name support      # support:1
    llmeco models alias support 1 staging
    llmeco eval run --model support@staging --suite examples/eval/suite.yaml --register
    llmeco models promote support --gate "support_qa.token_f1:shipped:0.02"
    llmeco models rollback support
    llmeco models history support --at 2026-11-01T12:00

Every alias move is also appended to the audit ledger (``LLMECO_AUDIT``, on by default) as
an ``alias.move`` admin action with who, when, from and to.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from llmeco.registry import AliasEvent, Registry, Version
    from llmeco.settings import Settings

models_app = typer.Typer(
    help="Model registry: versions, aliases (promote/rollback), lineage, history.",
    no_args_is_help=True,
)

_ACTOR = typer.Option("--actor", help="Who is acting (recorded in the history and audit ledger).")


def default_actor() -> str:
    """``cli:USER`` — the operator at this terminal."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _open(settings: Settings | None = None) -> Registry:
    """The registry, with alias moves written to the audit ledger when auditing is on."""
    from llmeco.registry import Registry
    from llmeco.settings import Settings

    settings = settings or Settings()
    if not settings.audit:
        return Registry.open(settings)

    def record(event: AliasEvent) -> None:
        from llmeco.governance.audit import AuditLedger

        with AuditLedger.open(settings, registry.store) as ledger:
            ledger.record_admin(event.actor, "alias.move", event.as_dict()).result(30)

    registry = Registry.open(settings, record)
    return registry


def _split_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` (latest), ``NAME:N`` or ``NAME@alias`` → (name, version)."""
    from llmeco.registry.refs import check_name, parse_ref

    parsed = parse_ref(ref)
    if parsed is None:
        return check_name(ref), None
    if parsed.version is not None:
        return parsed.name, parsed.version
    return parsed.name, _open().resolve(parsed.name, parsed.alias or "").version


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@models_app.command()
def register(
    directory: Annotated[
        str, typer.Argument(help="Model directory (or any model reference, e.g. default).")
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name to add a version to.")],
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    alias: Annotated[
        list[str] | None, typer.Option("--alias", help="Also point this alias at it (repeatable).")
    ] = None,
    actor: Annotated[str | None, _ACTOR] = None,
) -> None:
    """Copy a model directory into the artifact store as a new immutable version."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from llmeco.settings import Settings

    settings = Settings()
    path = Path(directory)
    if not path.is_dir():
        from llmeco.modeling.load import resolve_model
        from llmeco.registry.checkout import resolve_local

        path = resolve_model(directory, settings, resolve_ref=resolve_local).path
    registry = _open(settings)
    who = actor or default_actor()
    with Progress(
        TextColumn("copying"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("copy", total=None)
        version = registry.register(
            path,
            name,
            actor=who,
            description=description,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    for a in alias or []:
        registry.set_alias(name, version.version, a, actor=who)
    typer.echo(version.ref)
    Console(stderr=True).print(
        f"registered {version.ref}: {len(version.files)} files, {_size(version.total_bytes)}"
        + (
            f"; lineage from training.json (base {version.lineage.get('origin')})"
            if version.lineage
            else ""
        ),
        highlight=False,
    )


@models_app.command("list")
def list_models() -> None:
    """Registered models with their latest version and aliases."""
    from rich.table import Table

    table = Table("model", "latest", "aliases", "created")
    for m in _open().models():
        aliases = ", ".join(f"{a}→{v}" for a, v in m.aliases.items()) or "-"
        table.add_row(m.name, str(m.latest_version), aliases, _when(m.created_at))
    Console().print(table)


@models_app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME (latest), NAME:VERSION or NAME@ALIAS.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One version: files with sha256, lineage, aliases and attached eval runs."""
    registry = _open()
    name, number = _split_ref(ref)
    v = registry.get(name, number)
    evals = registry.evals(v.name, v.version)
    if as_json:
        typer.echo(json.dumps(_version_dict(v, evals), indent=2))
        return
    out = Console(highlight=False)
    out.print(f"[bold]{v.ref}[/]  aliases: {', '.join(v.aliases) or '-'}")
    out.print(f"created {_when(v.created_at)} by {v.created_by} from {v.source}")
    if v.description:
        out.print(f"description: {v.description}")
    out.print(f"{len(v.files)} files, {_size(v.total_bytes)}:")
    for f in v.files:
        out.print(f"  {f.sha256[:16]}…  {_size(f.size):>9}  {f.path}")
    if v.lineage:
        keys = (
            "task",
            "origin",
            "data_manifest_sha256",
            "data_sha256",
            "config_fingerprint",
            "code_version",
        )
        out.print("lineage (training.json):")
        for k in keys:
            if k in v.lineage:
                out.print(f"  {k}: {json.dumps(v.lineage[k])}")
    for e in evals:
        top = ", ".join(f"{k}={val:.4g}" for k, val in list(e.metrics.items())[:6])
        out.print(f"eval {e.run_id} (suite {e.suite}): {top}")


def _version_dict(v: Version, evals: list[Any]) -> dict[str, Any]:
    return {
        "ref": v.ref,
        "aliases": list(v.aliases),
        "created_at": v.created_at.isoformat(),
        "created_by": v.created_by,
        "source": v.source,
        "description": v.description,
        "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in v.files],
        "lineage": v.lineage,
        "evals": [
            {"run_id": e.run_id, "suite": e.suite, "metrics": e.metrics, "path": e.path}
            for e in evals
        ],
    }


@models_app.command()
def alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. staging.")],
    actor: Annotated[str | None, _ACTOR] = None,
) -> None:
    """Point ALIAS of NAME at VERSION (recorded in the history)."""
    event = _open().set_alias(name, version, alias_name, actor=actor or default_actor())
    if event is None:
        typer.echo(f"{name}@{alias_name} already is {name}:{version}")
    else:
        _print_move(event)


@models_app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    source: Annotated[str, typer.Option("--from", help="Alias of the candidate.")] = "staging",
    target: Annotated[str, typer.Option("--to", help="Alias to move.")] = "production",
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            help="METRIC:SUITE:MAX_DROP, e.g. 'intents.accuracy:shipped:0.02' or '…:5%' "
            "(repeatable); METRIC is TASK.METRIC from the eval results.",
        ),
    ] = None,
    actor: Annotated[str | None, _ACTOR] = None,
) -> None:
    """Point --to (production) at the version --from (staging) points at, if every gate passes."""
    from llmeco.registry.lifecycle import Gate
    from llmeco.registry.lifecycle import promote as do_promote

    registry = _open()
    gates = tuple(Gate.parse(g) for g in gate or [])
    event, results = do_promote(
        registry, name, actor=actor or default_actor(), source=source, target=target, gates=gates
    )
    for r in results:
        Console(stderr=True).print(
            r.describe(name, event.to_version or 0, event.from_version), highlight=False
        )
    _print_move(event)


@models_app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str, typer.Option("--alias", help="Alias to roll back.")] = "production",
    actor: Annotated[str | None, _ACTOR] = None,
) -> None:
    """Move the alias back to the version it pointed to before the current one."""
    from llmeco.registry.lifecycle import rollback as do_rollback

    _print_move(do_rollback(_open(), name, actor=actor or default_actor(), alias=alias_name))


def _print_move(event: AliasEvent) -> None:
    before = f"{event.name}:{event.from_version}" if event.from_version is not None else "(unset)"
    typer.echo(
        f"{event.name}@{event.alias}: {before} → {event.name}:{event.to_version} ({event.action})"
    )


@models_app.command()
def history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Show where each alias pointed at this time (ISO 8601, UTC if no zone)."
        ),
    ] = None,
) -> None:
    """Every alias move (who, when, from, to), or the aliases as they were at --at."""
    from rich.table import Table

    from llmeco.errors import InvalidRequest

    registry = _open()
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise InvalidRequest(
                f"--at {at!r} is not an ISO 8601 time, e.g. 2026-11-01T12:00"
            ) from None
        state = registry.aliases_at(name, when)
        if alias_name is not None:
            state = {k: v for k, v in state.items() if k == alias_name}
        for a, v in sorted(state.items()):
            typer.echo(f"{name}@{a} = {name}:{v}")
        if not state:
            typer.echo(f"no aliases of {name} were set at {at}")
        return
    table = Table("#", "when", "alias", "from", "to", "action", "who")
    for e in registry.history(name, alias_name):
        table.add_row(
            str(e.id),
            _when(e.at),
            e.alias,
            "-" if e.from_version is None else str(e.from_version),
            "-" if e.to_version is None else str(e.to_version),
            e.action,
            e.actor,
        )
    Console().print(table)


@models_app.command()
def diff(
    ref_a: Annotated[str, typer.Argument(help="Version A: NAME:N, NAME@ALIAS or NAME.")],
    ref_b: Annotated[str, typer.Argument(help="Version B.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Config, lineage, file and metric differences from version A to version B."""
    from rich.table import Table

    from llmeco.evaluation.report import format_value
    from llmeco.registry.compare import diff_versions

    registry = _open()
    a = registry.get(*_split_ref(ref_a))
    b = registry.get(*_split_ref(ref_b))
    d = diff_versions(registry, a, b)
    if as_json:
        typer.echo(json.dumps(d.as_dict(), indent=2, default=str))
        return
    out = Console(highlight=False)
    out.print(f"[bold]{d.a} → {d.b}[/]")
    for title, changes in (("config.json", d.config), ("lineage", d.lineage)):
        if changes:
            table = Table("key", d.a, d.b, title=title)
            for key, x, y in changes:
                table.add_row(key, _short(x), _short(y))
            out.print(table)
        else:
            out.print(f"{title}: no differences")
    for label, items in (
        ("added", d.files_added),
        ("removed", d.files_removed),
        ("changed", d.files_changed),
    ):
        if items:
            out.print(f"files {label}: {', '.join(items)}")
    if d.metrics:
        table = Table("suite", "metric", d.a, d.b, "delta", title="metrics (latest run per suite)")
        for m in d.metrics:
            style = {True: "green", False: "red", None: ""}[m.improved]
            delta = "—" if m.delta is None else f"{m.delta:+.4f}"
            table.add_row(
                m.suite,
                m.metric,
                "—" if m.a is None else format_value(m.a),
                "—" if m.b is None else format_value(m.b),
                f"[{style}]{delta}[/]" if style else delta,
            )
        out.print(table)


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


@models_app.command()
def attach(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    run_dir: Annotated[Path, typer.Argument(help="An eval run directory (or its results.json).")],
) -> None:
    """Attach an existing evaluation run to a version (what `eval run --register` does)."""
    from llmeco.evaluation.report import load_run, metric_directions

    registry = _open()
    name, number = _split_ref(ref)
    version = number or registry.get(name).version
    results = load_run(run_dir)
    record = registry.attach_eval(
        name,
        version,
        results,
        str(run_dir),
        directions=metric_directions(results),
    )
    typer.echo(f"attached run {record.run_id} (suite {record.suite}) to {name}:{record.version}")


@models_app.command()
def verify(ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")]) -> None:
    """Re-hash every file of a version against the registry; fails naming a bad file."""
    from llmeco.registry.checkout import checkout

    version, path = checkout(_open(), ref)
    typer.echo(f"{version.ref}: {len(version.files)} files verified ({path})")
