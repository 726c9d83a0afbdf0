"""Log-likelihood scoring straight from the model: what perplexity and multiple choice need.

Why not through the engine: :class:`~llmeco.engine.protocol.EngineClient` generates; it has no
API returning the log-probabilities of *given* tokens (prompt logprobs), which is what
scoring a text or a choice is. So scoring loads the same resolved model directory with
Hugging Face ``AutoModelForCausalLM`` (any architecture; local files only) and runs plain
forward passes. Generation tasks still go through the engine.

Batching never changes a result: sequences are right-padded and masked, so with a causal
model a real token never attends to padding and its logits do not depend on what else is in
the batch (checked by a test: batch 1 vs batch N). Requests are sorted by length so batches
waste little padding, and the vocabulary projection is applied only at the positions being
scored (one row at a time), which bounds memory at ``max_length × vocab`` floats. Requests
that share a context (multiple-choice options, classification labels) run it once and score
their continuations on its KV cache — 4–8x fewer tokens through the model.

Precision: float32 unless ``LLMECO_DTYPE`` names another dtype — log-likelihoods in bfloat16
are too coarse to rank close choices reliably.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmeco.settings import Settings

#: ``progress(done, total)`` after each batch.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LoglikRequest:
    """Score ``continuation`` given ``context`` (both token ids; context may be empty only if
    the model has a BOS token to stand in for it)."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]


@dataclass(frozen=True)
class LoglikResult:
    """Sum of log p(continuation token | everything before it), and whether greedy decoding
    would have produced exactly the continuation."""

    logprob: float
    is_greedy: bool
    tokens: int


class Scorer:
    """A causal LM ready to score token sequences (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: torch.device,
        *,
        max_length: int,
        batch_tokens: int = 4096,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.pad_id = int(
            tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id or 0
        )
        bos = getattr(tokenizer, "bos_token_id", None)
        eos = getattr(tokenizer, "eos_token_id", None)
        self.prefix_id: int = int(bos if bos is not None else eos if eos is not None else 0)
        config = model.config
        # Some architectures post-process logits; the fast path (hidden states × lm_head at
        # the scored positions only) would skip that, so those take the full forward.
        self._full_forward = bool(
            getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None)
        )

    @classmethod
    def load(cls, path: Path, settings: Settings, *, batch_tokens: int = 4096) -> Scorer:
        """Load the HF directory ``path`` (already resolved and verified) for scoring."""
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        from llmeco.modeling.load import load_tokenizer, select_device

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # ours report it
        if settings.threads:
            torch.set_num_threads(settings.threads)

        device = select_device(settings)
        method = settings.quantization_for(device.type)
        quantized = method in ("int8", "int4") and device.type == "cpu"
        dtype = {
            "auto": torch.bfloat16 if quantized else torch.float32,
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[settings.dtype]
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=dtype
        )
        model = model.to(device)
        if quantized:  # score the model as `serve` runs it (LLMECO_QUANTIZATION=int8|int4)
            from llmeco.modeling.quant import quantize

            quantize(model, method)
        tokenizer = load_tokenizer(path)
        context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        return cls(model, tokenizer, device, max_length=context, batch_tokens=batch_tokens)

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        """Token ids of ``text`` (with the tokenizer's own special tokens when ``special``)."""
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def encode_pair(self, context: str, continuation: str) -> LoglikRequest:
        """Split ``context + continuation`` into tokens the lm-evaluation-harness way.

        Trailing spaces of the context move to the continuation; the whole string is encoded
        once and the continuation is what follows the context's own tokens, so the scored
        tokens are the ones the model would see in the joined text.
        """
        spaces = len(context) - len(context.rstrip())
        if spaces:
            continuation = context[-spaces:] + continuation
            context = context[:-spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context) if context else []
        return LoglikRequest(tuple(whole[: len(ctx)]), tuple(whole[len(ctx) :]))

    def rolling_requests(
        self, ids: Sequence[int], max_length: int, stride: int
    ) -> list[LoglikRequest]:
        """Windows scoring every token of ``ids`` but the first exactly once (the Hugging Face
        "perplexity of fixed-length models" recipe): windows of ``max_length`` tokens start
        every ``stride`` tokens; each scores the tokens after the previous window's end, with
        the rest of its window as context. Needs ``stride < max_length``."""
        out: list[LoglikRequest] = []
        prev_end = 0
        for begin in range(0, len(ids), stride):
            end = min(begin + max_length, len(ids))
            first = max(prev_end, begin + 1)
            if first < end:
                out.append(LoglikRequest(tuple(ids[begin:first]), tuple(ids[first:end])))
            prev_end = end
            if end == len(ids):
                break
        return out

    @torch.no_grad()
    def loglikelihood(
        self, requests: Sequence[LoglikRequest], progress: Progress | None = None
    ) -> list[LoglikResult]:
        """Score every request; results in request order, independent of batching.

        Requests sharing a context (the choices of one question, the labels of one text) run
        the context once and score their continuations together on its KV cache; the rest
        are batched by length. Inputs longer than the model's context keep their last
        ``max_length`` tokens (the continuation is always kept whole when it fits).
        """
        results: list[LoglikResult | None] = [None] * len(requests)
        done = 0

        def finished(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, len(requests))

        groups: dict[tuple[int, ...], list[int]] = {}
        for i, req in enumerate(requests):
            fits = len(req.context) + len(req.continuation) <= self.max_length + 1
            if req.context and fits and not self._full_forward:
                groups.setdefault(req.context, []).append(i)
        shared = {i for members in groups.values() if len(members) > 1 for i in members}
        for context, members in groups.items():
            if len(members) > 1:
                conts = [requests[i].continuation for i in members]
                for index, result in zip(members, self._score_shared(context, conts), strict=True):
                    results[index] = result
                finished(len(members))
        rows: list[tuple[int, list[int], int]] = []  # (request index, input ids, n scored)
        for i, req in enumerate(requests):
            if i in shared:
                continue
            ctx_ids = list(req.context) or [self.prefix_id]
            full = (ctx_ids + list(req.continuation))[-(self.max_length + 1) :]
            rows.append((i, full[:-1], min(len(req.continuation), len(full) - 1)))
        rows.sort(key=lambda row: -len(row[1]))
        start = 0
        while start < len(rows):
            size = max(1, self.batch_tokens // max(1, len(rows[start][1])))
            batch = rows[start : start + size]
            for (index, _ids, _n), result in zip(
                batch, self._score_batch(batch, requests), strict=True
            ):
                results[index] = result
            start += len(batch)
            finished(len(batch))
        return [r for r in results if r is not None]

    def _score_shared(
        self, context: tuple[int, ...], continuations: list[tuple[int, ...]]
    ) -> list[LoglikResult]:
        """Continuations of one context: the context runs once (batch 1), then each chunk of
        continuations runs on a copy of its KV cache, right-padded and masked."""
        import copy
        import inspect

        base = self.model.base_model
        head = self.model.get_output_embeddings()
        # transformers >= 5.2x names the KV cache ``cache`` (``past_key_values`` before)
        kv = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        first = base(input_ids=torch.tensor([context], device=self.device), use_cache=True)
        cache = getattr(first, kv)
        last_hidden = first.last_hidden_state[0, -1:]  # predicts each continuation's 1st token
        width = max(len(c) for c in continuations)
        chunk = max(1, self.batch_tokens // (len(context) + width))
        out: list[LoglikResult] = []
        for at in range(0, len(continuations), chunk):
            conts = continuations[at : at + chunk]
            fed = max(len(c) for c in conts) - 1  # the last token is only predicted, never fed
            hidden = None
            if fed > 0:
                ids = torch.full((len(conts), fed), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(conts), len(context) + fed), dtype=torch.long)
                mask[:, : len(context)] = 1
                for row, cont in enumerate(conts):
                    ids[row, : len(cont) - 1] = torch.tensor(cont[:-1])
                    mask[row, len(context) : len(context) + len(cont) - 1] = 1
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(len(conts))
                hidden = base(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    use_cache=False,
                    **{kv: past},
                ).last_hidden_state
            for row, cont in enumerate(conts):
                h = last_hidden
                if hidden is not None and len(cont) > 1:
                    h = torch.cat([last_hidden, hidden[row, : len(cont) - 1]])
                out.append(self._result(head(h).float(), cont))
        return out

    def _result(self, logits: torch.Tensor, continuation: Sequence[int]) -> LoglikResult:
        """Log-likelihood of ``continuation`` from the logits at the positions predicting it."""
        target = torch.tensor(list(continuation), device=logits.device)
        picked = torch.log_softmax(logits, dim=-1).gather(-1, target[:, None]).squeeze(-1)
        greedy = bool((logits.argmax(-1) == target).all())
        return LoglikResult(float(picked.double().sum()), greedy, len(continuation))

    def _score_batch(
        self, batch: list[tuple[int, list[int], int]], requests: Sequence[LoglikRequest]
    ) -> list[LoglikResult]:
        width = max(len(ids) for _, ids, _ in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, ids, _) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        if self._full_forward:
            logits_all = self.model(input_ids=input_ids, attention_mask=mask).logits
            hidden, head = logits_all, None
        else:
            hidden = self.model.base_model(
                input_ids=input_ids, attention_mask=mask
            ).last_hidden_state
            head = self.model.get_output_embeddings()
        out = []
        for row, (index, ids, n) in enumerate(batch):
            h = hidden[row, len(ids) - n : len(ids)]
            logits = (head(h) if head is not None else h).float()
            out.append(self._result(logits, list(requests[index].continuation)[-n:]))
        return out
