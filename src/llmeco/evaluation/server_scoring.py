"""Log-likelihood scoring through a running server's prompt logprobs (the engine's path).

:class:`ServerScorer` answers the same :class:`~llmeco.evaluation.scoring.LoglikRequest`s as
the direct :class:`~llmeco.evaluation.scoring.Scorer`, but by sending each request's tokens
to ``POST /v1/completions`` with ``echo: true, logprobs: 1, max_tokens: 0`` (what
lm-evaluation-harness's ``local-completions`` model does) and summing the logprobs the server
returns for the continuation's tokens. The numbers equal direct scoring's to float32
rounding (checked by a test), so ``llmeco eval`` can score through a served model — the
one actually deployed, quantization and all — instead of loading a second copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from llmeco.errors import ConfigError
from llmeco.evaluation.scoring import LoglikRequest, LoglikResult, Progress, Scorer

__all__ = ["ServerScorer"]


class ServerScorer(Scorer):
    """Scores token sequences with an OpenAI-compatible server that returns prompt logprobs.

    Tokenization (``encode``, ``encode_pair``, ``rolling_requests``) is the direct scorer's;
    only the forward passes move to the server.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: Any,
        *,
        max_length: int = 2048,
        api_key: str | None = None,
        batch: int = 16,
        timeout: float = 600.0,
    ) -> None:  # no super().__init__: there is no local model
        self.max_length = max_length
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self.model = model
        self.tokenizer = tokenizer
        self.batch = batch
        bos = getattr(tokenizer, "bos_token_id", None)
        eos = getattr(tokenizer, "eos_token_id", None)
        self.prefix_id: int = int(bos if bos is not None else eos if eos is not None else 0)

    def loglikelihood(
        self, requests: Sequence[LoglikRequest], progress: Progress | None = None
    ) -> list[LoglikResult]:
        """Score every request; results in request order (one HTTP call per ``batch``)."""
        results: list[LoglikResult] = []
        for start in range(0, len(requests), self.batch):
            chunk = requests[start : start + self.batch]
            prompts = [list(r.context or (self.prefix_id,)) + list(r.continuation) for r in chunk]
            body = {
                "model": self.model,
                "prompt": prompts,
                "max_tokens": 0,
                "echo": True,
                "logprobs": 1,
                "temperature": 0.0,
            }
            response = self._client.post("/v1/completions", json=body)
            if response.status_code != 200:
                raise ConfigError(
                    f"scoring server answered {response.status_code}: {response.text[:300]}"
                )
            choices = sorted(response.json()["choices"], key=lambda c: c["index"])
            for req, choice in zip(chunk, choices, strict=True):
                lps = choice["logprobs"]
                n_ctx = len(req.context) or 1
                values = lps["token_logprobs"][n_ctx : n_ctx + len(req.continuation)]
                tops = lps["top_logprobs"][n_ctx : n_ctx + len(req.continuation)]
                greedy = all(v >= max(t.values()) for v, t in zip(values, tops, strict=True))
                results.append(LoglikResult(float(sum(values)), greedy, len(req.continuation)))
            if progress is not None:
                progress(len(results), len(requests))
        return results

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
