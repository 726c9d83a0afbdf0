"""Must-show 1: pretrain a ~10M-parameter Llama on the shipped corpus on a CPU and lower the
validation loss by at least 30% from its starting value within a time budget (10 minutes).

Steps, all through llmeco's public pieces: `prepare` examples/corpus + examples/chat (10%
validation), train a BPE tokenizer, time a few training steps to size the run so that it ends
inside the budget (the cosine schedule needs its length up front), then `train` with the
~10M-parameter model (width 384, 6 layers) and evaluate on the whole validation split before,
during and after; early stopping ends the run when the small corpus starts to be memorised.
Prints one JSON object (and writes it to --json if given).

    python benchmarks/pretrain_cpu.py --minutes 10 --threads 1 --out runs/bench-pretrain
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from llmeco.data.pipeline import PrepareOptions, prepare_dataset
from llmeco.data.tokenizer import train_tokenizer
from llmeco.modeling.load import load_tokenizer
from llmeco.settings import Settings
from llmeco.training.config import load_config
from llmeco.training.loop import accumulate_step, autocast_for, make_optimizer, train
from llmeco.training.runlog import read_log
from llmeco.training.setup import build_examples, build_parts

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _seconds_per_step(overrides: list[str], settings: Settings, probes: int = 3) -> float:
    """Median wall time of a training step of this config (after one warm-up step)."""
    config = load_config(None, "pretrain", overrides)
    device = torch.device("cpu")
    parts = build_parts(config, settings, device)
    examples = build_examples(config, parts, "train")
    optimizer, _ = make_optimizer(parts.model, config, 10)
    autocast = autocast_for(config, device)
    times = []
    for i in range(probes + 1):
        started = time.perf_counter()
        batch = examples[i * config.batch_size : (i + 1) * config.batch_size]
        accumulate_step(parts.model, batch, config.batch_size, parts.objective, device,
                        autocast=autocast)  # fmt: skip
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="Wall-clock budget.")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--hidden", type=int, default=384, help="Width (~10M parameters with")
    parser.add_argument("--layers", type=int, default=6, help="the corpus's ~2k-token vocab).")
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--intermediate", type=int, default=1024)
    parser.add_argument("--patience", type=int, default=3, help="Early stopping (evals).")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default.")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-pretrain"))
    parser.add_argument("--json", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()

    wall_start = time.perf_counter()
    load_before = os.getloadavg()
    settings = Settings(threads=args.threads)
    if args.threads:
        torch.set_num_threads(args.threads)
    shutil.rmtree(args.out, ignore_errors=True)
    dataset, tokenizer = args.out / "dataset", args.out / "tokenizer"
    manifest = prepare_dataset(
        [EXAMPLES / "corpus", EXAMPLES / "chat"], dataset, PrepareOptions(validation_fraction=0.1)
    )
    train_tokenizer(dataset, args.vocab_size, tokenizer)
    base = [
        f"model.tokenizer={tokenizer}",
        "model.preset=null",
        f"model.hidden_size={args.hidden}",
        f"model.num_layers={args.layers}",
        f"model.num_heads={args.heads}",
        f"model.intermediate_size={args.intermediate}",
        f"early_stopping.patience={args.patience}",
        f"data.dataset={dataset}",
        f"seq_len={args.seq_len}",
        f"batch_size={args.batch_size}",
        f"optim.lr={args.lr}",
        "optim.warmup_steps=20",
        "optim.min_lr_ratio=0.1",
        "optim.weight_decay=0.1",
        f"precision={args.precision}",
        "eval_batches=0",
        "tensorboard=true",
    ]
    per_step = _seconds_per_step([*base, f"output_dir={args.out / 'probe'}"], settings)
    spent = time.perf_counter() - wall_start
    # Leave room for the evaluations (~2% of steps' time each, 11 of them) and saving.
    budget = args.minutes * 60 - spent - 30
    steps = max(20, math.floor(budget * 0.8 / per_step))
    config = load_config(
        None,
        "pretrain",
        [*base, f"output_dir={args.out / 'model'}", f"max_steps={steps}",
         f"eval_every={max(1, steps // 10)}"],
    )  # fmt: skip
    metrics = train(config, settings=settings, console=Console(stderr=True))
    wall = time.perf_counter() - wall_start
    evals = [(e["step"], e["eval_loss"]) for e in read_log(config.output_dir) if "eval_loss" in e]
    first, last = evals[0][1], evals[-1][1]
    record = json.loads((config.output_dir / "training.json").read_text())
    result: dict[str, Any] = {
        "benchmark": "pretrain_cpu",
        "parameters": record["parameters"],
        "dims": {
            "hidden": args.hidden,
            "layers": args.layers,
            "heads": args.heads,
            "intermediate": args.intermediate,
        },
        "vocab_size": len(load_tokenizer(tokenizer)),
        "corpus_tokens_train": sum(len(b[0]) for b in _blocks(config, settings)),
        "train_records": manifest["counts"]["train"],
        "validation_records": manifest["counts"]["validation"],
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "probe_seconds_per_step": round(per_step, 3),
        "steps": metrics["step"],
        "tokens_per_s": round(metrics["tokens_per_s"], 1),
        "eval_curve": evals,
        "initial_val_loss": first,
        "best_val_loss": min(loss for _, loss in evals),
        "final_val_loss": last,
        "stopped_early": record["stopped_early"],
        "val_loss_drop": round(1 - last / first, 4),
        "target_drop": 0.30,
        "wall_seconds_total": round(wall, 1),
        "budget_seconds": args.minutes * 60,
        "met": bool(1 - last / first >= 0.30 and wall <= args.minutes * 60),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


def _blocks(config: Any, settings: Settings) -> list[Any]:
    from llmeco.data.pipeline import load_records
    from llmeco.training.objectives import pack_blocks

    tok = load_tokenizer(Path(config.model.tokenizer))
    return pack_blocks(load_records(config.data.dataset, "train"), tok, config.seq_len)


if __name__ == "__main__":
    main()
