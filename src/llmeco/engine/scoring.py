"""Prompt scoring: logprobs of the prompt's own tokens, from logits at every prompt position.

The logits at position ``p`` are the model's prediction of token ``p + 1``, so a prompt of
``L`` tokens has ``L - 1`` scored tokens; the first has no logprob (OpenAI and vLLM report
``null`` for it). Prompts are computed in chunks (chunked prefill, preemption recomputes), so
:class:`PromptScores` accumulates entries chunk by chunk and ignores positions it already
holds. Values are the model's raw distribution (``log_softmax`` of float32 logits): no
penalties, no temperature, as vLLM's ``prompt_logprobs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from llmeco.engine.request import TokenLogprob

__all__ = ["PromptScores", "token_logprobs"]


def token_logprobs(
    logits: torch.Tensor, targets: list[int], top: int, decode: Callable[[int], str]
) -> list[TokenLogprob]:
    """Logprob of ``targets[i]`` under ``logits[i]`` (``[n, V]``) and the ``top`` best."""
    lp = torch.log_softmax(logits.float(), dim=-1)
    index = torch.tensor(targets, dtype=torch.long, device=lp.device)[:, None]
    chosen_t = lp.gather(1, index)  # [n, 1]
    chosen: list[float] = chosen_t[:, 0].tolist()
    ranks: list[int] = ((lp > chosen_t).sum(dim=-1) + 1).tolist()
    top_vals: list[list[float]] = [[] for _ in targets]
    top_ids: list[list[int]] = [[] for _ in targets]
    if top > 0:
        values, ids = lp.topk(min(top, lp.shape[1]), dim=-1)
        top_vals, top_ids = values.tolist(), ids.tolist()
    return [
        TokenLogprob(
            t,
            decode(t),
            v,
            [(a, decode(a), b) for a, b in zip(top_ids[i], top_vals[i], strict=True)],
            ranks[i],
        )
        for i, (t, v) in enumerate(zip(targets, chosen, strict=True))
    ]


@dataclass
class PromptScores:
    """Prompt-token logprobs of one request, filled in as its prompt chunks are computed."""

    prompt_ids: list[int]
    top: int
    #: Entries for prompt tokens 1, 2, ... (token 0 has none).
    entries: list[TokenLogprob] = field(default_factory=list)
    sent: bool = False

    @property
    def complete(self) -> bool:
        """Every prompt token after the first is scored."""
        return len(self.entries) >= len(self.prompt_ids) - 1

    def add(self, logits: torch.Tensor, first_pos: int, decode: Callable[[int], str]) -> None:
        """Score the tokens predicted by ``logits`` (rows for positions ``first_pos``, ...)."""
        n = len(self.prompt_ids)
        # Row j predicts token first_pos + j + 1; keep tokens not yet scored and in the prompt.
        lo = len(self.entries) + 1 - (first_pos + 1)
        hi = min(logits.shape[0], n - 1 - first_pos)
        if lo < 0 or hi <= lo:
            return  # a gap cannot happen (chunks arrive in order); nothing new otherwise
        targets = self.prompt_ids[first_pos + 1 + lo : first_pos + 1 + hi]
        self.entries.extend(token_logprobs(logits[lo:hi], targets, self.top, decode))

    def take(self) -> list[TokenLogprob | None]:
        """The full list for the response (first token None), once."""
        self.sent = True
        return [None, *self.entries]
