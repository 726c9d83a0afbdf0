"""Pretraining throughput and MFU: llmeco's loop against Hugging Face ``Trainer``.

Same model (a Llama of GPT-2-small size: 12 layers, width 768, 12 heads, SwiGLU 2048, the
packaged SmolLM2 tokenizer's 49k vocabulary, tied embeddings, seeded init), same packed blocks
of the shipped corpus, same optimizer settings (AdamW, warmup + cosine, clip 1.0), bf16
autocast on CUDA, one after the other — the peer in its own process. Tokens/s are timed from
the end of the warm-up steps to the last step; MFU divides the model FLOPs per second by the
device's peak (detected from the GPU name, or named with --peak-tflops).

    python benchmarks/train.py --size gpt2-small --steps 60 --warmup 10 --batch-size 16
    python benchmarks/train.py --size tiny --steps 6 --warmup 2    # CPU smoke test

Model FLOPs per token (PaLM appendix B): 6 x (weights of every matmul, lm_head included) +
12 x layers x width x seq_len (attention scores and values), forward + backward.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

SIZES: dict[str, dict[str, int]] = {
    "gpt2-small": {
        "hidden_size": 768,
        "num_layers": 12,
        "num_heads": 12,
        "intermediate_size": 2048,
    },
    "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128},
}

#: Dense bf16 tensor-core peaks (FLOP/s) by GPU name fragment, from the vendors' datasheets.
PEAKS: list[tuple[str, float]] = [
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
]


def detect_peak(device: torch.device) -> tuple[float | None, str]:
    """(peak bf16 FLOP/s, device name); None when the device is not in the table."""
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    for fragment, peak in PEAKS:
        if fragment in name:
            return peak, name
    return None, name


def flops_per_token(model: Any, seq_len: int) -> float:
    """Training FLOPs per token: 6 x matmul weights + 12 x layers x width x seq_len."""
    cfg = model.config
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    attention = 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len
    return float(6 * matmul + attention)


def _overrides(args: argparse.Namespace, root: Path) -> list[str]:
    dims = SIZES[args.size]
    return [
        f"output_dir={root / 'llmeco'}",
        "model.base=default",  # its tokenizer; the model itself is fresh (pretrain)
        "model.preset=null",
        *(f"model.{k}={v}" for k, v in dims.items()),
        f"data.dataset={root / 'dataset'}",
        f"seq_len={args.seq_len}",
        f"batch_size={args.batch_size}",
        f"max_steps={args.steps}",
        f"optim.warmup_steps={args.warmup}",
        "optim.lr=6e-4",
        "eval_every=0",
        "eval_batches=1",
        f"log_every={args.warmup}",
        "tensorboard=false",
        f"compile={str(args.compile).lower()}",
        f"precision={'bf16' if torch.cuda.is_available() else 'fp32'}",
    ]


def run_llmeco(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Train with llmeco's loop; tokens/s from its log between warm-up and the last step."""
    from rich.console import Console

    from llmeco.settings import Settings
    from llmeco.training.config import load_config
    from llmeco.training.loop import train
    from llmeco.training.runlog import read_log

    config = load_config(None, "pretrain", _overrides(args, root))
    train(config, settings=Settings(), console=Console(stderr=True), show_progress=False)
    marks = {e["step"]: e["elapsed_s"] for e in read_log(config.output_dir) if "elapsed_s" in e}
    seconds = marks[args.steps] - marks[args.warmup]
    tokens = (args.steps - args.warmup) * args.batch_size * args.seq_len
    return {"tokens_per_s": tokens / seconds, "timed_steps": args.steps - args.warmup}


def run_trainer(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Train the same model on the same blocks with HF ``Trainer``; time via a callback."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from llmeco.settings import Settings
    from llmeco.training.config import load_config
    from llmeco.training.setup import build_examples, build_parts

    config = load_config(None, "pretrain", _overrides(args, root))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parts = build_parts(config, Settings(), device)  # same seeded init as llmeco's run
    blocks = build_examples(config, parts, "train")

    class Blocks(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
        def __len__(self) -> int:
            return 10**6  # cycle like llmeco's stream does

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            ids = torch.tensor(blocks[i % len(blocks)][0])
            return {"input_ids": ids, "labels": ids}

    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, _args: Any, state: Any, _control: Any, **_: Any) -> None:
            if state.global_step in (args.warmup, args.steps):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                marks[state.global_step] = time.perf_counter()

    training_args = TrainingArguments(
        output_dir=str(root / "trainer"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=6e-4,
        warmup_steps=args.warmup,
        lr_scheduler_type="cosine",
        weight_decay=0.1,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        bf16=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
        logging_steps=args.warmup,
        save_strategy="no",
        report_to=[],
        dataloader_drop_last=True,
        torch_compile=args.peer_compile,
        seed=0,
    )
    trainer = Trainer(
        model=parts.model, args=training_args, train_dataset=Blocks(), callbacks=[Clock()]
    )
    trainer.train()
    seconds = marks[args.steps] - marks[args.warmup]
    tokens = (args.steps - args.warmup) * args.batch_size * args.seq_len
    return {"tokens_per_s": tokens / seconds, "timed_steps": args.steps - args.warmup}


def main() -> None:
    """Prepare data, run both trainers (the peer in a subprocess), print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="gpt2-small")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="Untimed first steps.")
    parser.add_argument("--compile", action="store_true", help="torch.compile llmeco's model.")
    parser.add_argument("--peer-compile", action="store_true", help="Trainer torch_compile.")
    parser.add_argument("--peak-tflops", type=float, default=None, help="Name the peak.")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-train"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--role", choices=["main", "llmeco", "trainer"], default="main")
    args = parser.parse_args()
    if args.steps <= args.warmup or args.steps % args.warmup:
        parser.error("--steps must be a multiple of --warmup and larger than it")

    root = args.out
    if args.role != "main":
        runner = run_llmeco if args.role == "llmeco" else run_trainer
        print(json.dumps(runner(args, root)))
        return

    import shutil

    from llmeco.data.pipeline import PrepareOptions, prepare_dataset

    shutil.rmtree(root, ignore_errors=True)
    prepare_dataset(
        [EXAMPLES / "corpus", EXAMPLES / "chat"],
        root / "dataset",
        PrepareOptions(validation_fraction=0.05),
    )
    results: dict[str, Any] = {}
    for role in ("llmeco", "trainer"):
        argv = [a for a in sys.argv[1:] if not a.startswith("--role")]
        done = subprocess.run(
            [sys.executable, __file__, *argv, "--role", role, "--out", str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-4000:])
            raise SystemExit(f"{role} run failed")
        results[role] = json.loads(done.stdout.strip().splitlines()[-1])

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak, name = detect_peak(device)
    if args.peak_tflops:
        peak = args.peak_tflops * 1e12
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmeco.modeling.load import load_tokenizer, resolve_model
    from llmeco.settings import Settings

    vocab = len(load_tokenizer(resolve_model("default", Settings()).path))
    dims = SIZES[args.size]
    with torch.device("meta"):
        probe = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=vocab,
                hidden_size=dims["hidden_size"],
                intermediate_size=dims["intermediate_size"],
                num_hidden_layers=dims["num_layers"],
                num_attention_heads=dims["num_heads"],
                tie_word_embeddings=True,
            )
        )
    per_token = flops_per_token(probe, args.seq_len)
    for result in results.values():
        result["model_tflops_per_s"] = result["tokens_per_s"] * per_token / 1e12
        result["mfu"] = result["tokens_per_s"] * per_token / peak if peak else None
    summary = {
        "benchmark": "train",
        "device": name,
        "peak_tflops": peak / 1e12 if peak else None,
        "size": args.size,
        "parameters": sum(p.numel() for p in probe.parameters()),
        "flops_per_token": per_token,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "compile": args.compile,
        "peer_compile": args.peer_compile,
        "llmeco": results["llmeco"],
        "trainer": results["trainer"],
        "speedup": results["llmeco"]["tokens_per_s"] / results["trainer"]["tokens_per_s"],
        "threads": torch.get_num_threads(),
        "loadavg": os.getloadavg(),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
