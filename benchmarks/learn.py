"""Learning recommendations: hit rate on the learners' weak topics vs popularity and random.

    .venv/bin/python benchmarks/learn.py [--k 5] [--explain-sample 5] [--random-seeds 20]

Runs the learn plugin's recommender (``llmeco_learn.recommend``, the code behind
``POST /v1/apps/learn/recommend`` with ``explain: false``) over the shipped synthetic cohort
(``plugins/llmeco-learn/data/cohort.jsonl``: learners with known weak topics and scored
histories) and the shipped library, embedded with the packaged MiniLM. Per learner, the top
``k`` unseen items are compared with the learner's known weak topics:

* ``precision_at_k``: the mean share of the k items whose topic is a weak topic;
* ``hit_at_k``: the share of learners with at least one weak-topic item in their top k;
* ``at_target_difficulty``: the share of items at the target level of their topic.

Baselines in the same run: ``popularity`` (the items most attempted across the cohort that
the learner has not seen) and ``random`` (uniform over unseen items, mean over
``--random-seeds`` seeds). With ``--explain-sample N`` the first N learners also get the
model-written explanations (the packaged default model, one sentence per item, the same
prompt the server sends), timed. One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from llmeco_learn.library import Library, default_library_dir
from llmeco_learn.profiles import Attempt, Profile
from llmeco_learn.recommend import recommend, target_difficulty, topic_stats
from llmeco_learn.serving import explanation_spec

ROOT = Path(__file__).resolve().parents[1]
COHORT = ROOT / "plugins" / "llmeco-learn" / "data" / "cohort.jsonl"


def load_cohort(path: Path) -> list[dict[str, Any]]:
    """The cohort's learners (one JSON object per line)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def scores(topics: list[str], weak: set[str]) -> tuple[float, float]:
    """(share of ``topics`` that are weak, 1.0 if any is weak)."""
    hits = [t in weak for t in topics]
    return sum(hits) / len(hits), float(any(hits))


def main() -> None:
    """Run the evaluation and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--random-seeds", type=int, default=20)
    ap.add_argument("--explain-sample", type=int, default=0)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    from llmeco.rag.embed import Embedder

    t0 = time.perf_counter()
    embedder = Embedder()
    library = Library.load(default_library_dir(), embedder)
    embed_s = time.perf_counter() - t0
    cohort = load_cohort(COHORT)
    popularity = Counter(a["item_id"] for learner in cohort for a in learner["history"])
    by_pop = sorted(library.items, key=lambda i: (-popularity[i.id], i.id))

    results: dict[str, list[tuple[float, float]]] = {"recommender": [], "popularity": []}
    random_runs: list[tuple[float, float]] = []
    at_target: list[float] = []
    t0 = time.perf_counter()
    latencies = []
    for learner in cohort:
        weak = set(learner["weak_topics"])
        history = [Attempt(a["item_id"], a["score"]) for a in learner["history"]]
        goal_vector = embedder.embed([" ".join(learner["goals"])])[0] if learner["goals"] else None
        start = time.perf_counter()
        recs = recommend(library, history, learner["level"], args.k, goal_vector)
        latencies.append(time.perf_counter() - start)
        results["recommender"].append(scores([r.item.topic for r in recs], weak))
        stats = topic_stats(library, history)
        at_target.append(
            float(
                np.mean(
                    [
                        r.item.difficulty
                        == target_difficulty(r.item.topic, stats, learner["level"])
                        for r in recs
                    ]
                )
            )
        )
        seen = {a.item_id for a in history}
        pop = [i.topic for i in by_pop if i.id not in seen][: args.k]
        results["popularity"].append(scores(pop, weak))
        unseen = [i.topic for i in library.items if i.id not in seen]
        for seed in range(args.random_seeds):
            rng = random.Random(f"{learner['learner_id']}-{seed}")
            random_runs.append(scores(rng.sample(unseen, args.k), weak))
    results["random"] = random_runs
    recommend_s = time.perf_counter() - t0

    out: dict[str, Any] = {
        "benchmark": "learn",
        "k": args.k,
        "learners": len(cohort),
        "library_items": len(library.items),
        "topics": len(library.topics),
        "weak_topic_share_of_library": round(
            float(
                np.mean(
                    [
                        np.mean([i.topic in set(lr["weak_topics"]) for i in library.items])
                        for lr in cohort
                    ]
                )
            ),
            4,
        ),
        "methods": {
            name: {
                "precision_at_k": round(statistics.fmean(r[0] for r in rows), 4),
                "hit_at_k": round(statistics.fmean(r[1] for r in rows), 4),
            }
            for name, rows in results.items()
        },
        "recommender_at_target_difficulty": round(statistics.fmean(at_target), 4),
        "embed_library_s": round(embed_s, 3),
        "recommend_ms_p50": round(1000 * statistics.median(latencies), 3),
        "eval_s": round(recommend_s, 3),
        "random_seeds": args.random_seeds,
    }
    if args.explain_sample:
        out["explain"] = asyncio.run(
            explain_sample(library, cohort[: args.explain_sample], args.k, args.model, embedder)
        )
    print(json.dumps(out, indent=2))


async def explain_sample(
    library: Library, learners: list[dict[str, Any]], k: int, model: str, embedder: Any
) -> dict[str, Any]:
    """Time the model-written explanations for ``learners`` (k items each, concurrently)."""
    from llmeco.apps.run import run
    from llmeco.engine.async_engine import AsyncEngine
    from llmeco.settings import Settings

    engine = AsyncEngine.from_ref(model, Settings())
    times = []
    examples = []
    try:
        for learner in learners:
            history = [Attempt(a["item_id"], a["score"]) for a in learner["history"]]
            profile = Profile(learner["learner_id"], learner["level"], learner["goals"], history)
            goal = embedder.embed([" ".join(learner["goals"])])[0]
            recs = recommend(library, history, learner["level"], k, goal)
            start = time.perf_counter()
            texts = await asyncio.gather(
                *(run(engine, explanation_spec(profile, rec, 48)) for rec in recs)
            )
            times.append(time.perf_counter() - start)
            examples.append({"item": recs[0].item.id, "explanation": texts[0]})
    finally:
        await engine.shutdown(timeout=5)
    return {
        "model": model,
        "learners": len(learners),
        "seconds_per_request_p50": round(statistics.median(times), 3),
        "seconds_per_request_max": round(max(times), 3),
        "examples": examples[:3],
    }


if __name__ == "__main__":
    main()
