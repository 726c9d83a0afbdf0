"""``llmeco train pretrain|sft --config run.yaml [--set key=value ...] [--resume]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

train_app = typer.Typer(help="Pretrain or fine-tune models.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Run config (YAML).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a key, e.g. --set optim.lr=1e-3.")
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")]


def _run(task: str, config: Path | None, overrides: list[str] | None, resume: bool) -> None:
    from llmeco.settings import Settings
    from llmeco.training.config import load_config
    from llmeco.training.loop import train

    run = load_config(config, task, overrides)  # type: ignore[arg-type]
    console = Console(stderr=True)
    metrics = train(run, resume=resume, settings=Settings(), console=console)
    shown = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
    )
    Console().print(f"saved model to {run.output_dir} ({shown})")


@train_app.command("pretrain")
def pretrain(config: ConfigOpt = None, set_: SetOpt = None, resume: ResumeOpt = False) -> None:
    """Pretrain a Llama model from a size preset on packed fixed-length blocks."""
    _run("pretrain", config, set_, resume)


@train_app.command("sft")
def sft(config: ConfigOpt = None, set_: SetOpt = None, resume: ResumeOpt = False) -> None:
    """Fine-tune a model on conversations, with loss on the assistant replies only."""
    _run("sft", config, set_, resume)
