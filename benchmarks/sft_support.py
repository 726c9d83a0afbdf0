"""Must-show 4: LoRA SFT of the packaged SmolLM2 on the shipped support conversations.

1. Held-out loss: the loss on the reference answers of ``examples/heldout/support.jsonl``
   (questions never seen in training, about facts that were) before training (step 0, the base
   model) and after every epoch.
2. Held-out answers: the merged model (the run's output directory) and the base model are each
   served by the native engine (``AsyncEngine.from_ref``), asked every held-out question
   (greedy, same system prompt), and an answer counts as correct when it contains every
   keyword group of the question (any alternative of a group, case-insensitive).

Prints one JSON object with both numbers for both models.

    python benchmarks/sft_support.py --epochs 3 --threads 1 --out runs/bench-sft
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

from rich.console import Console

from llmeco.data.pipeline import PrepareOptions, prepare_dataset
from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import ChatPrompt, SamplingParams
from llmeco.settings import Settings
from llmeco.training.config import load_config
from llmeco.training.loop import train
from llmeco.training.runlog import read_log

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SYSTEM = (
    "You are the support assistant of Lumen Cycles. Answer from the handbook, briefly and politely."
)


def correct(answer: str, keywords: list[list[str]]) -> bool:
    """Every keyword group has at least one alternative in the answer (case-insensitive)."""
    text = answer.casefold()
    return all(any(alt.casefold() in text for alt in group) for group in keywords)


async def answer_all(ref: str, questions: list[str], settings: Settings) -> list[str]:
    """Greedy answers of the model ``ref`` served by the engine, all questions in flight."""
    engine = AsyncEngine.from_ref(ref, settings)

    async def ask(i: int, question: str) -> str:
        prompt = ChatPrompt(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        )
        text = ""
        async for output in engine.generate(
            prompt, SamplingParams(max_tokens=64, temperature=0.0), f"q{i}"
        ):
            text += "".join(d.text for d in output.deltas)
        return text

    try:
        return list(await asyncio.gather(*(ask(i, q) for i, q in enumerate(questions))))
    finally:
        await engine.shutdown(timeout=5)


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="default")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default.")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-sft"))
    parser.add_argument("--json", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()

    started = time.perf_counter()
    load_before = os.getloadavg()
    settings = Settings(threads=args.threads, device="cpu")
    shutil.rmtree(args.out, ignore_errors=True)
    dataset = args.out / "dataset"
    heldout_path = EXAMPLES / "heldout" / "support.jsonl"
    manifest = prepare_dataset(
        [EXAMPLES / "chat"], dataset, PrepareOptions(validation_fraction=0.0)
    )
    model_dir = args.out / "model"
    config = load_config(
        None,
        "sft",
        [
            f"output_dir={model_dir}",
            f"model.base={args.base}",
            f"data.dataset={dataset}",
            f"data.validation={heldout_path}",
            f"lora={{r: {args.lora_r}, alpha: {2 * args.lora_r}, dropout: 0.05}}",
            f"epochs={args.epochs}",
            f"batch_size={args.batch_size}",
            "seq_len=384",
            f"optim.lr={args.lr}",
            "optim.warmup_steps=10",
            "optim.weight_decay=0.0",
            f"precision={args.precision}",
            "eval_every=0",
            "eval_batches=0",
        ],
    )
    train(config, settings=settings, console=Console(stderr=True))
    train_seconds = time.perf_counter() - started
    evals = [(e["step"], e["eval_loss"]) for e in read_log(model_dir) if "eval_loss" in e]

    heldout = [json.loads(line) for line in heldout_path.read_text().splitlines() if line]
    questions = [row["question"] for row in heldout]
    answers: dict[str, list[str]] = {}
    for name, ref in (("base", args.base), ("fine_tuned", str(model_dir))):
        answers[name] = asyncio.run(answer_all(ref, questions, settings))
    scores = {
        name: sum(correct(a, row["keywords"]) for a, row in zip(got, heldout, strict=True))
        for name, got in answers.items()
    }
    result: dict[str, Any] = {
        "benchmark": "sft_support",
        "base": args.base,
        "method": f"LoRA r={args.lora_r}, merged for serving",
        "train_conversations": manifest["counts"]["train"],
        "heldout_questions": len(heldout),
        "epochs": args.epochs,
        "heldout_loss_curve": evals,
        "heldout_loss_base": evals[0][1],
        "heldout_loss_fine_tuned": evals[-1][1],
        "correct_base": scores["base"],
        "correct_fine_tuned": scores["fine_tuned"],
        "accuracy_base": round(scores["base"] / len(heldout), 3),
        "accuracy_fine_tuned": round(scores["fine_tuned"] / len(heldout), 3),
        "examples": [
            {"question": q, "base": b, "fine_tuned": f}
            for q, b, f in list(
                zip(questions, answers["base"], answers["fine_tuned"], strict=True)
            )[:6]
        ],
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "threads": settings.threads or "torch default",
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
