"""``llmeco eval``: run an evaluation suite on a model; compare two runs.

::

    llmeco eval run --model support@staging --suite examples/eval/suite.yaml --register
    llmeco eval compare RUN_A RUN_B

A run writes ``results.json``, ``report.md``, ``chart.png`` and ``predictions/`` to ``--out``
(default ``LLMECO_HOME/evals/RUN_ID``). ``--register`` attaches the run to the registry
version the model reference names, which is what promotion gates compare.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

eval_app = typer.Typer(help="Evaluate models on task suites; compare runs.", no_args_is_help=True)


@eval_app.command("run")
def run(
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="Model reference: default, a dir, NAME@alias, NAME:N."),
    ],
    suite: Annotated[Path, typer.Option("--suite", "-s", help="Suite YAML file.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (default HOME/evals/RUN_ID).")
    ] = None,
    register: Annotated[
        bool,
        typer.Option("--register", help="Attach the run to the registry version --model names."),
    ] = False,
    task: Annotated[
        list[str] | None, typer.Option("--task", "-t", help="Only this task (repeatable).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most N records per task (quick checks).")
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Generation requests in flight at once.")
    ] = 32,
    batch_tokens: Annotated[
        int, typer.Option(min=16, help="Tokens per scoring forward pass (batch size × length).")
    ] = 4096,
    via_server: Annotated[
        str | None,
        typer.Option(
            "--via-server",
            help="Score log-likelihoods through this llmeco server's prompt logprobs "
            "(e.g. http://127.0.0.1:8000) instead of a local copy of the model; the served "
            "model's name must be --model's.",
        ),
    ] = None,
) -> None:
    """Evaluate a model on a suite; write JSON, Markdown and a PNG chart."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from llmeco.errors import ConfigError
    from llmeco.evaluation.runner import run_suite
    from llmeco.evaluation.suite import load_suite
    from llmeco.registry.refs import parse_ref
    from llmeco.settings import Settings

    settings = Settings()
    loaded = load_suite(suite)
    registry_ref = parse_ref(model) if not Path(model).exists() else None
    if register and registry_ref is None:
        raise ConfigError(
            f"--register needs a registry reference (NAME@ALIAS or NAME:VERSION), not {model!r}; "
            "register the directory first with `llmeco models register DIR --name NAME`"
        )
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        ids: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in ids:
                ids[name] = bar.add_task(name, total=total)
            bar.update(ids[name], completed=done, total=total)

        record, run_dir = asyncio.run(
            run_suite(
                loaded,
                model,
                settings,
                out_dir=out,
                tasks=task,
                limit=limit,
                batch_tokens=batch_tokens,
                concurrency=concurrency,
                progress=progress,
                scoring_url=via_server,
            )
        )
    print_results(record)
    Console().print(f"run {record['run_id']} written to {run_dir}", highlight=False)
    if register:
        from llmeco.evaluation.report import metric_directions
        from llmeco.registry import Registry

        info = record["model"]["registry"]
        registry = Registry.open(settings)
        attached = registry.attach_eval(
            info["name"],
            info["version"],
            record,
            str(run_dir),
            directions=metric_directions(record),
        )
        Console().print(
            f"attached to {attached.name}:{attached.version} (suite {attached.suite})",
            highlight=False,
        )


def print_results(record: dict[str, Any]) -> None:
    """The metrics of a run as a table on stdout."""
    from rich.table import Table

    from llmeco.evaluation.report import format_value

    table = Table(
        "task",
        "type",
        "n",
        "metric",
        "value",
        title=f"{record['suite']['name']} · {record['model']['ref']}",
    )
    for name, task in record["tasks"].items():
        for i, (metric, value) in enumerate(task["metrics"].items()):
            first = i == 0
            table.add_row(
                name if first else "",
                task["type"] if first else "",
                str(task["n"]) if first else "",
                metric,
                format_value(value),
            )
    Console().print(table)


@eval_app.command("compare")
def compare(
    run_a: Annotated[Path, typer.Argument(help="Run directory (or its results.json): baseline.")],
    run_b: Annotated[Path, typer.Argument(help="Run directory (or its results.json): candidate.")],
) -> None:
    """Side-by-side metrics of two runs with deltas (green: B better, red: B worse)."""
    from rich.table import Table

    from llmeco.evaluation.report import compare_runs, format_value, load_run

    a, b = load_run(run_a), load_run(run_b)
    if a["suite"]["sha256"] != b["suite"]["sha256"]:
        Console(stderr=True).print(
            "note: the runs used different suite contents (sha256 differs)", style="yellow"
        )
    table = Table(
        "task",
        "metric",
        f"A: {a['model']['ref']}",
        f"B: {b['model']['ref']}",
        "delta",
        title=f"{a['run_id']}  vs  {b['run_id']}",
    )
    for row in compare_runs(a, b):
        delta = row.delta
        style = {True: "green", False: "red", None: ""}[row.better]
        shown = "—" if delta is None else f"{delta:+.4f}"
        table.add_row(
            row.task,
            row.metric,
            "—" if row.a is None else format_value(row.a),
            "—" if row.b is None else format_value(row.b),
            f"[{style}]{shown}[/]" if style else shown,
        )
    Console().print(table)
