"""``llmeco tune --config run.yaml --trials N --param lr=log:1e-5:1e-3 ...``: Optuna search."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


def tune(
    config: Annotated[Path, typer.Option("--config", "-c", help="Base run config (YAML).")],
    param: Annotated[
        list[str],
        typer.Option(
            "--param",
            help="Searched key: NAME=log:LOW:HIGH | float:LOW:HIGH | int:LOW:HIGH | choice:A,B "
            "(NAME: a dotted config key, or lr, weight_decay, warmup_steps, lora_r …).",
        ),
    ],
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trials to run.")] = 10,
    task: Annotated[
        str | None,
        typer.Option("--task", help="pretrain, sft or classify (default: the config's)."),
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a key in every trial.")
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (reuse it to add trials).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for trial runs and best.yaml.")
    ] = None,
) -> None:
    """Search hyperparameters with Optuna (TPE, median pruning); study kept in the store."""
    import yaml

    from llmeco.errors import ConfigError
    from llmeco.settings import Settings
    from llmeco.training.tune import parse_param
    from llmeco.training.tune import tune as run_tune

    specs = [parse_param(p) for p in param]
    if task is None:
        try:
            loaded = yaml.safe_load(config.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{config}: cannot read config ({exc})") from exc
        task = loaded.get("task") if isinstance(loaded, dict) else None
    if task not in ("pretrain", "sft", "classify"):
        raise ConfigError(
            "say what to train: `task: pretrain|sft|classify` in the config or --task"
        )
    console = Console(stderr=True)

    def show(row: dict[str, Any]) -> None:
        value = "-" if row["value"] is None else f"{row['value']:.5g}"
        console.print(f"trial {row['number']}: {row['state'].lower()} {value} {row['params']}")

    with console.status(f"tuning ({trials} trials)"):
        result = run_tune(
            config, task, set_ or [], specs, trials,  # type: ignore[arg-type]
            settings=Settings(), study_name=study, out=out, on_trial=show,
        )  # fmt: skip
    table = Table(title=f"study {result.study} ({result.metric})")
    for column in ("trial", "state", "value", "params"):
        table.add_column(column)
    for row in result.trials:
        value = "" if row["value"] is None else f"{row['value']:.5g}"
        table.add_row(str(row["number"]), row["state"].lower(), value, str(row["params"]))
    Console().print(table)
    Console().print(
        f"best: trial {result.best_trial}, {result.metric}={result.best_value:.5g}, "
        f"{result.best_params}; config written to {result.best_config}"
    )
