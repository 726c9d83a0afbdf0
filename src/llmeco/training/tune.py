"""Hyperparameter search: Optuna TPE over config keys, median pruning on the eval metric,
the study kept in the project store, the best config written out.

Each trial is an ordinary run (:func:`llmeco.training.loop.train`) of the base config with
the trial's values set; every evaluation is reported to Optuna, which stops trials that
are worse than the median of earlier trials at the same step.

Where the study lives: Optuna keeps its own tables *and its own Alembic version table*, which
would collide with the store's. On PostgreSQL the study therefore goes into the schema
``optuna`` of the store's database; on SQLite into ``llmeco-optuna.db`` beside the store's
file (SQLite has no schemas).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from llmeco.errors import ConfigError
from llmeco.settings import Settings
from llmeco.training.config import Task, TrainConfig, load_config

#: Short names accepted in ``--param`` for common keys.
ALIASES = {
    "lr": "optim.lr",
    "weight_decay": "optim.weight_decay",
    "warmup_steps": "optim.warmup_steps",
    "min_lr_ratio": "optim.min_lr_ratio",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
}
OPTUNA_SCHEMA = "optuna"
SQLITE_FILE = "llmeco-optuna.db"

Kind = Literal["log", "float", "int", "choice"]


@dataclass(frozen=True)
class ParamSpec:
    """One searched key: ``name=log:1e-5:1e-3``, ``float:0:0.3``, ``int:4:64``, ``choice:a,b``."""

    key: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The trial's value for this key."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log")


def parse_param(text: str) -> ParamSpec:
    """Parse one ``--param`` value.

    Raises:
        ConfigError: malformed, an unknown kind, or bounds that make no sense.
    """
    name, sep, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    if not sep or not name or not re.fullmatch(r"[A-Za-z_][\w.]*", name.strip()):
        raise ConfigError(f"--param {text!r}: expected NAME=KIND:..., e.g. lr=log:1e-5:1e-3")
    key = ALIASES.get(name.strip(), name.strip())
    if kind == "choice":
        choices = tuple(yaml.safe_load(c) for c in rest.split(",") if c.strip())
        if len(choices) < 2:
            raise ConfigError(f"--param {text!r}: choice needs two or more values: choice:a,b")
        return ParamSpec(key, "choice", choices=choices)
    if kind not in ("log", "float", "int"):
        raise ConfigError(f"--param {text!r}: kind must be log, float, int or choice")
    try:
        low_text, high_text = rest.split(":")
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise ConfigError(f"--param {text!r}: expected {kind}:LOW:HIGH") from None
    if not low < high or (kind == "log" and low <= 0) or not math.isfinite(high):
        raise ConfigError(f"--param {text!r}: need LOW < HIGH (and LOW > 0 for log)")
    return ParamSpec(key, kind, low, high)  # type: ignore[arg-type]


def storage_url(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The Optuna RDB URL and engine options for the project store (see the module doc)."""
    from sqlalchemy import create_engine, text

    from llmeco.store.db import database_url

    url = database_url(settings)
    if url.startswith("postgresql"):
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{OPTUNA_SCHEMA}"'))
        finally:
            engine.dispose()
        return url, {"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}}
    if url.startswith("sqlite:///"):
        store_file = Path(url.removeprefix("sqlite:///"))
        store_file.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{store_file.parent / SQLITE_FILE}", {}
    raise ConfigError(f"llmeco tune supports SQLite and PostgreSQL stores, not {url.split(':')[0]}")


def open_study(
    name: str, direction: Literal["minimize", "maximize"], settings: Settings, seed: int
) -> Any:
    """Create or reopen the study ``name`` (TPE sampler, median pruner) in the store."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, engine_kwargs = storage_url(settings)
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        load_if_exists=True,
    )


@dataclass(frozen=True)
class TuneResult:
    """The outcome of a search: the best trial and where its config was written."""

    study: str
    metric: str
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    best_config: Path
    trials: list[dict[str, Any]]


def tune(
    config_path: Path | None,
    task: Task,
    overrides: Sequence[str],
    params: Sequence[ParamSpec],
    trials: int,
    *,
    settings: Settings,
    study_name: str | None = None,
    out: Path | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Run ``trials`` more trials of the study and write the best config to ``OUT/best.yaml``.

    Raises:
        ConfigError: no params, a config that does not validate with a trial's values, or
            a study whose trials all failed or were pruned.
    """
    import optuna

    from llmeco.training.loop import train

    if not params:
        raise ConfigError("give at least one --param, e.g. --param lr=log:1e-5:1e-3")
    base = load_config(config_path, task, list(overrides))
    metric = base.early_stopping.metric
    direction: Literal["minimize", "maximize"] = "minimize" if metric == "eval_loss" else "maximize"
    out = out or base.output_dir.parent / f"{base.output_dir.name}-tune"
    name = study_name or f"{task}-{base.output_dir.name}"
    study = open_study(name, direction, settings, base.seed)

    def objective(trial: Any) -> float:
        values = {p.key: p.suggest(trial) for p in params}
        trial_dir = out / f"trial-{trial.number:03d}"
        sets = [*overrides, *(f"{k}={json.dumps(v)}" for k, v in values.items())]
        sets.append(f"output_dir={trial_dir}")
        config = load_config(config_path, task, sets)
        if not (config.eval_every or config.epochs):
            raise ConfigError("tuning needs evaluations: set eval_every (or epochs)")

        def report(step: int, metrics: dict[str, float]) -> None:
            trial.report(metrics[metric], step)
            if step > 0 and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        result = train(config, settings=settings, show_progress=False, on_eval=report)
        return float(result[metric])

    def callback(study: Any, trial: Any) -> None:
        if on_trial is not None:
            on_trial(_trial_row(trial))

    study.optimize(objective, n_trials=trials, callbacks=[callback], catch=())
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ConfigError(f"study {name}: no trial completed (all pruned or failed)")
    best = study.best_trial
    best_values = [f"{k}={json.dumps(v)}" for k, v in best.params.items()]
    best_config = load_config(config_path, task, [*overrides, *best_values])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "best.yaml"
    path.write_text(_config_yaml(best_config, name, metric, best.value))
    summary = {
        "study": name,
        "metric": metric,
        "direction": direction,
        "best_value": best.value,
        "best_params": best.params,
        "best_trial": best.number,
        "trials": [_trial_row(t) for t in study.trials],
    }
    (out / "best.json").write_text(json.dumps(summary, indent=2) + "\n")
    return TuneResult(
        name, metric, best.value, dict(best.params), best.number, path, summary["trials"]
    )


def _trial_row(trial: Any) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "params": trial.params,
        "last_step": trial.last_step,
    }


def _config_yaml(config: TrainConfig, study: str, metric: str, value: float) -> str:
    data = config.model_dump(mode="json", exclude={"task"})
    head = (
        f"# Best config of study {study} ({metric} = {value:.6g}).\n"
        f"#   llmeco train {config.task} --config best.yaml\n"
    )
    return head + str(yaml.safe_dump(data, sort_keys=False))
