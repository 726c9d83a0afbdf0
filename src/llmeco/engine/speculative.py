"""Speculative decoding: draft a few tokens cheaply, verify them in one target forward pass.

A decoding sequence normally computes one token per step. With speculation the engine first
*drafts* ``k`` tokens, appends them to the sequence for the step, and runs the target model
over ``k + 1`` positions at once (the last committed token and the ``k`` drafts). The logits
at those positions say what the target would have produced after each prefix, so:

* greedy rows accept drafts while each equals the target's argmax, then emit the target's own
  token (the first disagreement, or one more after all ``k``): the output is exactly the
  non-speculative output, only produced up to ``k + 1`` tokens per step;
* sampled rows use speculative rejection sampling (Leviathan et al. 2023, Chen et al. 2023):
  draft ``d`` with draft probability ``q(d)`` is accepted with probability
  ``min(1, p(d) / q(d))``; on rejection a token is drawn from ``norm(max(0, p - q))``; after
  ``k`` acceptances one more is drawn from ``p``. Every emitted token is then distributed
  exactly as the target's ``p`` (temperature, top-k, top-p and min-p applied). A prompt-lookup
  draft is a point mass (``q(d) = 1``), so it is accepted with probability ``p(d)`` and a
  rejection draws from ``p`` with ``d`` removed.

Draft sources: n-gram prompt lookup (the last few tokens matched against the prompt and the
output so far, the tokens that followed copied), the request's ``prediction`` (OpenAI's
predicted outputs, aligned with the output generated so far), or a smaller draft model that
shares the tokenizer (:class:`DraftModelProposer`, run by its own :class:`ModelRunner`).

Requests that ask for logprobs, constrain output with a grammar, or use penalties are decoded
without speculation (the per-position logprob and penalty bookkeeping would differ); their
output is unaffected. Rejected drafts leave stale K/V in slots past the sequence's
``num_computed``; those slots are overwritten when the positions are computed for real.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from llmeco.engine.kv_cache import BlockPool
from llmeco.engine.runner import ModelRunner
from llmeco.engine.sampler import Sampler, SequenceSamplingState
from llmeco.engine.sequence import Sequence
from llmeco.errors import ConfigError

__all__ = [
    "Draft",
    "SpeculativeConfig",
    "SpeculativeStats",
    "ngram_lookup",
    "parse_speculative",
    "prediction_lookup",
    "verify_draft",
]

Method = Literal["off", "ngram", "draft"]


@dataclass(frozen=True)
class SpeculativeConfig:
    """How the engine drafts: ``off``, ``ngram`` prompt lookup, or a ``draft`` model."""

    method: Method = "off"
    num_tokens: int = 5
    draft_model: str = ""
    ngram_max: int = 4
    ngram_min: int = 1


def parse_speculative(value: str, num_tokens: int = 5) -> SpeculativeConfig:
    """``LLMECO_SPECULATIVE``: ``off``, ``ngram`` or ``draft:<model ref>``."""
    v = value.strip()
    if num_tokens < 1:
        raise ConfigError("the number of speculative tokens must be at least 1")
    if v in {"", "off", "none", "false"}:
        return SpeculativeConfig("off", num_tokens)
    if v == "ngram":
        return SpeculativeConfig("ngram", num_tokens)
    if v.startswith("draft:") and v[len("draft:") :].strip():
        return SpeculativeConfig("draft", num_tokens, draft_model=v[len("draft:") :].strip())
    raise ConfigError(f"LLMECO_SPECULATIVE={value!r}: expected off, ngram or draft:<model>")


@dataclass
class SpeculativeStats:
    """Counters for ``/metrics`` and the benchmark."""

    draft_tokens: int = 0
    accepted_tokens: int = 0
    verify_steps: int = 0

    @property
    def acceptance_rate(self) -> float:
        """Accepted over drafted tokens (0 before any draft)."""
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens else 0.0


@dataclass
class Draft:
    """Draft tokens for one sequence, with their draft distributions when not point masses."""

    tokens: list[int]
    #: ``[k, V]`` draft probabilities (a draft model sampling); None: point masses / greedy.
    probs: torch.Tensor | None = None


def ngram_lookup(context: list[int], k: int, n_max: int = 4, n_min: int = 1) -> list[int]:
    """Up to ``k`` tokens that followed the latest earlier occurrence of the context's tail.

    Tries the longest tail first (``n_max`` tokens) down to ``n_min``; the copy is what
    followed the most recent match, which for summaries, corrections and quoted answers is
    usually what comes next.
    """
    size = len(context)
    for n in range(min(n_max, size - 1), n_min - 1, -1):
        tail = context[size - n :]
        first = tail[0]
        for i in range(size - n - 1, -1, -1):
            if context[i] == first and context[i : i + n] == tail:
                return context[i + n : i + n + k]
    return []


def prediction_lookup(
    prediction: list[int], output: list[int], k: int, n_max: int = 4
) -> list[int]:
    """Draft from a predicted output: its start, or what follows the output's tail in it.

    Among the prediction's occurrences of the output's last tokens, the one nearest the
    output's length is taken (the prediction is the expected output, so positions align
    unless an edit shifted them).
    """
    if not prediction or k < 1:
        return []
    if not output:
        return prediction[:k]
    size = len(output)
    for n in range(min(n_max, size), 0, -1):
        tail = output[size - n :]
        best: int | None = None
        for i in range(len(prediction) - n):
            if prediction[i : i + n] == tail and (
                best is None or abs(i + n - size) < abs(best + n - size)
            ):
                best = i
        if best is not None:
            return prediction[best + n : best + n + k]
    return []


def _residual_draw(
    p: torch.Tensor, q: torch.Tensor | None, token: int, generator: torch.Generator | None
) -> int:
    """Draw from ``norm(max(0, p - q))``; ``q`` None is a point mass on ``token``."""
    if q is None:
        r = p.clone()
        r[token] = 0.0
    else:
        r = (p - q).clamp_min_(0.0)
    total = float(r.sum())
    if total <= 0.0:  # p == q exactly: any draw from p is right
        r = p
    return int(torch.multinomial(r.double(), 1, generator=generator).item())


def _uniform(generator: torch.Generator | None, device: torch.device) -> float:
    if generator is None:
        return float(torch.rand((), dtype=torch.float64).item())
    return float(torch.rand((), dtype=torch.float64, generator=generator, device=device).item())


def verify_draft(
    sampler: Sampler,
    logits: torch.Tensor,
    state: SequenceSamplingState,
    draft: Draft,
) -> tuple[list[int], int]:
    """Tokens to emit after verifying ``draft`` against the target's ``logits``, and how many
    drafts were accepted.

    ``logits`` is ``[k + 1, V]``: row ``i`` is the target's prediction after the committed
    tokens and the first ``i`` drafts. Returns ``accepted drafts + [one target token]``.
    """
    k = len(draft.tokens)
    states = [state] * (k + 1)
    x = sampler.process(logits, states)
    if state.params.greedy:
        best: list[int] = x.argmax(dim=-1).tolist()
        out: list[int] = []
        for i, d in enumerate(draft.tokens):
            if d != best[i]:
                return [*out, best[i]], i
            out.append(d)
        return [*out, best[k]], k
    p = sampler.warp(x, states).softmax(dim=-1)  # [k + 1, V]
    gen = state.generator
    device = gen.device if gen is not None else p.device
    out = []
    for i, d in enumerate(draft.tokens):
        q_row = draft.probs[i] if draft.probs is not None else None
        q_d = float(q_row[d]) if q_row is not None else 1.0
        p_d = float(p[i, d])
        if q_d > 0.0 and _uniform(gen, device) < min(1.0, p_d / q_d):
            out.append(d)
            continue
        return [*out, _residual_draw(p[i], q_row, d, gen)], i
    bonus = int(torch.multinomial(p[k].double(), 1, generator=gen).item())
    return [*out, bonus], k


def speculation_allowed(state: SequenceSamplingState, has_matcher: bool) -> bool:
    """Whether a sequence may decode speculatively (else it decodes one token per step)."""
    p = state.params
    return p.logprobs is None and not has_matcher and not state.has_penalties


def reserve_slots(
    seq: Sequence, num_tokens: int, block_size: int, num_free: int, allocate: Callable[[], int]
) -> bool:
    """Grow ``seq``'s blocks to hold ``num_tokens`` tokens; False (nothing taken) if short."""
    need = -(-num_tokens // block_size) - len(seq.block_ids)
    if need > num_free:
        return False
    for _ in range(max(0, need)):
        seq.block_ids.append(allocate())
    return True


@dataclass(eq=False)
class _DraftSeq:
    seq: Sequence
    #: Tokens whose K/V the draft model's cache holds for this sequence (a prefix).
    computed: list[int] = field(default_factory=list)


class DraftModelProposer:
    """A smaller model of the same tokenizer, with its own paged KV cache, proposing drafts.

    Each call brings the draft cache up to the target's committed tokens (one chunk: the
    tokens accepted last step, or the whole prompt the first time), then decodes ``k`` tokens,
    batched over the sequences that speculate. Sampled rows draw from the draft's warped
    distribution (same temperature, top-k, top-p, min-p) and keep it for rejection sampling.
    """

    def __init__(self, runner: ModelRunner, num_blocks: int, block_size: int) -> None:
        self.runner = runner
        self.pool = BlockPool(num_blocks, block_size)
        self.block_size = block_size
        self._seqs: dict[int, _DraftSeq] = {}

    def _release(self, ds: _DraftSeq) -> None:
        if ds.seq.block_ids:
            self.pool.release(ds.seq.block_ids)
            ds.seq.block_ids = []
        ds.computed = []
        ds.seq.num_computed = 0

    def gc(self, live: set[int]) -> None:
        """Free the draft cache of sequences that are no longer running."""
        for seq_id in [s for s in self._seqs if s not in live]:
            self._release(self._seqs.pop(seq_id))

    def propose(
        self,
        sampler: Sampler,
        targets: list[tuple[Sequence, SequenceSamplingState, int]],
    ) -> list[Draft]:
        """Draft ``k`` tokens for each ``(sequence, sampling state, k)``."""
        active: list[tuple[_DraftSeq, SequenceSamplingState, int]] = []
        drafts = [Draft([]) for _ in targets]
        index: list[int] = []
        for j, (seq, st, k) in enumerate(targets):
            ds = self._seqs.get(seq.seq_id)
            if ds is None:
                ds = _DraftSeq(Sequence(seq.seq_id, seq.request_id, seq.index, [], 0, 0, 0.0))
                self._seqs[seq.seq_id] = ds
            tokens = seq.token_ids
            common = 0
            limit = min(len(ds.computed), len(tokens) - 1)
            while common < limit and ds.computed[common] == tokens[common]:
                common += 1
            ds.seq.token_ids = list(tokens)
            ds.seq.num_computed = common
            if not reserve_slots(
                ds.seq, len(tokens) + k, self.block_size, self.pool.num_free, self.pool.allocate
            ):
                self._release(ds)
                continue
            active.append((ds, st, k))
            index.append(j)
        if not active:
            return drafts
        probs: list[list[torch.Tensor]] = [[] for _ in active]
        while True:
            rows = [(a, i) for i, a in enumerate(active) if len(drafts[index[i]].tokens) < a[2]]
            if not rows:
                break
            scheduled = [(a[0].seq, a[0].seq.num_tokens - a[0].seq.num_computed) for a, _ in rows]
            logits = self.runner.execute(scheduled, [True] * len(rows))
            states = [a[1] for a, _ in rows]
            x = sampler.process(logits, states)
            for r, (a, i) in enumerate(rows):
                ds, st, _k = a
                ds.seq.num_computed = ds.seq.num_tokens
                if st.params.greedy:
                    tok = int(x[r].argmax())
                else:
                    q = sampler.warp(x[r : r + 1], [st]).softmax(dim=-1)[0]
                    tok = int(torch.multinomial(q.double(), 1, generator=st.generator).item())
                    probs[i].append(q)
                drafts[index[i]].tokens.append(tok)
                ds.seq.token_ids.append(tok)
        for i, (ds, _st, _k) in enumerate(active):
            ds.computed = ds.seq.token_ids[: ds.seq.num_computed]
            if probs[i]:
                drafts[index[i]].probs = torch.stack(probs[i])
        return drafts


@dataclass(eq=False)
class Candidate:
    """A decoding sequence that may speculate this step (built by the engine core)."""

    row: int
    seq: Sequence
    state: SequenceSamplingState
    #: The request's predicted output as token ids (OpenAI ``prediction``), if any.
    prediction: list[int] | None
    #: Most drafts this sequence may take (what is left of max_tokens and the context, - 1).
    limit: int


class Speculator:
    """Chooses draft sources, reserves slots, drafts, and verifies: the engine's one entry."""

    def __init__(
        self, config: SpeculativeConfig, drafter: DraftModelProposer | None = None
    ) -> None:
        if config.method == "draft" and drafter is None:
            raise ConfigError("speculative method 'draft' needs a draft model")
        self.config = config
        self.drafter = drafter
        self.stats = SpeculativeStats()

    def propose(
        self,
        sampler: Sampler,
        candidates: list[Candidate],
        budget: int,
        reserve: Callable[[Sequence, int], bool],
    ) -> dict[int, Draft]:
        """Drafts for as many candidates as the token ``budget`` and free KV slots allow.

        Requests with a ``prediction`` draft from it (whatever the engine's method); the
        others use the configured method. Returns ``{row: draft}``; slots for the drafts are
        reserved through ``reserve(seq, num_tokens)``.
        """
        cfg = self.config
        out: dict[int, Draft] = {}
        model_rows: list[Candidate] = []
        for c in candidates:
            k = min(cfg.num_tokens, c.limit, budget)
            if k < 1:
                continue
            if c.prediction is not None:
                tokens = prediction_lookup(c.prediction, c.seq.output_ids, k, cfg.ngram_max)
                if not tokens and cfg.method == "ngram":
                    tokens = ngram_lookup(c.seq.token_ids, k, cfg.ngram_max, cfg.ngram_min)
            elif cfg.method == "ngram":
                tokens = ngram_lookup(c.seq.token_ids, k, cfg.ngram_max, cfg.ngram_min)
            elif cfg.method == "draft":
                if reserve(c.seq, c.seq.num_tokens + k):
                    c.limit = k
                    model_rows.append(c)
                    budget -= k
                continue
            else:
                continue
            if tokens and reserve(c.seq, c.seq.num_tokens + len(tokens)):
                out[c.row] = Draft(tokens)
                budget -= len(tokens)
        if model_rows and self.drafter is not None:
            drafts = self.drafter.propose(sampler, [(c.seq, c.state, c.limit) for c in model_rows])
            for c, d in zip(model_rows, drafts, strict=True):
                if d.tokens:
                    out[c.row] = d
        return out

    def verify(
        self, sampler: Sampler, logits: torch.Tensor, state: SequenceSamplingState, draft: Draft
    ) -> list[int]:
        """Tokens to append after verifying ``draft`` (see :func:`verify_draft`), counted."""
        tokens, accepted = verify_draft(sampler, logits, state, draft)
        self.stats.draft_tokens += len(draft.tokens)
        self.stats.accepted_tokens += accepted
        self.stats.verify_steps += 1
        return tokens

    def gc(self, live: set[int]) -> None:
        """Drop draft-model state of sequences that are gone."""
        if self.drafter is not None:
            self.drafter.gc(live)
