"""``preference``: how often the model gives ``chosen`` a higher log-likelihood than
``rejected`` after ``prompt`` (the pairwise accuracy reward-model papers report)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmeco.evaluation.tasks import EvalContext, TaskConfig, TaskResult, field, read_jsonl


class PreferenceConfig(TaskConfig):
    """Records ``{"prompt", "chosen", "rejected"}``; per-token normalisation optional."""

    type: Literal["preference"] = "preference"
    normalize: bool = Field(default=False, description="Compare mean log-prob per token.")


async def run_preference(config: PreferenceConfig, ctx: EvalContext) -> TaskResult:
    """``acc``: share of pairs where the chosen answer scores higher."""
    records = read_jsonl(config.data, config.limit)
    scorer = ctx.scorer()
    requests = []
    for i, record in enumerate(records):
        prompt = str(field(record, "prompt", config.data, i))
        for key in ("chosen", "rejected"):
            requests.append(
                scorer.encode_pair(prompt, " " + str(field(record, key, config.data, i)))
            )
    results = scorer.loglikelihood(requests, lambda d, t: ctx.report(config.name, d, t))
    wins = 0
    predictions = []
    for i in range(len(records)):
        good, bad = results[2 * i], results[2 * i + 1]
        a = good.logprob / max(good.tokens, 1) if config.normalize else good.logprob
        b = bad.logprob / max(bad.tokens, 1) if config.normalize else bad.logprob
        wins += a > b
        predictions.append({"index": i, "chosen": a, "rejected": b, "correct": a > b})
    acc = wins / len(records) if records else 0.0
    return TaskResult(len(records), {"acc": acc}, {}, predictions)
