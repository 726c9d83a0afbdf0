"""Engine throughput and latency against Hugging Face ``generate`` on the same weights.

For each concurrency C, C chat prompts are submitted at once to the native engine (continuous
batching) and, in the same run, fed as one left-padded batch to ``generate`` (the peer).
Both produce exactly ``--output-len`` tokens per request (EOS ignored) so the work is equal.
Prints one JSON object per (system, concurrency) and a summary with the ratios.

    python benchmarks/engine.py --model default --concurrency 1 4 16 64 --output-len 64 [--spread]

With --spread, requests ask for different output lengths (as real traffic does); the peer's
static batch then runs until its longest request is done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import ChatPrompt, SamplingParams
from llmeco.modeling.load import load_tokenizer, resolve_model
from llmeco.modeling.quant import quantize_int8
from llmeco.registry.checkout import resolve_local
from llmeco.settings import Settings

TOPICS = [
    "the history of the printing press",
    "how rainbows form",
    "why the sky is blue",
    "the rules of chess",
    "how to bake bread",
    "the water cycle",
    "volcanoes",
    "the life of bees",
    "how a bicycle works",
    "the moon landing",
    "photosynthesis",
    "the Roman empire",
    "how vaccines work",
    "the internet",
    "jazz music",
    "deep sea fish",
]


def prompts(n: int) -> list[ChatPrompt]:
    """n distinct chat prompts of varied length."""
    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        extra = " Please be detailed and precise." * (i % 4)
        out.append(ChatPrompt([{"role": "user", "content": f"Tell me about {topic}.{extra}"}]))
    return out


def pct(values: list[float], q: float) -> float:
    """q-th percentile (0..100) of values, in milliseconds."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k] * 1000


def lengths(n: int, out_len: int, spread: bool) -> list[int]:
    """Per-request output lengths: all ``out_len``, or spread over [out_len/4, 2*out_len]."""
    if not spread:
        return [out_len] * n
    rng = random.Random(n)
    return [rng.randint(max(1, out_len // 4), 2 * out_len) for _ in range(n)]


async def run_engine(
    engine: AsyncEngine, batch: list[ChatPrompt], lens: list[int], concurrency: int
) -> dict[str, Any]:
    """Closed loop: at most ``concurrency`` requests in flight, the next starts as one ends."""
    gate = asyncio.Semaphore(concurrency)
    ttft: list[float] = []
    itl: list[float] = []
    total = 0

    async def one(i: int, p: ChatPrompt) -> None:
        async with gate:
            await one_request(i, p)

    async def one_request(i: int, p: ChatPrompt) -> None:
        nonlocal total
        params = SamplingParams(max_tokens=lens[i], temperature=0.0, ignore_eos=True)
        start = time.perf_counter()
        last = start
        first = True
        async for out in engine.generate(p, params, f"bench-{i}-{start}"):
            now = time.perf_counter()
            n = sum(len(d.token_ids) for d in out.deltas)
            total += n
            if first:
                ttft.append(now - start)
                first = False
            else:
                itl.append(now - last)
            last = now

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, p) for i, p in enumerate(batch)))
    wall = time.perf_counter() - t0
    return summary("llmeco", concurrency, len(batch), total, wall, ttft, itl)


class _StepClock(LogitsProcessor):
    """Records when ``generate`` produces each step's logits (one token per sequence)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.times.append(time.perf_counter())
        return scores


def run_hf(model: Any, tok: Any, batch: list[ChatPrompt], lens: list[int]) -> dict[str, Any]:
    """One left-padded batch; a static batch runs until its longest request is done, so
    only the tokens each request asked for count as output."""
    out_len = max(lens)
    texts = [
        tok.apply_chat_template(p.messages, add_generation_prompt=True, tokenize=False)
        for p in batch
    ]
    tok.padding_side = "left"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    clock = _StepClock()
    t0 = time.perf_counter()
    with torch.inference_mode():
        model.generate(
            **enc,
            max_new_tokens=out_len,
            min_new_tokens=out_len,
            do_sample=False,
            logits_processor=LogitsProcessorList([clock]),
            pad_token_id=tok.pad_token_id or tok.eos_token_id,
        )
    wall = time.perf_counter() - t0
    generated = sum(lens)  # min_new_tokens=max(lens): every request got its share
    ttft = [clock.times[0] - t0] * len(batch) if clock.times else []
    itl = [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)] * len(batch)
    return summary("hf-generate", len(batch), len(batch), generated, wall, ttft, itl)


def summary(
    system: str, c: int, n: int, tokens: int, wall: float, ttft: list[float], itl: list[float]
) -> dict[str, Any]:
    return {
        "system": system,
        "concurrency": c,
        "num_prompts": n,
        "output_tokens": tokens,
        "seconds": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "ttft_ms_p50": round(pct(ttft, 50), 1),
        "ttft_ms_p99": round(pct(ttft, 99), 1),
        "itl_ms_p50": round(pct(itl, 50), 2),
        "itl_ms_p99": round(pct(itl, 99), 2),
        "ttft_ms_mean": round(statistics.fmean(ttft) * 1000, 1) if ttft else None,
    }


def merge(parts: list[dict[str, Any]], c: int) -> dict[str, Any]:
    """Combine consecutive static batches into one figure for the whole run."""
    tokens = sum(p["output_tokens"] for p in parts)
    seconds = sum(p["seconds"] for p in parts)
    out = dict(parts[0])
    out.update(
        concurrency=c,
        num_prompts=sum(p["num_prompts"] for p in parts),
        output_tokens=tokens,
        seconds=round(seconds, 3),
        tokens_per_s=round(tokens / seconds, 2),
        ttft_ms_p99=max(p["ttft_ms_p99"] for p in parts),
        itl_ms_p99=max(p["itl_ms_p99"] for p in parts),
    )
    return out


def peer_main(args: argparse.Namespace) -> None:
    """The peer in its own process, so neither side's torch threads disturb the other's."""
    source = resolve_model(args.model, Settings(), resolve_ref=resolve_local)
    if args.peer_quantization == "int8":  # the same int8 weights and kernel as llmeco's
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.bfloat16)
        quantize_int8(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=getattr(torch, args.dtype))
    model.eval()
    tok = load_tokenizer(source.path)
    run_hf(model, tok, prompts(2), [8, 8])  # warm-up
    for c in args.concurrency:
        n = c * args.waves
        batch, lens = prompts(n), lengths(n, args.output_len, args.spread)
        # A static-batching server: run the requests C at a time, each batch to its end.
        parts = [run_hf(model, tok, batch[i : i + c], lens[i : i + c]) for i in range(0, n, c)]
        print(json.dumps(merge(parts, c)), flush=True)


async def engine_main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """llmeco at each concurrency; the engine thread does all of the torch work."""
    settings = Settings(
        dtype="bfloat16" if args.quantization == "int8" else args.dtype,
        quantization=args.quantization,
        max_num_seqs=max(args.concurrency),
        kv_cache_tokens=65536,
    )
    engine = AsyncEngine.from_ref(args.model, settings)
    await run_engine(engine, prompts(2), [8, 8], 2)  # warm-up
    results = []
    for c in args.concurrency:
        n = c * args.waves
        results.append(
            await run_engine(engine, prompts(n), lengths(n, args.output_len, args.spread), c)
        )
        print(json.dumps(results[-1]), flush=True)
    await engine.shutdown()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="default")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument(
        "--quantization",
        default="none",
        choices=["none", "int8"],
        help="llmeco: int8 weight-only (bfloat16 activations)",
    )
    ap.add_argument(
        "--peer-quantization",
        default="none",
        choices=["none", "int8"],
        help="HF generate: int8 runs it with llmeco's int8 layers (same weights and kernel); "
        "none runs it at --dtype",
    )
    ap.add_argument(
        "--spread",
        action="store_true",
        help="vary output lengths per request (out/4..2*out) as real traffic does",
    )
    ap.add_argument(
        "--waves",
        type=int,
        default=1,
        help="send concurrency x waves prompts, keeping `concurrency` in flight",
    )
    ap.add_argument("--skip-peer", action="store_true", help="measure llmeco only")
    ap.add_argument("--peer-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_only:
        peer_main(args)
        return
    meta = {
        "model": args.model,
        "dtype": args.dtype,
        "quantization": args.quantization,
        "peer_quantization": args.peer_quantization,
        "threads": torch.get_num_threads(),
        "output_len": args.output_len,
        "spread": args.spread,
        "waves": args.waves,
        "torch": torch.__version__,
    }
    print(json.dumps({"config": meta}), flush=True)
    ours = asyncio.run(engine_main(args))
    if args.skip_peer:
        return
    cmd = [
        sys.executable,
        __file__,
        "--peer-only",
        "--model",
        args.model,
        "--dtype",
        args.dtype,
        "--peer-quantization",
        args.peer_quantization,
        "--output-len",
        str(args.output_len),
        *(["--spread"] if args.spread else []),
        "--waves",
        str(args.waves),
        "--concurrency",
        *map(str, args.concurrency),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    peers = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for p in peers:
        print(json.dumps(p), flush=True)
    ratios = {
        str(o["concurrency"]): round(o["tokens_per_s"] / p["tokens_per_s"], 2)
        for o, p in zip(ours, peers, strict=True)
    }
    print(json.dumps({"summary": {"throughput_ratio_vs_hf_generate": ratios, **meta}}), flush=True)


if __name__ == "__main__":
    main()
