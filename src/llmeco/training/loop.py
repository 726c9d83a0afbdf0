"""The one training loop (pretrain and sft): AdamW, warmup + cosine, accumulation, clipping,
periodic evaluation and checkpoints, exact resume, a rich progress bar and a JSONL log.

Read :func:`train` top to bottom; :func:`accumulate_step` is the part the gradient
accumulation test pins down (loss normalised by the target tokens of the whole step).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from llmeco import __version__
from llmeco.data.pipeline import file_sha256
from llmeco.errors import ConfigError
from llmeco.settings import Settings
from llmeco.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from llmeco.training.config import TrainConfig
from llmeco.training.objectives import (
    Example,
    ExampleStream,
    collate,
    summed_loss,
    target_count,
)
from llmeco.training.setup import build_examples, build_parts, pick_device

LOG_FILE = "train_log.jsonl"


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak lr at ``step``: linear warmup, then cosine down to ``min_ratio``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> tuple[Any, Any]:
    """AdamW (weight decay on matrices only) and its warmup + cosine scheduler."""
    decay = [p for _, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    o = config.optim
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": o.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=o.lr,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, o.warmup_steps, config.max_steps, o.min_lr_ratio)
    )
    return optimizer, scheduler


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def accumulate_step(
    model: Any, examples: Sequence[Example], micro_batch: int, pad_id: int, device: torch.device
) -> tuple[float, int]:
    """Forward/backward ``examples`` in micro-batches; return (mean loss, target tokens).

    Each micro-batch's summed loss is divided by the target tokens of *all* the examples,
    so the accumulated gradient equals one big batch's whatever the split.
    """
    batches = [
        collate(examples[i : i + micro_batch], pad_id) for i in range(0, len(examples), micro_batch)
    ]
    total = sum(target_count(b) for b in batches)
    if total == 0:
        return 0.0, 0
    loss_value = 0.0
    for batch in batches:
        with _autocast(device):
            loss = summed_loss(model, _to(batch, device)) / total
        loss.backward()  # type: ignore[no-untyped-call]
        loss_value += float(loss.detach())
    return loss_value, total


@torch.no_grad()
def evaluate(
    model: Any, examples: Sequence[Example], config: TrainConfig, pad_id: int, device: torch.device
) -> dict[str, float]:
    """Token-weighted validation loss and perplexity over the first ``eval_batches``."""
    model.eval()
    loss_sum, tokens = 0.0, 0
    limit = config.eval_batches * config.batch_size
    for i in range(0, min(len(examples), limit), config.batch_size):
        batch = collate(examples[i : i + config.batch_size], pad_id)
        with _autocast(device):
            loss_sum += float(summed_loss(model, _to(batch, device)))
        tokens += target_count(batch)
    model.train()
    loss = loss_sum / max(1, tokens)
    return {"eval_loss": loss, "eval_ppl": math.exp(min(loss, 50.0))}


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


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    settings: Settings | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Run ``config`` to ``max_steps`` and write the HF model directory; return final metrics.

    ``resume`` continues from the newest checkpoint in ``output_dir`` exactly (weights,
    optimizer, scheduler, RNG, data position). ``stop_after`` stops after that step without
    writing the final model — it simulates an interrupted run in tests.

    Raises:
        ConfigError: output_dir already used (without ``resume``), a checkpoint from a
            different config, or data that yields no examples.
    """
    settings = settings or Settings()
    console = console or Console(stderr=True)
    out = config.output_dir
    checkpoint = latest_checkpoint(out) if resume else None
    if resume and checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    if not resume and out.exists() and any(out.iterdir()):
        raise ConfigError(
            f"{out} is not empty; pass --resume to continue or pick another output_dir"
        )
    device = pick_device(config)
    parts = build_parts(config, settings, device)
    pad_id = int(
        parts.tokenizer.pad_token_id
        if parts.tokenizer.pad_token_id is not None
        else parts.tokenizer.eos_token_id
    )
    train_examples = build_examples(config, parts, "train")
    val_examples = build_examples(config, parts, "validation")
    stream = ExampleStream(train_examples, config.seed)
    model = parts.model
    model.train()
    optimizer, scheduler = make_optimizer(model, config)
    step = 0
    if checkpoint is not None:
        meta = load_checkpoint(checkpoint, model, optimizer, scheduler)
        if meta["fingerprint"] != config.fingerprint():
            raise ConfigError(
                f"{checkpoint} was written by a different config; resume with the same one"
            )
        step = int(meta["step"])
        stream.load_state_dict(meta["data"])
        console.print(f"resumed from {checkpoint} at step {step}")
    out.mkdir(parents=True, exist_ok=True)
    log = (out / LOG_FILE).open("a", encoding="utf-8")
    metrics: dict[str, Any] = {}

    def write(entry: dict[str, Any]) -> None:
        log.write(json.dumps(entry) + "\n")
        log.flush()

    if step == 0 and val_examples and config.eval_every:
        write({"step": 0, **evaluate(model, val_examples, config, pad_id, device)})
    started, tokens_seen = time.perf_counter(), 0
    global_batch = config.batch_size * config.grad_accum
    try:
        with _progress(console, not show_progress) as bar:
            task = bar.add_task("train", total=config.max_steps, completed=step, loss=0.0, tps=0.0)
            while step < config.max_steps:
                examples = stream.take(global_batch)
                loss, targets = accumulate_step(model, examples, config.batch_size, pad_id, device)
                grad_norm = (
                    float(
                        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                    )
                    if config.optim.grad_clip > 0
                    else 0.0
                )
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                tokens_seen += sum(len(ids) for ids, _ in examples)
                tps = tokens_seen / max(1e-9, time.perf_counter() - started)
                metrics = {"step": step, "loss": loss, "targets": targets}
                if step % config.log_every == 0:
                    write(
                        {
                            **metrics,
                            "lr": lr,
                            "grad_norm": grad_norm,
                            "tokens_per_s": tps,
                        }
                    )
                if val_examples and config.eval_every and step % config.eval_every == 0:
                    write({"step": step, **evaluate(model, val_examples, config, pad_id, device)})
                if config.save_every and step % config.save_every == 0:
                    extra = {"fingerprint": config.fingerprint()}
                    save_checkpoint(
                        out, step, model, optimizer, scheduler, stream.state_dict(), extra
                    )
                bar.update(task, completed=step, loss=loss, tps=tps)
                if stop_after is not None and step >= stop_after:
                    return metrics
        if val_examples:
            metrics.update(evaluate(model, val_examples, config, pad_id, device))
            if not (config.eval_every and step % config.eval_every == 0):
                write({"step": step, **{k: metrics[k] for k in ("eval_loss", "eval_ppl")}})
    finally:
        log.close()
    _write_model(config, parts, model, metrics)
    return metrics


def _write_model(config: TrainConfig, parts: Any, model: Any, metrics: dict[str, Any]) -> None:
    """Save the HF model directory: safetensors, tokenizer, generation config, training.json."""
    out = config.output_dir
    model.generation_config.eos_token_id = sorted(parts.end_ids)
    model.generation_config.pad_token_id = parts.tokenizer.pad_token_id
    model.save_pretrained(str(out))
    if config.task == "pretrain":
        parts.tokenizer.model_max_length = config.seq_len
    parts.tokenizer.save_pretrained(str(out))
    manifest = Path(config.data.dataset) / "manifest.json"
    record = {
        "config": config.model_dump(mode="json"),
        "config_fingerprint": config.fingerprint(),
        "data_manifest_sha256": file_sha256(manifest) if manifest.is_file() else None,
        "code_version": __version__,
        "torch_version": torch.__version__,
        "origin": parts.origin,
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_metrics": metrics,
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
