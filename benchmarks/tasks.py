"""Quality of the task endpoints on small held-out sets, through the real server.

Starts nothing itself: builds the app in-process over the real engine (``--model``, default
the packaged SmolLM2-135M-Instruct) and calls each ``/v1/tasks/...`` route as a client would.
Prints one JSON object: sentiment and intent accuracy, summary ROUGE-L, translation chrF and
BLEU, correction exact match and chrF, moderation accuracy/precision/recall of `flagged`, and
extract schema validity and field accuracy. The sets live in
``benchmarks/data/tasks/`` and were written for this benchmark (never used for prompting).

    LLMECO_HOME=.pytest_cache/d/llmeco-home .venv/bin/python benchmarks/tasks.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import sacrebleu
from rouge_score import rouge_scorer

from llmeco.engine.async_engine import AsyncEngine
from llmeco.server import build_app
from llmeco.settings import Settings

DATA = Path(__file__).parent / "data" / "tasks"
INTENTS = ["billing", "shipping", "returns", "technical", "account"]
EXTRACT_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "maxLength": 20},
        "quantity": {"type": "integer"},
    },
    "required": ["order_id", "quantity"],
    "additionalProperties": False,
}


def rows(name: str) -> list[dict[str, Any]]:
    """A JSONL set."""
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]


async def post(c: httpx.AsyncClient, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """One task call; raises on a non-200."""
    r = await c.post(f"/v1/tasks/{route}", json=body)
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


async def main() -> None:
    """Run every set and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    settings = Settings()
    engine = AsyncEngine.from_ref(args.model, settings)
    app = build_app(settings, {engine.model_info.name: engine})
    transport = httpx.ASGITransport(app=app)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"model": args.model}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=600) as c:
        sent = rows("sentiment.jsonl")
        answers = await asyncio.gather(*(post(c, "sentiment", {"text": r["text"]}) for r in sent))
        hits = sum(a["label"] == r["label"] for a, r in zip(answers, sent, strict=True))
        result["sentiment_accuracy"] = round(hits / len(sent), 3)
        result["sentiment_n"] = len(sent)

        intents = rows("intents.jsonl")
        answers = await asyncio.gather(
            *(post(c, "classify", {"text": r["text"], "labels": INTENTS}) for r in intents)
        )
        hits = sum(a["label"] == r["label"] for a, r in zip(answers, intents, strict=True))
        result["intent_accuracy"] = round(hits / len(intents), 3)
        result["intent_n"] = len(intents)

        summ = rows("summarize.jsonl")
        answers = await asyncio.gather(
            *(post(c, "summarize", {"text": r["text"], "max_words": 25}) for r in summ)
        )
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        rouge = [
            scorer.score(r["reference"], a["summary"])["rougeL"].fmeasure
            for a, r in zip(answers, summ, strict=True)
        ]
        result["summary_rougeL_f"] = round(sum(rouge) / len(rouge), 3)
        result["summary_n"] = len(summ)

        tr = rows("translate_en_fr.jsonl")
        answers = await asyncio.gather(
            *(post(c, "translate", {"text": r["text"], "target_language": "French"}) for r in tr)
        )
        hyps = [a["translation"] for a in answers]
        refs = [[r["reference"] for r in tr]]
        result["translate_en_fr_chrf"] = round(sacrebleu.corpus_chrf(hyps, refs).score, 2)
        result["translate_en_fr_bleu"] = round(sacrebleu.corpus_bleu(hyps, refs).score, 2)
        result["translate_n"] = len(tr)

        cor = rows("correct.jsonl")
        answers = await asyncio.gather(*(post(c, "correct", {"text": r["text"]}) for r in cor))
        fixed = [a["corrected"] for a in answers]
        exact = sum(f.strip() == r["reference"] for f, r in zip(fixed, cor, strict=True))
        result["correct_exact_match"] = round(exact / len(cor), 3)
        result["correct_chrf"] = round(
            sacrebleu.corpus_chrf(fixed, [[r["reference"] for r in cor]]).score, 2
        )
        result["correct_n"] = len(cor)

        mod = rows("moderate.jsonl")
        answers = await asyncio.gather(*(post(c, "moderate", {"text": r["text"]}) for r in mod))
        flags = [bool(a["flagged"]) for a in answers]
        truth = [bool(r["flagged"]) for r in mod]
        tp = sum(f and t for f, t in zip(flags, truth, strict=True))
        result["moderate_accuracy"] = round(
            sum(f == t for f, t in zip(flags, truth, strict=True)) / len(mod), 3
        )
        result["moderate_precision"] = round(tp / max(1, sum(flags)), 3)
        result["moderate_recall"] = round(tp / max(1, sum(truth)), 3)
        result["moderate_n"] = len(mod)

        orders = [("AB", 3), ("ZX", 12), ("KQ", 7), ("LM", 25), ("TR", 1)]
        texts = [f"Order {n}-{q}: please send {q} more units." for n, q in orders]
        answers = await asyncio.gather(
            *(post(c, "extract", {"text": t, "schema": EXTRACT_SCHEMA}) for t in texts * 2)
        )
        valid = correct = 0
        for a, (name, qty) in zip(answers, orders * 2, strict=True):
            try:
                jsonschema.validate(a["data"], EXTRACT_SCHEMA)
                valid += 1
            except jsonschema.ValidationError:
                continue
            correct += a["data"]["quantity"] == qty and name in a["data"]["order_id"]
        result["extract_schema_valid"] = round(valid / len(answers), 3)
        result["extract_fields_correct"] = round(correct / len(answers), 3)
        result["extract_n"] = len(answers)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    await engine.shutdown(timeout=1)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
