"""Support assistant quality on the shipped handbook: cited passages and hand-offs.

Builds (or reuses) the knowledge base ``handbook`` from ``examples/corpus/handbook.md`` in
``LLMECO_HOME``, serves the real model in-process and asks every question of
``examples/kb-questions/handbook.jsonl`` (answerable; each has an ``answer`` string) and
``unanswerable.jsonl`` through ``POST /v1/chat/completions`` with ``model: support:handbook``,
as an OpenAI client would. Prints JSON:

* ``cited_answer_rate`` — share of answerable questions whose answer cites (``[n]`` in the text)
  a passage containing the expected answer string (case-insensitive);
* ``handoff_rate_unanswerable`` — share of unanswerable questions handed off;
* ``handoff_rate_answerable`` — answerable questions wrongly handed off.

    LLMECO_HOME=.pytest_cache/d/llmeco-home .venv/bin/python benchmarks/support.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from llmeco.apps.conversations import ConversationLog
from llmeco.engine.async_engine import AsyncEngine
from llmeco.governance.crypto import Cipher
from llmeco.rag.embed import Embedder
from llmeco.rag.kb import open_or_create
from llmeco.server import build_app
from llmeco.server.support.desk import SupportDesk
from llmeco.settings import Settings
from llmeco.store import Store

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "examples" / "kb-questions"


def load(name: str) -> list[dict[str, Any]]:
    """A JSONL question set."""
    return [json.loads(x) for x in (QUESTIONS / name).read_text().splitlines() if x.strip()]


async def ask(c: httpx.AsyncClient, sem: asyncio.Semaphore, q: str, max_tokens: int) -> Any:
    """One support turn, in its own session."""
    async with sem:
        r = await c.post(
            "/v1/chat/completions",
            json={
                "model": "support:handbook",
                "messages": [{"role": "user", "content": q}],
                "max_tokens": max_tokens,
            },
        )
        r.raise_for_status()
        return r.json()


async def main() -> None:
    """Run both sets and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=60)
    ap.add_argument("--dump", action="store_true", help="print each miss to stderr")
    args = ap.parse_args()
    settings = Settings()
    store = Store.from_settings(settings)
    embedder = Embedder()
    kb = open_or_create(store, "handbook", embedder)
    kb.add_file(ROOT / "examples" / "corpus" / "handbook.md")
    desk = SupportDesk(store, embedder, ConversationLog(store, Cipher.from_settings(settings)))
    engine = AsyncEngine.from_ref(args.model, settings)
    app = build_app(settings, {engine.model_info.name: engine}, embedder, support=desk)
    answerable, unanswerable = load("handbook.jsonl"), load("unanswerable.jsonl")
    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.perf_counter()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=900) as c:
        a = await asyncio.gather(*(ask(c, sem, q["query"], args.max_tokens) for q in answerable))
        u = await asyncio.gather(*(ask(c, sem, q["query"], args.max_tokens) for q in unanswerable))
    wall = time.perf_counter() - t0
    cited_ok = handed_a = 0
    misses = []
    for q, r in zip(answerable, a, strict=True):
        choice = r["choices"][0]
        if choice["finish_reason"] == "handoff":
            handed_a += 1
            continue
        marks = {int(m) for m in re.findall(r"\[(\d+)\]", choice["message"]["content"])}
        texts = [c["text"].lower() for c in r["citations"] if c["index"] in marks]
        if any(q["answer"].lower() in t for t in texts):
            cited_ok += 1
        else:
            misses.append(q["id"])
            if args.dump:
                print(
                    json.dumps(
                        {
                            "id": q["id"],
                            "q": q["query"],
                            "expected": q["answer"],
                            "got": choice["message"]["content"],
                            "cited": sorted(marks),
                        }
                    ),
                    file=sys.stderr,
                )
    handed_u = sum(r["choices"][0]["finish_reason"] == "handoff" for r in u)
    print(
        json.dumps(
            {
                "model": args.model,
                "answerable": len(answerable),
                "unanswerable": len(unanswerable),
                "cited_answer_rate": round(cited_ok / len(answerable), 3),
                "handoff_rate_unanswerable": round(handed_u / len(unanswerable), 3),
                "handoff_rate_answerable": round(handed_a / len(answerable), 3),
                "wall_s": round(wall, 1),
                "misses": misses[:20],
            }
        )
    )
    await engine.shutdown(timeout=1)
    embedder.close()


if __name__ == "__main__":
    asyncio.run(main())
