"""Intent (or sentiment) classifier on the shipped sets: held-out accuracy and macro F1.

Fine-tunes a classification head plus LoRA adapters on the packaged SmolLM2-135M with
`llmeco train classify`, evaluating on the held-out phrasings after every epoch, then loads
the result with `load_classifier` and scores the held-out file again through `predict`
(the inference path the task endpoints use). Prints one JSON object.

With ``--served`` it also serves the trained classifier next to the chat model (``--chat``,
default the packaged SmolLM2) in the real app, in process, and sends every held-out line to
``POST /v1/tasks/classify`` twice: ``model: <classifier>`` (the trained head) and the chat
model prompted with the same labels (constrained decoding). ``--model-dir`` skips training
and uses a classifier trained before.

    python benchmarks/classify_intents.py --set intents --epochs 3 --out runs/bench-intents
    python benchmarks/classify_intents.py --served --model-dir runs/bench-intents/model
"""

from __future__ import annotations

import argparse
import asyncio
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
    parser.add_argument(
        "--served",
        action="store_true",
        help="Also score the held-out set through /v1/tasks/classify: classifier vs chat model.",
    )
    parser.add_argument("--chat", default="default", help="Chat model prompted with --served.")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="A trained classifier: skip training."
    )
    args = parser.parse_args()
    heldout = EXAMPLES / "heldout" / f"{args.which}.jsonl"
    rows = [json.loads(line) for line in heldout.read_text().splitlines() if line]
    result: dict[str, Any] = (
        {"benchmark": "classify", "set": args.which, "model_dir": str(args.model_dir)}
        if args.model_dir is not None
        else train_and_score(args, heldout, rows)
    )
    if args.served:
        model_dir = args.model_dir or args.out / "model"
        result["served"] = asyncio.run(served(model_dir, args.chat, rows))
    print(json.dumps(result, indent=2))


def train_and_score(
    args: argparse.Namespace, heldout: Path, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Train the classifier, then score the held-out rows with ``predict``."""
    shutil.rmtree(args.out, ignore_errors=True)
    dataset = args.out / "dataset"
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
    predictions = classifier.predict([r["text"] for r in rows])
    correct = sum(p.label == r["label"] for p, r in zip(predictions, rows, strict=True))
    per_epoch = [
        {k: e[k] for k in ("step", "eval_loss", "eval_accuracy", "eval_macro_f1")}
        for e in read_log(args.out / "model")
        if "eval_accuracy" in e
    ]
    return {
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


async def served(model_dir: Path, chat: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Held-out accuracy through ``/v1/tasks/classify``: the served classifier (by name) and
    the prompted chat model given the classifier's labels; the same rows, the same app."""
    import httpx

    from llmeco.apps.classifier import load_served_classifier
    from llmeco.engine.async_engine import AsyncEngine
    from llmeco.server import build_app

    settings = Settings()
    classifier = load_served_classifier("intents", str(model_dir), settings)
    engine = AsyncEngine.from_ref(chat, settings)
    app = build_app(settings, {engine.model_info.name: engine}, classifiers={"intents": classifier})
    labels = classifier.labels
    out: dict[str, Any] = {"heldout_examples": len(rows), "labels": labels}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=3600) as c:

            async def label(body: dict[str, Any]) -> str:
                r = await c.post("/v1/tasks/classify", json=body)
                r.raise_for_status()
                return str(r.json()["label"])

            for key, extra in (
                ("classifier", {"model": "intents"}),
                ("prompted", {"model": engine.model_info.name, "labels": labels}),
            ):
                started = time.perf_counter()
                got = await asyncio.gather(*(label({"text": r["text"], **extra}) for r in rows))
                hits = sum(g == r["label"] for g, r in zip(got, rows, strict=True))
                out[f"{key}_accuracy"] = round(hits / len(rows), 4)
                out[f"{key}_seconds"] = round(time.perf_counter() - started, 1)
        out["chat_model"] = chat
    finally:
        await engine.shutdown(timeout=1)
        classifier.close()
    return out


if __name__ == "__main__":
    main()
