"""Speculative decoding: llmeco with and without it, against HF ``generate`` in the same run.

The prompts are the kind speculation is for — the answer copies the input: summaries that
quote, spelling corrections, answers quoted from retrieved passages. For each concurrency C
(default 1 and 4), C prompts at once go to:

* llmeco, speculation off (``LLMECO_SPECULATIVE=off``);
* llmeco, n-gram prompt lookup (``LLMECO_SPECULATIVE=ngram``, ``--num-draft`` tokens);
* optionally llmeco with a draft model (``--draft MODEL``);
* HF ``generate`` greedy, one left-padded batch (the peer, no speculation);
* HF ``generate(prompt_lookup_num_tokens=...)`` (HF's prompt lookup; it only takes batch
  size 1, so at C > 1 the prompts run one after another).

Every system decodes greedily with EOS honoured, so llmeco with and without speculation
produces the same tokens (checked: the run fails otherwise); tokens/s counts the tokens each
system actually generated. The acceptance rate is accepted / drafted tokens. Prints one JSON
object per (system, concurrency) and a summary with the ratios:

    python benchmarks/speculative.py --model default --concurrency 1 4 --output-len 192
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import ChatPrompt, SamplingParams
from llmeco.modeling.chat import render_chat
from llmeco.modeling.load import load_tokenizer, resolve_model
from llmeco.registry.checkout import resolve_local
from llmeco.settings import Settings

TEXTS = [
    "Our electric bikes ship with a 500 Wh battery that charges fully in about five hours. "
    "The battery can be removed with the key and charged indoors. Store it at room "
    "temperature and charge it at least once every three months when the bike is not used.",
    "To adjust the saddle height, open the quick release lever under the saddle, slide the "
    "seat post up or down until your leg is almost straight at the bottom of the pedal "
    "stroke, then close the lever firmly. Never raise the post above the minimum insert line.",
    "Refunds: annual plans can be refunded in full within 30 days of purchase. After that, "
    "the unused months are refunded as account credit. Monthly plans are not refunded, but "
    "you can cancel at any time and keep access until the end of the paid month.",
    "The warranty covers the frame for five years and the motor and battery for two years "
    "from the date of delivery. Damage from accidents, misuse or unauthorised repairs is not "
    "covered. Keep your receipt: we need it to process any warranty claim.",
]

TYPOS = {"battery": "batery", "charge": "chage", "the": "teh", "years": "yeras"}


def _misspell(text: str) -> str:
    for right, wrong in TYPOS.items():
        text = text.replace(f" {right} ", f" {wrong} ")
    return text


def workload(n: int) -> list[ChatPrompt]:
    """n chat prompts whose answers copy their input (correction, quote, summary)."""
    out = []
    for i in range(n):
        text = TEXTS[i % len(TEXTS)]
        kind = i % 3
        if kind == 0:
            ask = "Fix the spelling mistakes. Reply with the corrected text only."
            msg = f"{ask}\n\n{_misspell(text)}"
        elif kind == 1:
            msg = (
                "Answer the question by quoting the passage word for word.\n\n"
                f"Passage: {text}\n\nQuestion: what does the passage say? Quote it."
            )
        else:
            msg = f"Repeat the following text exactly, then summarise it in one sentence.\n\n{text}"
        out.append(ChatPrompt([{"role": "user", "content": msg}]))
    return out


async def run_llmeco(
    engine: AsyncEngine, chats: list[ChatPrompt], max_tokens: int
) -> tuple[list[list[int]], float]:
    """Submit every prompt at once; (output ids per prompt, wall seconds)."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)

    async def one(i: int, chat: ChatPrompt) -> list[int]:
        ids: list[int] = []
        async for out in engine.generate(chat, params, f"b{i}-{time.monotonic_ns()}"):
            for d in out.deltas:
                ids.extend(d.token_ids)
        return ids

    t0 = time.perf_counter()
    outs = await asyncio.gather(*(one(i, c) for i, c in enumerate(chats)))
    return list(outs), time.perf_counter() - t0


def run_hf(
    model: Any, tok: Any, chats: list[ChatPrompt], max_tokens: int, lookup: int, eos: list[int]
) -> tuple[int, float]:
    """HF generate (batched, or one by one with prompt lookup); (tokens generated, seconds)."""
    texts = [render_chat(tok, c.messages, add_generation_prompt=True) for c in chats]
    kw: dict[str, Any] = {"max_new_tokens": max_tokens, "do_sample": False,
                          "eos_token_id": eos, "pad_token_id": eos[0]}  # fmt: skip
    tokens = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        if lookup:
            for text in texts:
                enc = tok(text, return_tensors="pt", add_special_tokens=False)
                out = model.generate(**enc, prompt_lookup_num_tokens=lookup, **kw)
                tokens += _count(out[0, enc["input_ids"].shape[1] :].tolist(), eos)
        else:
            tok.padding_side = "left"
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, **kw)
            width = enc["input_ids"].shape[1]
            tokens = sum(_count(row[width:].tolist(), eos) for row in out)
    return tokens, time.perf_counter() - t0


def _count(ids: list[int], eos: list[int]) -> int:
    """Generated tokens up to and including the first EOS (the rest is padding)."""
    for i, t in enumerate(ids):
        if t in eos:
            return i + 1
    return len(ids)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print JSON lines and a summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--output-len", type=int, default=192)
    ap.add_argument("--num-draft", type=int, default=5)
    ap.add_argument("--draft", default="", help="Also run LLMECO_SPECULATIVE=draft:DRAFT.")
    ap.add_argument("--threads", type=int, default=0, help="Torch threads (0: torch's default).")
    ap.add_argument("--no-hf", action="store_true", help="Skip the HF peers (quick checks).")
    ap.add_argument(
        "--quantization",
        default="none",
        choices=["none", "auto", "int8", "int4"],
        help="llmeco's weights (default none: float32, as the HF peer). Quantized paths run "
        "bfloat16 activations, whose rounding differs between a 1-token decode and a k+1-token "
        "verify, so their greedy outputs may differ from speculation off at near-ties.",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings(threads=args.threads, quantization=args.quantization)
    source = resolve_model(args.model, settings, resolve_ref=resolve_local)
    tok = load_tokenizer(source.path)
    methods = ["off", "ngram"] + ([f"draft:{args.draft}"] if args.draft else [])
    rows: list[dict[str, Any]] = []
    reference: dict[int, list[list[int]]] = {}
    for method in methods:
        engine = AsyncEngine.from_ref(
            args.model,
            settings.model_copy(
                update={"speculative": method, "num_speculative_tokens": args.num_draft}
            ),
        )
        eos = list(engine.model_info.eos_token_ids)
        try:
            for c in args.concurrency:
                chats = workload(c)
                asyncio.run(run_llmeco(engine, chats[:1], 8))  # warm-up
                before = engine.stats()
                outs, secs = asyncio.run(run_llmeco(engine, chats, args.output_len))
                after = engine.stats()
                drafted = after.spec_draft_tokens - before.spec_draft_tokens
                accepted = after.spec_accepted_tokens - before.spec_accepted_tokens
                if method == "off":
                    reference[c] = outs
                elif outs != reference[c] and args.quantization == "none":
                    raise SystemExit(f"{method}: greedy output differs from speculation off")
                tokens = sum(len(o) for o in outs)
                row = {"system": f"llmeco-{method.split(':')[0]}", "concurrency": c,
                       "tokens": tokens, "seconds": round(secs, 3),
                       "tokens_per_s": round(tokens / secs, 2),
                       "acceptance_rate": round(accepted / drafted, 4) if drafted else None,
                       "drafted": drafted, "accepted": accepted,
                       "identical_to_off": outs == reference[c],
                       "quantization": args.quantization}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            asyncio.run(engine.shutdown(timeout=5))
    if not args.no_hf:
        hf: Any = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32)
        hf.eval()
        for c in args.concurrency:
            chats = workload(c)
            run_hf(hf, tok, chats[:1], 8, 0, eos)  # warm-up
            for lookup in (0, args.num_draft):
                tokens, secs = run_hf(hf, tok, chats, args.output_len, lookup, eos)
                name = "hf-generate-prompt-lookup" if lookup else "hf-generate"
                row = {"system": name, "concurrency": c, "tokens": tokens,
                       "seconds": round(secs, 3),
                       "tokens_per_s": round(tokens / secs, 2)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {"summary": True, "model": source.name, "torch": torch.__version__}
    for c in args.concurrency:
        by = {r["system"]: r["tokens_per_s"] for r in rows if r["concurrency"] == c}
        ratios = {}
        if "llmeco-off" in by:
            ratios["ngram_vs_off"] = round(by["llmeco-ngram"] / by["llmeco-off"], 2)
        for peer in ("hf-generate", "hf-generate-prompt-lookup"):
            if peer in by:
                ratios[f"ngram_vs_{peer}"] = round(by["llmeco-ngram"] / by[peer], 2)
        summary[f"c{c}"] = ratios
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
