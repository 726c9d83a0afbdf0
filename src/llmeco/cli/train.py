"""``llmeco train pretrain|sft|classify --config run.yaml [--set key=value ...] [--resume]
[--nproc N]`` and ``llmeco train merge --base REF --adapter DIR --out DIR``.

With ``--nproc N`` (N > 1) the command relaunches itself under torchrun in N processes, each
running the same command as ``python -m llmeco train …`` (:mod:`llmeco.__main__`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

train_app = typer.Typer(help="Pretrain, fine-tune or train classifiers.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Run config (YAML).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a key, e.g. --set optim.lr=1e-3.")
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")]
NprocOpt = Annotated[
    int,
    typer.Option(
        "--nproc",
        min=1,
        help="Processes (torchrun; DDP, or FSDP with --set distributed=fsdp). "
        "gloo on CPU, nccl on CUDA (one GPU per process).",
    ),
]


def _run(
    task: str, config: Path | None, overrides: list[str] | None, resume: bool, nproc: int
) -> None:
    from llmeco.settings import Settings
    from llmeco.training import distributed
    from llmeco.training.config import load_config
    from llmeco.training.loop import train

    run = load_config(config, task, overrides)  # type: ignore[arg-type]  # validate first
    if nproc > 1 and not distributed.in_torchrun():
        args = [f"--config={config}"] if config is not None else []
        args += [f"--set={item}" for item in overrides or []]
        args += ["--resume"] if resume else []
        code = distributed.launch(nproc, task, args)
        if code != 0:
            raise typer.Exit(code)
        return
    console = Console(stderr=True)
    metrics = train(run, resume=resume, settings=Settings(), console=console)
    if distributed.env_rank() != 0:
        return  # one summary line per run, from rank 0
    shown = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
    )
    Console().print(f"saved model to {run.output_dir} ({shown})")


def _train_command(task: str, summary: str) -> Callable[..., None]:
    """The ``llmeco train TASK`` command: the same options for every task, run by :func:`_run`."""

    def command(
        config: ConfigOpt = None,
        set_: SetOpt = None,
        resume: ResumeOpt = False,
        nproc: NprocOpt = 1,
    ) -> None:
        _run(task, config, set_, resume, nproc)

    command.__name__ = command.__qualname__ = task
    command.__doc__ = summary
    return command


#: The training tasks, each a ``llmeco train TASK`` command, with the command's help.
TASKS: dict[str, str] = {
    "pretrain": "Pretrain a Llama model from a size preset on packed fixed-length blocks.",
    "sft": "Fine-tune a model on conversations (loss on assistant replies only); full or LoRA.",
    "classify": (
        "Train a sequence classifier (text → label) on a base model; accuracy and macro F1."
    ),
}

for _task, _summary in TASKS.items():
    train_app.command(_task)(_train_command(_task, _summary))


@train_app.command("merge")
def merge(
    base: Annotated[str, typer.Option("--base", help="Model the adapter was trained on.")],
    adapter: Annotated[Path, typer.Option("--adapter", help="LoRA adapter directory.")],
    out: Annotated[Path, typer.Option("--out", help="HF model directory to write.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Write into a used --out.")
    ] = False,
) -> None:
    """Merge a LoRA adapter into its base model: a plain HF directory the engine serves."""
    from llmeco.modeling.lora import merge_adapter
    from llmeco.registry.checkout import resolve_local
    from llmeco.settings import Settings

    console = Console(stderr=True)
    with console.status("merging"):
        merge_adapter(
            base,
            adapter,
            out,
            Settings(),
            overwrite=overwrite,
            console=console,
            resolve_ref=resolve_local,
        )
    Console().print(f"merged {adapter} into {base}: {out}")
