"""Engine throughput and latency against Hugging Face ``generate`` on the same weights.

For each concurrency C, C chat prompts are submitted at once to the native engine (continuous
batching) and, in the same run, fed as one left-padded batch to ``generate`` (the peer).
Both produce exactly ``--output-len`` tokens per request (EOS ignored) so the work is equal.
Prints one JSON object per (system, concurrency) and a summary with the ratios.

    python benchmarks/engine.py --model default --concurrency 1 4 16 64 --output-len 64 [--spread]

With --spread, requests ask for different output lengths (as real traffic does); the peer's
static batch then runs until its longest request is done.

With --shared-prefix, every prompt is a support-style chat: one system prompt with ~600
tokens of handbook passages (``--prefix-tokens``) and a varying customer question. llmeco
runs twice, prefix caching off then on (fresh engines, the cache starts empty), and the
summary gives the TTFT p50 and throughput ratios and both against HF ``generate``:

    python benchmarks/engine.py --shared-prefix --concurrency 16 --waves 2 --output-len 32

With --warm-prefix, each engine first answers one earlier ticket with the same system prompt
(not measured), so the run sees a service's steady state, where the prompt was seen before,
rather than its first burst (as vLLM's prefix-caching example warms up first).
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


SYSTEM = (
    "You are the support assistant of Acme Cloud Storage. Answer the customer's question "
    "using only the handbook passages below; quote the passage you rely on, and say so "
    "when the passages do not cover the question.\n\nHandbook passages:\n"
)

PASSAGES = [
    "Refunds: annual plans can be refunded in full within 30 days of purchase; after that, "
    "the unused months are refunded pro rata. Monthly plans are not refunded, but can be "
    "cancelled at any time and stay active until the end of the paid month.",
    "Storage limits: the Basic plan includes 200 GB, Plus 2 TB and Business 10 TB per seat. "
    "When an account goes over its limit, uploads pause but existing files stay readable; "
    "nothing is deleted for 90 days.",
    "Two-factor authentication: customers can enable an authenticator app or a hardware key "
    "under Settings, Security. Support can never disable two-factor authentication over chat; "
    "the customer must use a recovery code or the identity check by video call.",
    "Shared folders: a shared folder counts against the owner's storage only. Members with "
    "edit rights can add and delete files; deleted files go to the owner's trash for 30 days.",
    "Version history: every file keeps its previous versions for 30 days on Basic, 180 days "
    "on Plus and one year on Business. Restoring a version creates a new version and does "
    "not delete the newer ones.",
    "Invoices: invoices are emailed to the billing contact on the day of each charge and can "
    "be downloaded under Billing, History. A company name or VAT number added later appears "
    "on the next invoice only; support can reissue the last 12 invoices on request.",
    "Data location: customers on Business can choose EU or US storage when the account is "
    "created. Moving an existing account between regions takes up to 7 days, during which "
    "files stay readable but sharing links are paused.",
    "Account deletion: deleting an account removes every file after a 14-day grace period, "
    "during which the owner can cancel the deletion by signing in. After the grace period the "
    "data cannot be recovered by anyone, including Acme engineers.",
    "Outages: the status page lists current incidents. Customers on Business get a 99.9% "
    "monthly uptime commitment; below it, a service credit of 10% of the monthly fee per "
    "0.1% missed is applied automatically to the next invoice.",
    "Desktop sync: the sync client supports Windows 10 and later, macOS 12 and later and "
    "Ubuntu 22.04 and later. Files larger than 50 GB are uploaded through the web app only; "
    "the client skips them and shows a warning.",
    "Password reset: reset links are valid for one hour and can be used once. If the email "
    "address on the account no longer works, the customer must go through the identity check "
    "by video call; support cannot change the address over chat.",
    "Family plan: up to six people share 2 TB; each member has a private space the others "
    "cannot see. The organizer pays and can remove members, whose files stay in their own "
    "free Basic account afterwards.",
]

QUESTIONS = [
    "Can I get my money back on the annual plan I bought three weeks ago?",
    "What happens to my files if I go over my storage limit?",
    "I lost my phone, can you turn off two-factor authentication for me?",
    "Do files in a folder someone shared with me use my storage?",
    "How long are old versions of my documents kept on the Plus plan?",
    "I need our VAT number on last month's invoice, is that possible?",
    "Can we move our company account from the US to the EU?",
    "If I delete my account by mistake, can I undo it?",
    "There was an outage yesterday, do we get a credit?",
    "Does the desktop app work on Ubuntu 20.04?",
    "My reset link says it expired, what do I do?",
    "How many people can join a family plan?",
    "Can I upload a 70 GB video with the sync client?",
    "Will my files be deleted if I cancel my monthly plan today?",
    "Who can delete files in a shared folder?",
    "Can support change the email address on my account?",
]


def shared_prefix_prompts(n: int, tok: Any, prefix_tokens: int) -> list[ChatPrompt]:
    """n support chats: the same system prompt and passages (at least ``prefix_tokens``
    tokens), and a different question each (cycling through :data:`QUESTIONS`)."""
    text = SYSTEM
    i = 0
    while len(tok(text, add_special_tokens=False)["input_ids"]) < prefix_tokens:
        text += f"[{i + 1}] {PASSAGES[i % len(PASSAGES)]}\n"
        i += 1
    return [
        ChatPrompt(
            [
                {"role": "system", "content": text},
                {"role": "user", "content": f"(ticket {1000 + k}) {QUESTIONS[k % len(QUESTIONS)]}"},
            ]
        )
        for k in range(n)
    ]


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
        batch, lens = workload(args, n, tok), lengths(n, args.output_len, args.spread)
        # A static-batching server: run the requests C at a time, each batch to its end.
        parts = [run_hf(model, tok, batch[i : i + c], lens[i : i + c]) for i in range(0, n, c)]
        print(json.dumps(merge(parts, c)), flush=True)


def workload(args: argparse.Namespace, n: int, tok: Any) -> list[ChatPrompt]:
    """The n prompts of one run: distinct topics, or support chats sharing a long prefix."""
    if args.shared_prefix:
        return shared_prefix_prompts(n, tok, args.prefix_tokens)
    return prompts(n)


async def engine_main(args: argparse.Namespace, caching: bool, label: str) -> list[dict[str, Any]]:
    """llmeco at each concurrency; the engine thread does all of the torch work."""
    settings = Settings(
        dtype="bfloat16" if args.quantization in ("int8", "int4") else args.dtype,
        quantization=args.quantization,
        max_num_seqs=max(args.concurrency),
        kv_cache_tokens=65536,
        prefix_caching=caching,
    )
    engine = AsyncEngine.from_ref(args.model, settings)
    await run_engine(engine, prompts(2), [8, 8], 2)  # warm-up (shares no passages)
    if args.shared_prefix and args.warm_prefix:
        # a service's steady state: the system prompt and passages were seen before (one
        # earlier ticket, not measured); with caching off this computes nothing reusable
        seen = shared_prefix_prompts(1, engine.tokenizer, args.prefix_tokens)[0]
        seen.messages[-1]["content"] = "(ticket 999) Hello, is anyone there?"
        await run_engine(engine, [seen], [1], 1)
    results = []
    for c in args.concurrency:
        n = c * args.waves
        batch = workload(args, n, engine.tokenizer)
        result = await run_engine(engine, batch, lengths(n, args.output_len, args.spread), c)
        stats = engine.stats()
        result["system"] = label
        result["prefix_caching"] = caching
        result["prefix_cache_hit_rate"] = (
            round(stats.prefix_hit_tokens / stats.prefix_queried_tokens, 3)
            if stats.prefix_queried_tokens
            else 0.0
        )
        results.append(result)
        print(json.dumps(results[-1]), flush=True)
    await engine.shutdown()
    return results


def cache_ratios(on: list[dict[str, Any]], off: list[dict[str, Any]]) -> dict[str, Any]:
    """TTFT p50 and throughput of prefix caching on against off, per concurrency."""
    return {
        "ttft_p50_ratio_cache_off_over_on": {
            str(o["concurrency"]): round(u["ttft_ms_p50"] / o["ttft_ms_p50"], 2)
            for o, u in zip(on, off, strict=True)
        },
        "throughput_ratio_cache_on_over_off": {
            str(o["concurrency"]): round(o["tokens_per_s"] / u["tokens_per_s"], 2)
            for o, u in zip(on, off, strict=True)
        },
    }


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
        choices=["none", "int8", "int4"],
        help="llmeco: int8 or int4 (group-wise) weight-only, bfloat16 activations",
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
    ap.add_argument(
        "--shared-prefix",
        action="store_true",
        help="support chats sharing a system prompt + passages; llmeco with prefix caching "
        "off and on",
    )
    ap.add_argument(
        "--prefix-tokens",
        type=int,
        default=600,
        help="--shared-prefix: tokens of system prompt and passages shared by every prompt",
    )
    ap.add_argument(
        "--warm-prefix",
        action="store_true",
        help="--shared-prefix: one earlier request with the same system prompt and passages "
        "(not measured) before the run, as in a service that has seen them before",
    )
    ap.add_argument(
        "--no-prefix-caching",
        action="store_true",
        help="llmeco with LLMECO_PREFIX_CACHING=false (ignored with --shared-prefix, which "
        "runs both)",
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
        "shared_prefix": args.shared_prefix,
        "prefix_tokens": args.prefix_tokens if args.shared_prefix else None,
        "warm_prefix": args.shared_prefix and args.warm_prefix,
    }
    print(json.dumps({"config": meta}), flush=True)
    uncached: list[dict[str, Any]] = []
    if args.shared_prefix:
        uncached = asyncio.run(engine_main(args, False, "llmeco-no-prefix-cache"))
        ours = asyncio.run(engine_main(args, True, "llmeco-prefix-cache"))
    else:
        ours = asyncio.run(engine_main(args, not args.no_prefix_caching, "llmeco"))
    if args.skip_peer:
        if uncached:
            print(json.dumps({"summary": {**cache_ratios(ours, uncached), **meta}}), flush=True)
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
        *(
            ["--shared-prefix", "--prefix-tokens", str(args.prefix_tokens)]
            if args.shared_prefix
            else []
        ),
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
    extra: dict[str, Any] = {}
    if uncached:
        extra = cache_ratios(ours, uncached)
        extra["throughput_ratio_cache_off_vs_hf_generate"] = {
            str(u["concurrency"]): round(u["tokens_per_s"] / p["tokens_per_s"], 2)
            for u, p in zip(uncached, peers, strict=True)
        }
        extra["ttft_p50_ratio_hf_generate_over_cache_on"] = {
            str(o["concurrency"]): round(p["ttft_ms_p50"] / o["ttft_ms_p50"], 2)
            for o, p in zip(ours, peers, strict=True)
        }
    summary_ = {"throughput_ratio_vs_hf_generate": ratios, **extra, **meta}
    print(json.dumps({"summary": summary_}), flush=True)


if __name__ == "__main__":
    main()
