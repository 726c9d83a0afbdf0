"""``llmeco tune``: Optuna TPE + median pruning over real runs, the study in the project store
(SQLite beside the store file; PostgreSQL in its own schema), the best config written out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from llmeco.cli.main import app
from llmeco.errors import ConfigError
from llmeco.settings import Settings
from llmeco.store.db import Store
from llmeco.training.config import load_config
from llmeco.training.tune import parse_param, storage_url, tune

pytestmark = pytest.mark.slow


def test_param_parsing() -> None:
    spec = parse_param("lr=log:1e-5:1e-3")
    assert (spec.key, spec.kind, spec.low, spec.high) == ("optim.lr", "log", 1e-5, 1e-3)
    assert parse_param("batch_size=choice:2,4").choices == (2, 4)
    assert parse_param("lora_r=int:4:16").key == "lora.r"
    for bad, message in [
        ("lr", "expected NAME=KIND"),
        ("lr=log:0:1", "LOW > 0"),
        ("lr=float:2:1", "LOW < HIGH"),
        ("lr=gauss:1:2", "kind must be"),
        ("x=choice:1", "two or more"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_param(bad)


def test_cli_tune_sqlite(tmp_path: Path, pretrain_yaml: Callable[..., Path]) -> None:
    config = pretrain_yaml("tuned", task="pretrain", max_steps=6, eval_every=2, tensorboard=False)
    home = tmp_path / "home"
    result = CliRunner().invoke(
        app,
        ["tune", "--config", str(config), "--trials", "4", "--param", "lr=log:1e-4:3e-2",
         "--param", "optim.warmup_steps=int:0:3", "--study", "s1", "--out", str(tmp_path / "t")],
        env={"LLMECO_HOME": str(home)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "best: trial" in result.output
    best = load_config(tmp_path / "t" / "best.yaml", "pretrain")
    assert best.output_dir == load_config(config, "pretrain").output_dir  # train it for real
    assert 1e-4 <= best.optim.lr <= 3e-2 and best.max_steps == 6

    storage = optuna.storages.RDBStorage(f"sqlite:///{home / 'llmeco-optuna.db'}")
    study = optuna.load_study(study_name="s1", storage=storage)
    assert len(study.trials) == 4 and study.best_params["optim.lr"] == best.optim.lr
    states = {t.state.name for t in study.trials}
    assert states <= {"COMPLETE", "PRUNED"}
    assert all(t.intermediate_values for t in study.trials)  # every eval was reported
    Store.from_settings(Settings(home=home)).close()  # the store migrates beside the study


def test_tune_postgres_keeps_the_store_intact(
    tmp_path: Path, pretrain_yaml: Callable[..., Path], postgres_url: str
) -> None:
    """Optuna's own Alembic table lives in schema ``optuna``: the store still migrates."""
    settings = Settings(home=tmp_path / "home", database_url=postgres_url)
    Store.from_settings(settings).close()
    config = pretrain_yaml("pg", max_steps=4, eval_every=2, tensorboard=False)
    result = tune(
        config, "pretrain", [], [parse_param("lr=log:1e-3:1e-2")], 2,
        settings=settings, study_name="pg", out=tmp_path / "t",
    )  # fmt: skip
    assert len(result.trials) == 2
    url, kwargs = storage_url(settings)
    study = optuna.load_study(
        study_name="pg", storage=optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    )
    assert len(study.trials) == 2
    store = Store.from_settings(settings)  # migrating again finds its own version table
    store.close()
    assert yaml.safe_load((tmp_path / "t" / "best.yaml").read_text())["max_steps"] == 4
