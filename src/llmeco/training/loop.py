"""The one training loop (pretrain, sft, classify): AdamW, warmup + cosine, accumulation,
clipping, bf16 autocast, periodic evaluation, early stopping, checkpoints, exact resume,
data parallelism (DDP/FSDP), a rich progress bar, JSONL + TensorBoard logs and a loss plot.

Read :func:`train` top to bottom; :func:`accumulate_step` is the part the gradient
accumulation and DDP tests pin down (loss normalised by the targets of the whole global
batch, whatever the split into micro-batches and processes).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from llmeco.errors import ConfigError
from llmeco.settings import Settings
from llmeco.training import distributed as D
from llmeco.training.checkpoint import (
    latest_checkpoint,
    read_checkpoint,
    read_meta,
    restore_rng,
    save_checkpoint,
)
from llmeco.training.config import TrainConfig
from llmeco.training.objectives import Autocast, ExampleStream, Objective
from llmeco.training.output import write_output
from llmeco.training.runlog import LOG_FILE, RunLog, plot_losses
from llmeco.training.setup import build_examples, build_parts, pick_device

__all__ = ["LOG_FILE", "accumulate_step", "lr_lambda", "make_optimizer", "train"]

#: Called after each evaluation with (step, metrics); may raise to stop the run (tuning).
EvalCallback = Callable[[int, dict[str, float]], None]


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak lr at ``step``: linear warmup, then cosine down to ``min_ratio``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(
    model: torch.nn.Module, config: TrainConfig, total_steps: int
) -> tuple[Any, Any]:
    """AdamW over the trainable parameters (weight decay on matrices only) and its
    warmup + cosine scheduler over ``total_steps``. On CUDA the fused AdamW kernel is used."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: every parameter is frozen")
    o = config.optim
    fused = all(p.device.type == "cuda" for _, p in params)
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for _, p in params if p.dim() >= 2], "weight_decay": o.weight_decay},
            {"params": [p for _, p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=o.lr,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
        fused=fused or None,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, o.warmup_steps, total_steps, o.min_lr_ratio)
    )
    return optimizer, scheduler


def autocast_for(config: TrainConfig, device: torch.device) -> Autocast:
    """The autocast context factory of the run's precision (bf16 or none)."""
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    if bf16:
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def accumulate_step(
    model: Any,
    examples: Sequence[Any],
    micro_batch: int,
    objective: Objective,
    device: torch.device,
    *,
    ctx: D.DistContext | None = None,
    autocast: Autocast = contextlib.nullcontext,
) -> tuple[torch.Tensor, int]:
    """Forward/backward one global batch; return (its mean loss, its target count).

    This process takes its share of ``examples`` (all of them when alone) in micro-batches
    of ``micro_batch``. Each micro-batch's summed loss is divided by the targets of the
    *whole* global batch, so the accumulated gradient equals one big batch's, whatever the
    split; under DDP it is also multiplied by the world size, since DDP averages. The loss
    stays a device tensor (no host sync per micro-batch); read it with ``float()``.
    """
    ctx = ctx or D.DistContext()
    local = torch.zeros((), device=device)
    total = sum(objective.targets(e) for e in examples)
    if total == 0:
        return local, 0
    mine = D.shard(examples, ctx)
    batches = [mine[i : i + micro_batch] for i in range(0, len(mine), micro_batch)]
    for j, chunk in enumerate(batches):
        batch = {k: v.to(device, non_blocking=True) for k, v in objective.collate(chunk).items()}
        with D.gradient_sync(model, ctx, enabled=j == len(batches) - 1):
            with autocast():
                loss = objective.summed_loss(model, batch) / total
            (loss * ctx.world).backward()  # type: ignore[no-untyped-call]
        local += loss.detach().float()
    return D.all_reduce_sum(local, ctx), total


def _progress(console: Console, disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]step {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[tps]:.0f} tok/s"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )


class EarlyStopping:
    """Counts evaluations without improvement of one metric (lower-is-better for losses)."""

    def __init__(self, metric: str, patience: int, min_delta: float) -> None:
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.higher_is_better = metric != "eval_loss"
        self.best: float | None = None
        self.best_step = 0
        self.bad_evals = 0

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Record an evaluation; True when the run should stop."""
        value = metrics[self.metric]
        sign = 1.0 if self.higher_is_better else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_step, self.bad_evals = value, step, 0
        else:
            self.bad_evals += 1
        return self.patience > 0 and self.bad_evals >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for checkpoints."""
        return {"best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's state."""
        self.best, self.best_step = state["best"], int(state["best_step"])
        self.bad_evals = int(state["bad_evals"])


def enable_checkpointing(model: Any) -> None:
    """Recompute each decoder layer's activations in backward (non-reentrant, so it works
    with frozen inputs such as LoRA's base and with DDP)."""
    kwargs = {"use_reentrant": False}
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:  # transformers < 5
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _trainable_only(config: TrainConfig) -> bool:
    """Checkpoints hold only the trained tensors when the base is frozen (LoRA, head only)."""
    return config.lora is not None or config.model.freeze_base


def _checkpoint_weights(
    core: Any, config: TrainConfig, ctx: D.DistContext
) -> dict[str, torch.Tensor]:
    state = D.model_state(core, config.distributed, ctx)
    if not _trainable_only(config):
        return state
    names = {n for n, p in core.named_parameters() if p.requires_grad}
    return {k: v for k, v in state.items() if k in names}


def _restore(
    path: Path, core: Any, optimizer: Any, scheduler: Any, config: TrainConfig, ctx: D.DistContext
) -> dict[str, Any]:
    """Load a checkpoint into the run; return its meta. Raises ConfigError on a mismatch."""
    meta = read_meta(path)
    if meta.get("fingerprint") != config.fingerprint():
        raise ConfigError(f"{path} was written by a different config; resume with the same one")
    if int(meta.get("world", 1)) != ctx.world:
        raise ConfigError(
            f"{path} was written by {meta.get('world', 1)} process(es); resume with "
            f"--nproc {meta.get('world', 1)} so the data order stays the same"
        )
    weights, optim_state, meta = read_checkpoint(path)
    device = next(core.parameters()).device
    weights = {k: v.to(device) for k, v in weights.items()}
    missing, unexpected = D.load_model_state(core, weights, config.distributed, ctx)
    trainable = {n for n, p in core.named_parameters() if p.requires_grad}
    absent = (trainable - set(weights)) if _trainable_only(config) else set(missing)
    if unexpected or absent:
        raise ConfigError(
            f"{path}: checkpoint does not match this model "
            f"(missing {sorted(absent)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    D.load_optimizer_state(core, optimizer, optim_state, config.distributed, ctx)
    scheduler.load_state_dict(meta["scheduler"])
    restore_rng(meta)
    return meta


def _prepare_output(config: TrainConfig, resume: bool, ctx: D.DistContext) -> Path | None:
    """Check ``output_dir`` (empty, or resumable) and return the checkpoint to resume from."""
    out = config.output_dir
    checkpoint = latest_checkpoint(out) if resume else None
    if resume and checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    if not resume and out.exists() and any(out.iterdir()):
        raise ConfigError(
            f"{out} is not empty; pass --resume to continue or pick another output_dir"
        )
    D.barrier(ctx)  # every rank has looked before the main one creates files
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    return checkpoint


def _total_steps(config: TrainConfig, n_train: int, global_batch: int) -> tuple[int, int]:
    """(total optimizer steps, steps per epoch)."""
    per_epoch = max(1, math.ceil(n_train / global_batch))
    if config.epochs is None:
        return config.max_steps, per_epoch
    return max(1, math.ceil(config.epochs * per_epoch)), per_epoch


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    settings: Settings | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    stop_after: int | None = None,
    on_eval: EvalCallback | None = None,
) -> dict[str, Any]:
    """Run ``config`` to the end and write the HF model directory; return final metrics.

    Under torchrun (``llmeco train … --nproc N``) every process calls this; rank 0 logs and
    writes. ``resume`` continues from the newest checkpoint in ``output_dir`` exactly
    (weights or adapters, optimizer, scheduler, RNG, data position, early-stopping state).
    ``stop_after`` stops after that step without writing the final model — an interrupted
    run, for tests. ``on_eval`` sees every evaluation (``llmeco tune`` prunes through it).

    Raises:
        ConfigError: output_dir already used (without ``resume``), a checkpoint from a
            different config or process count, or data that yields no examples.
    """
    settings = settings or Settings()
    console = console or Console(stderr=True)
    if settings.threads:
        # LLMECO_THREADS: on a shared CPU, fewer OpenMP threads than runnable processes
        # avoids the spin-wait collapse of oversubscribed thread teams.
        torch.set_num_threads(settings.threads)
    wants_cuda = config.device != "cpu" and torch.cuda.is_available()
    ctx = D.init_distributed("cuda" if wants_cuda else "cpu")
    try:
        return _train(config, resume, settings, console, show_progress, stop_after, on_eval, ctx)
    finally:
        D.shutdown(ctx)


def _train(
    config: TrainConfig,
    resume: bool,
    settings: Settings,
    console: Console,
    show_progress: bool,
    stop_after: int | None,
    on_eval: EvalCallback | None,
    ctx: D.DistContext,
) -> dict[str, Any]:
    started = time.perf_counter()
    device = pick_device(config, ctx.local_rank)
    checkpoint = _prepare_output(config, resume, ctx)
    parts = build_parts(config, settings, device)
    train_examples = build_examples(config, parts, "train")
    val_examples = build_examples(config, parts, "validation")
    stream = ExampleStream(train_examples, config.seed)
    global_batch = config.batch_size * config.grad_accum * ctx.world
    total_steps, per_epoch = _total_steps(config, len(train_examples), global_batch)
    eval_every = config.eval_every or (per_epoch if config.epochs is not None else 0)

    core = parts.model
    core.train()
    if config.gradient_checkpointing:
        enable_checkpointing(core)
    wrapped = D.wrap_model(core, ctx, config.distributed, device)
    if config.compile:
        wrapped = torch.compile(wrapped)
    optimizer, scheduler = make_optimizer(core, config, total_steps)
    autocast = autocast_for(config, device)
    stopper = EarlyStopping(
        config.early_stopping.metric,
        config.early_stopping.patience,
        config.early_stopping.min_delta,
    )
    step = 0
    if checkpoint is not None:
        meta = _restore(checkpoint, core, optimizer, scheduler, config, ctx)
        step = int(meta["step"])
        stream.load_state_dict(meta["data"])
        stopper.load_state_dict(meta["early_stopping"])
        if ctx.is_main:
            console.print(f"resumed from {checkpoint} at step {step}")
    log = RunLog(
        config.output_dir,
        enabled=ctx.is_main,
        tensorboard=config.tensorboard,
        resume_step=step if checkpoint is not None else None,
    )
    metrics: dict[str, Any] = {}
    last_eval: dict[str, float] = {}
    stopped_early = False

    def evaluate(at: int) -> bool:
        """Evaluate, log, report; True when early stopping says stop."""
        nonlocal last_eval
        last_eval = parts.objective.evaluate(
            core, val_examples, config.batch_size, config.eval_batches * global_batch, device,
            autocast,
        )  # fmt: skip
        log.write({"step": at, **last_eval, "elapsed_s": round(time.perf_counter() - started, 3)})
        if on_eval is not None:
            on_eval(at, last_eval)
        return stopper.update(at, last_eval)

    tokens_seen, run_started = 0, time.perf_counter()
    try:
        if step == 0 and val_examples and eval_every:
            evaluate(0)
        with _progress(console, not (show_progress and ctx.is_main)) as bar:
            task = bar.add_task("train", total=total_steps, completed=step, loss=0.0, tps=0.0)
            while step < total_steps:
                examples = stream.take(global_batch)
                loss, targets = accumulate_step(
                    wrapped, examples, config.batch_size, parts.objective, device,
                    ctx=ctx, autocast=autocast,
                )  # fmt: skip
                grad_norm = _clip(core, config.optim.grad_clip)
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                tokens_seen += sum(len(e[0]) for e in examples)
                metrics = {"step": step, "loss": loss, "targets": targets}
                logging = step % config.log_every == 0 or step == total_steps
                if logging:  # the only host syncs of a step: read loss and norm here
                    metrics["loss"] = float(loss)
                    tps = tokens_seen / max(1e-9, time.perf_counter() - run_started)
                    log.write(
                        {
                            **metrics,
                            "lr": lr,
                            "grad_norm": float(grad_norm),
                            "tokens_per_s": tps,
                            "elapsed_s": round(time.perf_counter() - started, 3),
                        }
                    )
                    bar.update(task, completed=step, loss=metrics["loss"], tps=tps)
                if val_examples and eval_every and step % eval_every == 0 and evaluate(step):
                    stopped_early = True
                if config.save_every and step % config.save_every == 0:
                    _save(config, core, optimizer, scheduler, stream, stopper, step, ctx)
                if stop_after is not None and step >= stop_after:
                    return {**metrics, "loss": float(loss)}
                if stopped_early:
                    if ctx.is_main:
                        console.print(
                            f"early stop at step {step}: {stopper.metric} has not improved for "
                            f"{stopper.patience} evaluations (best {stopper.best:.4g} at step "
                            f"{stopper.best_step})"
                        )
                    break
        if val_examples and not (eval_every and step % eval_every == 0):
            evaluate(step)
    finally:
        log.close()
    if "loss" in metrics:
        metrics["loss"] = float(metrics["loss"])
    metrics.update(last_eval)
    metrics["tokens_per_s"] = tokens_seen / max(1e-9, time.perf_counter() - run_started)
    weights = (
        D.model_state(core, config.distributed, ctx)
        if ctx.enabled and config.distributed == "fsdp"
        else None
    )
    if ctx.is_main:
        run_info = {
            "world_size": ctx.world,
            "steps": step,
            "stopped_early": stopped_early,
            "best": {"metric": stopper.metric, "value": stopper.best, "step": stopper.best_step},
            "wall_seconds": round(time.perf_counter() - started, 2),
            "trainable_parameters": sum(p.numel() for p in core.parameters() if p.requires_grad),
        }
        plot_losses(config.output_dir, f"{config.task}: {config.output_dir.name}")
        write_output(config, parts, weights, metrics, run_info)
    D.barrier(ctx)
    return metrics


def _clip(model: Any, max_norm: float) -> torch.Tensor:
    """Clip gradients to ``max_norm`` (0 = off); return the norm before clipping (a tensor:
    reading it is a host sync, done only when logging)."""
    if max_norm <= 0:
        return torch.zeros(())
    norm = torch.nn.utils.clip_grad_norm_(
        [p for p in model.parameters() if p.requires_grad], max_norm
    )
    full = getattr(norm, "full_tensor", None)  # a DTensor under FSDP
    result: torch.Tensor = full() if full is not None else norm
    return result


def _save(
    config: TrainConfig,
    core: Any,
    optimizer: Any,
    scheduler: Any,
    stream: ExampleStream,
    stopper: EarlyStopping,
    step: int,
    ctx: D.DistContext,
) -> None:
    """Checkpoint ``step`` (gathering shards under FSDP: every rank takes part)."""
    weights = _checkpoint_weights(core, config, ctx)
    optim_state = D.optimizer_state(core, optimizer, config.distributed, ctx)
    if ctx.is_main:
        extra = {
            "fingerprint": config.fingerprint(),
            "data": stream.state_dict(),
            "early_stopping": stopper.state_dict(),
            "world": ctx.world,
        }
        save_checkpoint(
            config.output_dir, step, weights, optim_state, scheduler.state_dict(), extra
        )
    D.barrier(ctx)
