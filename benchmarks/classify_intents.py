"""Intent (or sentiment) classifier on the shipped sets: held-out accuracy and macro F1.

Fine-tunes a classification head plus LoRA adapters on the packaged SmolLM2-135M with
`llmeco train classify`, evaluating on the held-out phrasings after every epoch, then loads
the result with `load_classifier` and scores the held-out file again through `predict`
(the inference path later task endpoints use). Prints one JSON object.

    python benchmarks/classify_intents.py --set intents --epochs 3 --out runs/bench-intents
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from llmeco.data.pipeline import PrepareOptions, prepare_dataset
from llmeco.settings import Settings
from llmeco.training.classify import load_classifier
from llmeco.training.config import load_config
from llmeco.training.loop import train
from llmeco.training.runlog import read_log

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="which", default="intents", choices=["intents", "sentiment"])
    parser.add_argument("--base", default="default")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lora-r", type=int, default=16, help="0 = frozen base, head only")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "auto"])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-classify"))
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    dataset = args.out / "dataset"
    heldout = EXAMPLES / "heldout" / f"{args.which}.jsonl"
    prepare_dataset(
        [EXAMPLES / "classify" / f"{args.which}.jsonl"],
        dataset,
        PrepareOptions(validation_fraction=0.0),
    )
    overrides = [
        f"output_dir={args.out / 'model'}",
        f"model.base={args.base}",
        f"data.dataset={dataset}",
        f"data.validation={heldout}",
        f"epochs={args.epochs}",
        "batch_size=16",
        "seq_len=64",
        f"optim.lr={args.lr}",
        "optim.warmup_steps=5",
        "optim.weight_decay=0.0",
        f"precision={args.precision}",
        "eval_every=0",  # with epochs: evaluate after every epoch
    ]
    overrides.append(f"lora={{r: {args.lora_r}}}" if args.lora_r else "model.freeze_base=true")
    config = load_config(None, "classify", overrides)
    load_before = os.getloadavg()
    started = time.perf_counter()
    metrics = train(config, settings=Settings(), console=Console(stderr=True))
    train_seconds = time.perf_counter() - started

    classifier = load_classifier(args.out / "model")
    rows = [json.loads(line) for line in heldout.read_text().splitlines() if line]
    predictions = classifier.predict([r["text"] for r in rows])
    correct = sum(p.label == r["label"] for p, r in zip(predictions, rows, strict=True))
    per_epoch = [
        {k: e[k] for k in ("step", "eval_loss", "eval_accuracy", "eval_macro_f1")}
        for e in read_log(args.out / "model")
        if "eval_accuracy" in e
    ]
    result: dict[str, Any] = {
        "benchmark": "classify",
        "set": args.which,
        "base": args.base,
        "method": f"lora r={args.lora_r}" if args.lora_r else "frozen base + head",
        "labels": classifier.labels,
        "train_examples": json.loads((dataset / "manifest.json").read_text())["counts"]["train"],
        "heldout_examples": len(rows),
        "epochs": args.epochs,
        "per_epoch": per_epoch,
        "heldout_accuracy": correct / len(rows),
        "final_metrics": {k: v for k, v in metrics.items() if k.startswith("eval_")},
        "train_seconds": round(train_seconds, 1),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
