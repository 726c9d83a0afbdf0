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

``--calibrate`` runs no model: it computes the hand-off signals (best question–sentence
similarity, per-word similarities and IDF weights) for the calibration sets and picks the
thresholds (``MIN_SENTENCE_SIMILARITY``, ``MIN_TERM_COVERAGE``, ``MIN_WORD_SIMILARITY``,
``MIN_WORD_MATCH`` of ``llmeco.apps.support``) that answer the most answerable calibration
questions while handing off at least ``HANDOFF_TARGET`` (80%) of the unanswerable ones —
preferring, among ties, more hand-offs, then lower thresholds. It does so for each signal set
of :data:`VARIANTS` (words alike without the word gate, as shipped; IDF weights with the
least-matched-word gate) and prints the thresholds with the rates they give on both sets (the
evaluation rates are reported, never used to choose) and the ``frontier``: the most answerable
calibration questions answered at each number of hand-offs.

    LLMECO_HOME=.pytest_cache/d/llmeco-home .venv/bin/python benchmarks/support.py
    LLMECO_HOME=.pytest_cache/d/llmeco-home .venv/bin/python benchmarks/support.py --calibrate
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from llmeco.apps import support
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
#: Share of unanswerable questions the assistant must hand off (the product target).
HANDOFF_TARGET = 0.8
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


#: A question's hand-off signals: best sentence similarity, word similarities, word weights.
Signals = tuple[float, list[float], list[float]]
#: Hand-off thresholds: sentence similarity, term coverage, word similarity, word match.
Thresholds = tuple[float, float, float, float]
#: The grid ``--calibrate`` searches, one axis per threshold of :data:`Thresholds`.
GRID = (
    np.round(np.arange(0.20, 0.70, 0.01), 2),
    np.round(np.arange(0.0, 1.0001, 0.05), 2),
    np.round(np.arange(0.50, 0.951, 0.05), 2),
    np.round(np.arange(0.0, 0.601, 0.02), 2),
)
#: The signal sets calibrated: (IDF-weighted coverage?, least-matched word gate?).
VARIANTS = {"words_alike": (False, False), "idf_weights_and_word_gate": (True, True)}


def grid(gate: bool) -> tuple[np.ndarray, ...]:
    """:data:`GRID`, with the word-match axis held at 0 (no gate) unless ``gate``."""
    return (*GRID[:3], GRID[3] if gate else np.zeros(1))


def signals(
    kb: support.Searcher, embedder: Embedder, questions: list[dict[str, Any]]
) -> list[Signals]:
    """The hand-off signals of each question (see :data:`Signals`)."""
    out = []
    for q in questions:
        turn = support.plan_turn(
            [{"role": "user", "content": q["query"]}], kb, embedder, term_weights=True
        )
        out.append((turn.sentence_similarity, turn.word_similarities, turn.word_weights))
    return out


def answered(sig: Signals, t: Thresholds, weighted: bool = True) -> bool:
    """Whether the assistant answers (does not hand off) under thresholds ``t``, with term
    coverage IDF-weighted or not."""
    sentence, terms, word, match = t
    similarity, sims, weights = sig
    return (
        similarity >= sentence
        and (match <= 0 or support.least_matched([""] * len(sims), sims)[1] >= match)
        and support.coverage(sims, word, weights if weighted else None) >= terms
    )


def answered_grid(
    sigs: Sequence[Signals], axes: Sequence[np.ndarray] = GRID, weighted: bool = True
) -> np.ndarray:
    """:func:`answered` for every question (last axis) at every point of the grid ``axes``."""
    sentence, terms, word, match = axes
    out = np.zeros((len(sentence), len(terms), len(word), len(match), len(sigs)), dtype=bool)
    for q, (similarity, sims, weights) in enumerate(sigs):
        w = weights if weighted else None
        cov = np.array([support.coverage(sims, x, w) for x in word])  # (word,)
        least = support.least_matched([""] * len(sims), sims)[1]
        out[..., q] = (
            (similarity >= sentence)[:, None, None, None]
            & (cov[None, :] >= terms[:, None])[None, :, :, None]
            & ((least >= match) | (match <= 0))[None, None, None, :]
        )
    return out


def rates(
    a: Sequence[Signals], u: Sequence[Signals], t: Thresholds, weighted: bool = True
) -> tuple[float, float]:
    """(share of answerable answered, share of unanswerable handed off) under thresholds."""
    kept = sum(answered(x, t, weighted) for x in a) / len(a)
    handed = sum(not answered(x, t, weighted) for x in u) / len(u)
    return kept, handed


def choose(
    a: Sequence[Signals], u: Sequence[Signals], weighted: bool = True, gate: bool = True
) -> tuple[Thresholds, dict[int, int]]:
    """The grid point answering the most of ``a`` while handing off at least
    ``HANDOFF_TARGET`` of ``u`` (ties: more hand-offs, then the lowest thresholds), and the
    frontier: for each number of ``u`` handed off, the most of ``a`` any grid point answers."""
    axes = grid(gate)
    kept = answered_grid(a, axes, weighted).sum(axis=-1)
    handed = len(u) - answered_grid(u, axes, weighted).sum(axis=-1)
    sums = sum(np.meshgrid(*axes, indexing="ij"))
    ok = handed >= HANDOFF_TARGET * len(u)
    # lexicographic: feasible, answered, hand-offs, then the smallest sum of thresholds
    order = np.lexsort((-sums.ravel(), handed.ravel(), kept.ravel(), ok.ravel()))
    best = np.unravel_index(order[-1], kept.shape)
    chosen = [float(axis[i]) for axis, i in zip(axes, best, strict=True)]
    frontier: dict[int, int] = {}
    for h, k in zip(handed.ravel().tolist(), kept.ravel().tolist(), strict=True):
        frontier[h] = max(frontier.get(h, 0), k)
    return (chosen[0], chosen[1], chosen[2], chosen[3]), dict(sorted(frontier.items()))


def calibrate(kb: support.Searcher, embedder: Embedder) -> dict[str, Any]:
    """Pick the hand-off thresholds on the calibration sets (see the module docstring)."""
    a, u = (signals(kb, embedder, load(n)) for n in SETS["calibration"])
    ea, eu = (signals(kb, embedder, load(n)) for n in SETS["evaluation"])

    def report(t: Thresholds, x: Sequence[Signals], y: Sequence[Signals], w: bool) -> Any:
        kept, handed = rates(x, y, t, w)
        return {"answered": round(kept, 3), "handoff_unanswerable": round(handed, 3)}

    out: dict[str, Any] = {}
    for name, (weighted, gate) in VARIANTS.items():
        best, frontier = choose(a, u, weighted, gate)
        out[name] = {
            "MIN_SENTENCE_SIMILARITY": best[0],
            "MIN_TERM_COVERAGE": best[1],
            "MIN_WORD_SIMILARITY": best[2],
            "MIN_WORD_MATCH": best[3],
            "WEIGH_TERMS": weighted,
            "calibration": report(best, a, u, weighted),
            "evaluation": report(best, ea, eu, weighted),
            "frontier": {f"{h}/{len(u)} handed off": f"{k}/{len(a)}" for h, k in frontier.items()},
        }
    current = (
        support.MIN_SENTENCE_SIMILARITY,
        support.MIN_TERM_COVERAGE,
        support.MIN_WORD_SIMILARITY,
        support.MIN_WORD_MATCH,
    )
    out["current"] = {
        "thresholds": list(current),
        "WEIGH_TERMS": support.WEIGH_TERMS,
        "calibration": report(current, a, u, support.WEIGH_TERMS),
    }
    return out


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
    ap.add_argument("--calibrate", action="store_true", help="pick the hand-off thresholds")
    ap.add_argument("--dump", action="store_true", help="print each miss to stderr")
    args = ap.parse_args()
    settings = Settings()
    store = Store.from_settings(settings)
    embedder = Embedder()
    kb = open_or_create(store, "handbook", embedder)
    kb.add_file(ROOT / "examples" / "corpus" / "handbook.md")
    if args.calibrate:
        print(json.dumps(calibrate(kb, embedder)))
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
