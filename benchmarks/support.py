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

``--details PATH`` writes one JSON line per question (answer, citations, outcome: ``cited``,
``wrong_citation`` with ``retrieved`` saying whether any passage held the answer, ``handoff``,
``answered``). ``--set calibration`` runs the calibration sets instead of the evaluation sets.

``--calibrate`` runs no model: it fits the answerability gate on the calibration sets
(:func:`llmeco.apps.support.calibration.calibrate`, threshold chosen on out-of-fold
probabilities to hand off ≥ 80% of the unanswerable calibration questions) and prints it
with the rates it gives on
the calibration sets (out of fold) and on the evaluation sets (reported, never used to choose);
``--write`` also writes it to ``src/llmeco/apps/default_gate.json``, the gate the assistant uses
for a knowledge base that has not been calibrated.

    LLMECO_HOME=.pytest_cache/d/llmeco-home .venv/bin/python benchmarks/support.py
    LLMECO_HOME=.pytest_cache/d/llmeco-home .venv/bin/python benchmarks/support.py \
        --calibrate --write
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

from llmeco.apps import answerability
from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support import calibration
from llmeco.apps.support.desk import SupportDesk
from llmeco.engine.async_engine import AsyncEngine
from llmeco.governance.crypto import Cipher
from llmeco.rag.embed import Embedder
from llmeco.rag.kb import KnowledgeBase, open_or_create
from llmeco.server import build_app
from llmeco.settings import Settings
from llmeco.store import Store

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "examples" / "kb-questions"
#: Question sets: (answerable, unanswerable) file names under ``QUESTIONS``.
SETS = {
    "evaluation": ("handbook.jsonl", "unanswerable.jsonl"),
    "calibration": ("calibration.jsonl", "calibration-unanswerable.jsonl"),
}


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


def calibrate(kb: KnowledgeBase, embedder: Embedder, write: bool) -> dict[str, Any]:
    """Fit the gate on the calibration sets; report it on both (see the module docstring)."""
    gate = calibration.calibrate(
        kb, embedder, embedder.name, *(QUESTIONS / n for n in SETS["calibration"])
    )
    ea, eu = (
        calibration.question_signals(kb, embedder, [q["query"] for q in load(n)])
        for n in SETS["evaluation"]
    )
    if write:
        # paths relative to the repository, so the shipped file does not name this machine
        files = gate.fitted_on.get("files", {})
        gate.fitted_on["files"] = {str(Path(k).relative_to(ROOT)): v for k, v in files.items()}
        answerability.DEFAULT_GATE.write_text(gate.to_json() + "\n")
    return {
        "gate": json.loads(gate.to_json()),
        "evaluation": {
            "answered": round(sum(map(gate.answers, ea)) / len(ea), 3),
            "handoff_unanswerable": round(sum(not gate.answers(x) for x in eu) / len(eu), 3),
        },
        "written": str(answerability.DEFAULT_GATE) if write else None,
    }


def outcome(q: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    """One answerable question's result: cited / wrong_citation / handoff."""
    choice = r["choices"][0]
    text = choice["message"]["content"]
    expected = q["answer"].lower()
    if choice["finish_reason"] == "handoff":
        kind = "handoff"
        marks: set[int] = set()
    else:
        marks = {int(m) for m in re.findall(r"\[(\d+)\]", text)}
        texts = [c["text"].lower() for c in r["citations"] if c["index"] in marks]
        kind = "cited" if any(expected in t for t in texts) else "wrong_citation"
    holders = [c["index"] for c in r["citations"] if expected in c["text"].lower()]
    return {
        "id": q["id"],
        "query": q["query"],
        "expected": q["answer"],
        "outcome": kind,
        "answer": text,
        "cited": sorted(marks),
        "passages_with_answer": holders,
        "retrieved": bool(holders),
        "reason": (r.get("handoff") or {}).get("reason"),
    }


async def main() -> None:
    """Run both sets and print the figures (or, with ``--calibrate``, the thresholds)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=60)
    ap.add_argument("--set", choices=sorted(SETS), default="evaluation")
    ap.add_argument("--details", type=Path, help="write per-question outcomes (JSONL) here")
    ap.add_argument("--calibrate", action="store_true", help="fit the answerability gate")
    ap.add_argument("--write", action="store_true", help="with --calibrate: ship the gate")
    ap.add_argument("--dump", action="store_true", help="print each miss to stderr")
    args = ap.parse_args()
    settings = Settings()
    store = Store.from_settings(settings)
    embedder = Embedder()
    kb = open_or_create(store, "handbook", embedder)
    kb.add_file(ROOT / "examples" / "corpus" / "handbook.md")
    if args.calibrate:
        print(json.dumps(calibrate(kb, embedder, args.write)))
        embedder.close()
        return
    desk = SupportDesk(store, embedder, ConversationLog(store, Cipher.from_settings(settings)))
    engine = AsyncEngine.from_ref(args.model, settings)
    app = build_app(settings, {engine.model_info.name: engine}, embedder, support=desk)
    answerable, unanswerable = (load(n) for n in SETS[args.set])
    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.perf_counter()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=900) as c:
        a = await asyncio.gather(*(ask(c, sem, q["query"], args.max_tokens) for q in answerable))
        u = await asyncio.gather(*(ask(c, sem, q["query"], args.max_tokens) for q in unanswerable))
    wall = time.perf_counter() - t0
    details = [outcome(q, r) for q, r in zip(answerable, a, strict=True)]
    for q, r in zip(unanswerable, u, strict=True):
        handed = r["choices"][0]["finish_reason"] == "handoff"
        details.append(
            {
                "id": q["id"],
                "query": q["query"],
                "outcome": "handoff" if handed else "answered",
                "answer": r["choices"][0]["message"]["content"],
                "reason": (r.get("handoff") or {}).get("reason"),
            }
        )
    if args.details:
        args.details.write_text("".join(json.dumps(d) + "\n" for d in details))
    graded = details[: len(answerable)]
    misses = [d for d in graded if d["outcome"] == "wrong_citation"]
    if args.dump:
        for d in misses:
            print(json.dumps(d), file=sys.stderr)
    count = {k: sum(d["outcome"] == k for d in graded) for k in ("cited", "handoff")}
    handed_u = sum(d["outcome"] == "handoff" for d in details[len(answerable) :])
    print(
        json.dumps(
            {
                "model": args.model,
                "set": args.set,
                "answerable": len(answerable),
                "unanswerable": len(unanswerable),
                "cited_answer_rate": round(count["cited"] / len(answerable), 3),
                "handoff_rate_unanswerable": round(handed_u / len(unanswerable), 3),
                "handoff_rate_answerable": round(count["handoff"] / len(answerable), 3),
                "wrong_citation_rate": round(len(misses) / len(answerable), 3),
                "wrong_citation_answer_not_retrieved": sum(not d["retrieved"] for d in misses),
                "wall_s": round(wall, 1),
                "misses": [d["id"] for d in misses][:20],
            }
        )
    )
    await engine.shutdown(timeout=1)
    embedder.close()


if __name__ == "__main__":
    asyncio.run(main())
