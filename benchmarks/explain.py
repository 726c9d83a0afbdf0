"""Faithfulness of the explanations plugin's attributions: deletion curves on held-out intents.

For every held-out intent (``examples/heldout/intents.jsonl``) the classifier's predicted
class is explained three ways in the same run — integrated gradients (pad baseline),
occlusion (delete one token at a time) and a random ranking (the baseline; the mean of
``--random-orders`` seeded shuffles) — and then the top-ranked k% of the input tokens are
deleted for k = 0, 10, …, 100. The deletion curve is the probability of the originally
predicted class as tokens go; its area (AUC, trapezoids over [0, 1]) is lower when the
ranking found the tokens the prediction rests on. Faithful attributions: AUC(IG) and
AUC(occlusion) well below AUC(random).

The classifier: ``--model-dir`` (an ``llmeco train classify`` output), else one trained here
on ``examples/classify/intents.jsonl`` with a frozen SmolLM2 base and a fresh head (the
quickest SmolLM2 classifier clearly better than chance; ``--lora-r 16`` trains adapters too),
or with ``--base tiny`` a small Llama trained from scratch (minutes on a busy CPU).
Prints one JSON object (and writes it to ``--out``/explain.json).

    python benchmarks/explain.py --out runs/bench-explain              # train, then explain
    python benchmarks/explain.py --model-dir runs/bench-explain/model  # reuse the classifier
    python benchmarks/explain.py --base tiny --epochs 8 --out runs/bench-explain-tiny
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from llmeco_explain.attribution import (
    curve_area,
    deletion_rows,
    integrated_gradients,
    occlusion,
)
from llmeco_explain.targets import ClassifierTarget, tokenize_spans
from rich.console import Console

from llmeco.settings import Settings
from llmeco.training.classify import Classifier, load_classifier

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FRACTIONS = [i / 10 for i in range(11)]


def tiny_base(out: Path) -> Path:
    """A small random-weight Llama (4 layers, hidden 128) with SmolLM2's tokenizer, for a
    classifier trained from scratch in minutes on a CPU. No pad token in its config, so
    the pad row of its embedding trains like any other (the pad baseline of IG needs it)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmeco.modeling.load import load_tokenizer, resolve_model

    path = out / "tiny-base"
    if (path / "config.json").is_file():
        return path
    tokenizer = load_tokenizer(resolve_model("default", Settings()).path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def train_classifier(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train the intents classifier into ``out``/model; its held-out metrics."""
    from llmeco.data.pipeline import PrepareOptions, prepare_dataset
    from llmeco.training.config import load_config
    from llmeco.training.loop import train

    base = str(tiny_base(out)) if args.base == "tiny" else args.base
    shutil.rmtree(out / "dataset", ignore_errors=True)
    prepare_dataset(
        [EXAMPLES / "classify" / "intents.jsonl"],
        out / "dataset",
        PrepareOptions(validation_fraction=0.0),
    )
    overrides = [
        f"output_dir={out / 'model'}",
        f"model.base={base}",
        f"data.dataset={out / 'dataset'}",
        f"data.validation={EXAMPLES / 'heldout' / 'intents.jsonl'}",
        f"epochs={args.epochs}",
        "batch_size=16",
        "seq_len=64",
        f"optim.lr={args.lr}",
        "optim.warmup_steps=5",
        "optim.weight_decay=0.0",
        "eval_every=0",
        "tensorboard=false",
    ]
    if args.base == "tiny":
        method = "tiny Llama trained from scratch (all weights)"
    elif args.lora_r:
        method = f"lora r={args.lora_r}"
        overrides.append(f"lora={{r: {args.lora_r}}}")
    else:
        method = "frozen base + head"
        overrides.append("model.freeze_base=true")
    started = time.perf_counter()
    metrics = train(
        load_config(None, "classify", overrides),
        settings=Settings(),
        console=Console(stderr=True),
        show_progress=False,
    )
    return {
        "trained_here": True,
        "base": args.base,
        "method": method,
        "epochs": args.epochs,
        "train_seconds": round(time.perf_counter() - started, 1),
        **{k: v for k, v in metrics.items() if k.startswith("eval_")},
    }


def explain_row(
    classifier: Classifier, text: str, args: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    """Deletion curves of one text for IG, occlusion and random orders."""
    tokens = tokenize_spans(classifier.tokenizer, text, [(0, len(text))], add_special_tokens=True)
    ids = tokens.ids[: classifier.max_length]
    positions = [p for p in tokens.positions if p < len(ids)]
    pad = classifier.pad_id
    probe = ClassifierTarget(classifier.model, ids, pad, 0)
    probs = probe.probabilities()
    predicted = max(range(len(probs)), key=lambda i: probs[i])
    target = ClassifierTarget(classifier.model, ids, pad, predicted)
    n = len(positions)

    def ranked(scores: list[float]) -> list[int]:
        return sorted(range(n), key=lambda i: -scores[i])

    started = time.perf_counter()
    ig = integrated_gradients(target, positions, steps=args.steps)
    ig_seconds = time.perf_counter() - started
    started = time.perf_counter()
    occ = occlusion(target, positions)
    occ_seconds = time.perf_counter() - started
    orders = [ranked(ig.scores), ranked(occ.scores)]
    for _ in range(args.random_orders):
        order = list(range(n))
        rng.shuffle(order)
        orders.append(order)
    # every order's deletion steps in one batched call (rows of equal length share a pass)
    rows = [row for o in orders for row in deletion_rows(ids, positions, o, FRACTIONS)]
    values = target.score_ids(rows)
    k = len(FRACTIONS)
    per_order = [values[i * k : (i + 1) * k] for i in range(len(orders))]
    curves = {"integrated_gradients": per_order[0], "occlusion": per_order[1]}
    curves["random"] = [statistics.fmean(v) for v in zip(*per_order[2:], strict=True)]
    return {
        "label": classifier.labels[predicted],
        "tokens": n,
        "curves": curves,
        "auc": {name: curve_area(FRACTIONS, c) for name, c in curves.items()},
        "ig_relative_gap": abs(ig.completeness_delta or 0.0)
        / max(1e-6, abs(ig.value - (ig.baseline_value or 0.0))),
        "seconds": {"integrated_gradients": ig_seconds, "occlusion": occ_seconds},
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean curves and AUCs per method, and how often each beats random."""
    methods = ["integrated_gradients", "occlusion", "random"]
    out: dict[str, Any] = {}
    for m in methods:
        aucs = [r["auc"][m] for r in rows]
        curve = [statistics.fmean(v) for v in zip(*(r["curves"][m] for r in rows), strict=True)]
        entry: dict[str, Any] = {
            "deletion_auc": round(statistics.fmean(aucs), 4),
            "deletion_auc_stdev": round(statistics.pstdev(aucs), 4),
            "mean_curve": [round(v, 4) for v in curve],
        }
        if m != "random":
            diffs = [r["auc"][m] - r["auc"]["random"] for r in rows]
            entry["auc_minus_random"] = round(statistics.fmean(diffs), 4)
            entry["lower_auc_than_random_fraction"] = round(
                sum(d < 0 for d in diffs) / len(diffs), 4
            )
            entry["mean_seconds_per_text"] = round(
                statistics.fmean(r["seconds"][m] for r in rows), 4
            )
        out[m] = entry
    return out


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="A trained classifier.")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-explain"))
    parser.add_argument(
        "--base",
        default="default",
        help="Base to train a classifier on: a model reference (default: the packaged "
        "SmolLM2-135M), or 'tiny' (a small Llama trained from scratch, for slow CPUs).",
    )
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lora-r", type=int, default=0, help="0 = frozen base, head only")
    parser.add_argument("--steps", type=int, default=32, help="Integrated-gradients steps.")
    parser.add_argument("--random-orders", type=int, default=5)
    parser.add_argument("--limit", type=int, default=0, help="Held-out rows (0 = all).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: torch's default; 1 on a busy CPU)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"benchmark": "explain_faithfulness", "set": "intents"}
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = args.out / "model"
        if not (model_dir / "config.json").is_file():
            result["classifier"] = train_classifier(args.out, args)
    result["model_dir"] = str(model_dir)
    classifier = load_classifier(model_dir, args.device)
    classifier.model.requires_grad_(False)
    rows = [
        json.loads(line)
        for line in (EXAMPLES / "heldout" / "intents.jsonl").read_text().splitlines()
        if line.strip()
    ]
    if args.limit:
        rows = rows[: args.limit]
    predictions = classifier.predict([r["text"] for r in rows])
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    load_before = os.getloadavg()
    started = time.perf_counter()
    explained = [explain_row(classifier, r["text"], args, rng) for r in rows]
    result.update(
        {
            "heldout_examples": len(rows),
            "heldout_accuracy": round(
                sum(p.label == r["label"] for p, r in zip(predictions, rows, strict=True))
                / len(rows),
                4,
            ),
            "fractions_deleted": FRACTIONS,
            "ig_steps": args.steps,
            "ig_baseline": "pad",
            "random_orders_per_text": args.random_orders,
            "mean_tokens": round(statistics.fmean(r["tokens"] for r in explained), 1),
            "ig_median_relative_completeness_gap": round(
                statistics.median(r["ig_relative_gap"] for r in explained), 4
            ),
            "methods": summarise(explained),
            "explain_seconds": round(time.perf_counter() - started, 1),
            "device": args.device,
            "threads": torch.get_num_threads(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        }
    )
    text = json.dumps(result, indent=2)
    (args.out / "explain.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
