"""Logits → next tokens for a batch of sequences, each with its own sampling parameters.

The pipeline for one step (``logits`` is ``[B, V]``; everything is computed in float32)::

    penalties   repetition (HF, prompt + output), presence / frequency (OpenAI, output only)
    mask        structured output: disallowed tokens → -inf
    ── logprobs are read here: log_softmax of the penalised, masked logits ──
    greedy rows argmax                                      (temperature 0 or top_k 1)
    other rows  / temperature → top_k → top_p → min_p → sample

Semantics follow Hugging Face ``generate`` (``RepetitionPenaltyLogitsProcessor``,
``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ``TopPLogitsWarper``, ``MinPLogitsWarper``, in
that order) and the OpenAI API where HF has no equivalent (presence and frequency penalties).
Greedy decoding therefore picks exactly the token HF greedy search picks with the same
penalties, and with no penalties it is exactly ``logits.argmax(-1)``.

Logprobs are those of the model's distribution *after* penalties and the structured-output
mask but *before* temperature, top-k, top-p and min-p (what vLLM returns by default): they
describe what the model thinks, not how the sampler happened to reshape it. Alternatives the
mask forbids have a logprob of ``-inf``; the server clamps them for JSON.

Sampling inverts each row's cumulative distribution with one uniform number per row (cheaper
on a CPU than an exponential race over the whole vocabulary). A seeded row takes its number from
its own ``torch.Generator``, so its tokens depend only on its seed, its index and its logits,
never on the rest of the batch; unseeded rows take theirs from torch's global generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from llmeco.engine.request import SamplingParams, TokenLogprob

__all__ = ["SampleResult", "Sampler", "SequenceSamplingState", "make_generator"]

_MASK64 = (1 << 64) - 1
_NEG_INF = float("-inf")
#: How many of a row's most likely tokens are searched for its top-p nucleus, in turn, before
#: the whole row is sorted.
_TOP_P_CANDIDATES = (256, 4096)


@dataclass(eq=False)
class _PenaltyStats:
    """Sparse token statistics of one sequence, kept on the logits' device.

    Penalties touch only tokens that occurred, so they are applied by gathering and scattering
    those ids rather than by dense ``[B, V]`` arithmetic. Updating costs O(new tokens) per step.
    """

    device: torch.device
    prompt: frozenset[int]
    #: Unique ids in the prompt or the output: what the repetition penalty applies to.
    seen_ids: torch.Tensor
    #: Unique ids in the output, in order of first appearance, and how often each occurred.
    out_ids: torch.Tensor
    out_counts: torch.Tensor
    #: Output id → its index in ``out_ids``.
    position: dict[int, int] = field(default_factory=dict)
    #: How many of the sequence's output tokens are already counted.
    num_counted: int = 0

    @classmethod
    def for_prompt(cls, prompt: Sequence[int], vocab: int, device: torch.device) -> _PenaltyStats:
        """Statistics of a sequence that has generated nothing yet."""
        unique = frozenset(t for t in prompt if 0 <= t < vocab)  # HF ignores out-of-vocab ids
        return cls(
            device,
            unique,
            torch.tensor(sorted(unique), dtype=torch.long, device=device),
            torch.empty(0, dtype=torch.long, device=device),
            torch.empty(0, dtype=torch.float32, device=device),
        )

    def update(self, new_tokens: Sequence[int], vocab: int) -> None:
        """Count ``new_tokens``, the output tokens generated since the last update."""
        fresh: list[int] = []
        repeats: list[int] = []
        for t in new_tokens:
            if not 0 <= t < vocab:
                continue
            pos = self.position.get(t)
            if pos is None:
                self.position[t] = len(self.position)
                fresh.append(t)
            else:
                repeats.append(pos)
        self.num_counted += len(new_tokens)
        dev = self.device
        if fresh:
            self.out_ids = torch.cat([self.out_ids, torch.tensor(fresh, device=dev)])
            self.out_counts = torch.cat([self.out_counts, torch.ones(len(fresh), device=dev)])
            unseen = [t for t in fresh if t not in self.prompt]
            if unseen:
                self.seen_ids = torch.cat([self.seen_ids, torch.tensor(unseen, device=dev)])
        if repeats:
            index = torch.tensor(repeats, device=dev)
            self.out_counts.index_add_(0, index, torch.ones(len(repeats), device=dev))


@dataclass(eq=False)
class SequenceSamplingState:
    """Everything the sampler needs to know about one sequence, kept by the engine across steps."""

    params: SamplingParams
    prompt_token_ids: list[int]
    #: Generated tokens so far; the engine appends to it after each step.
    output_token_ids: list[int]
    #: From :func:`make_generator`; ``None`` samples from torch's global generator.
    generator: torch.Generator | None
    #: Structured output: bool ``[vocab]``, True = allowed; set by the engine before each step.
    allowed_mask: torch.Tensor | None = None
    _penalty: _PenaltyStats | None = field(default=None, init=False, repr=False)

    @property
    def has_penalties(self) -> bool:
        """True when any repetition, presence or frequency penalty is active."""
        p = self.params
        return (
            p.repetition_penalty != 1.0 or p.presence_penalty != 0.0 or p.frequency_penalty != 0.0
        )

    def penalty_stats(self, vocab_size: int, device: torch.device) -> _PenaltyStats:
        """Token statistics for the penalties, brought up to date with ``output_token_ids``."""
        stats = self._penalty
        out = self.output_token_ids
        if stats is None or stats.device != device or stats.num_counted > len(out):
            stats = _PenaltyStats.for_prompt(self.prompt_token_ids, vocab_size, device)
            self._penalty = stats
        if stats.num_counted < len(out):
            stats.update(out[stats.num_counted :], vocab_size)
        return stats


@dataclass
class SampleResult:
    """The sampler's answer for one step: one token per row, and logprobs for rows that asked."""

    token_ids: list[int]
    #: ``None`` when no row asked for logprobs; otherwise one entry per row (``None`` if not asked).
    logprobs: list[TokenLogprob | None] | None


def _splitmix64(x: int) -> int:
    """A bijective 64-bit mixer, so nearby (seed, index) pairs give unrelated generator states."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def make_generator(
    seed: int | None, device: torch.device, index: int = 0
) -> torch.Generator | None:
    """A generator for sequence ``index`` of a request with ``seed``; ``None`` if unseeded.

    Each of the ``n`` sequences of a seeded request gets its own stream (so they differ from
    each other), and the same (seed, index) always gives the same stream (so they reproduce).
    """
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(_splitmix64(_splitmix64(seed & _MASK64) ^ index))
    return g


def _column(values: Sequence[float], device: torch.device) -> torch.Tensor:
    """Per-row parameters as a float32 ``[n, 1]`` column that broadcasts over the vocabulary."""
    return torch.tensor(values, dtype=torch.float32, device=device)[:, None]


def _divide_like_hf(x: torch.Tensor, divisor: torch.Tensor) -> torch.Tensor:
    """``x / divisor`` rounded the way HF's ``scores / python_float`` rounds on this device.

    On CUDA, dividing by a Python scalar is computed as ``x * (1 / d)``, which can differ from a
    true division by one ulp; matching it keeps greedy decoding token-identical to HF's.
    """
    if x.device.type == "cuda":
        return x * divisor.reciprocal()
    return x / divisor


def _is_plain_greedy(state: SequenceSamplingState) -> bool:
    p = state.params
    return (
        p.greedy and p.logprobs is None and state.allowed_mask is None and not state.has_penalties
    )


class Sampler:
    """Turns a batch of logits into next tokens (and logprobs), honouring each row's parameters."""

    def __init__(self, vocab_size: int, decode_token: Callable[[int], str]) -> None:
        """``vocab_size`` is the width of the logits; ``decode_token`` gives a token's text."""
        self.vocab_size = vocab_size
        self.decode_token = decode_token

    def __call__(
        self, logits: torch.Tensor, states: Sequence[SequenceSamplingState]
    ) -> SampleResult:
        """Pick the next token of every row of ``logits`` (``[B, V]``, any float dtype)."""
        if logits.dim() != 2 or logits.shape[0] != len(states):
            raise ValueError(
                f"logits must be [batch, vocab] with one row per state; got {tuple(logits.shape)} "
                f"for {len(states)} states"
            )
        if logits.shape[1] != self.vocab_size:
            raise ValueError(f"logits have {logits.shape[1]} columns, expected {self.vocab_size}")
        # Hot path: argmax is exact in any float dtype, so skip the float32 copy.
        if all(_is_plain_greedy(s) for s in states):
            return SampleResult(logits.argmax(dim=-1).tolist(), None)

        x = self.process(logits, states)  # [B, V] float32

        greedy = [i for i, s in enumerate(states) if s.params.greedy]
        if len(greedy) == len(states):
            tokens = x.argmax(dim=-1)
        else:
            sampled = [i for i, s in enumerate(states) if not s.params.greedy]
            if not greedy:
                tokens = self._sample(x, states)
            else:
                tokens = torch.empty(len(states), dtype=torch.long, device=x.device)
                g_idx = torch.tensor(greedy, device=x.device)
                s_idx = torch.tensor(sampled, device=x.device)
                tokens[g_idx] = x[g_idx].argmax(dim=-1)
                tokens[s_idx] = self._sample(x[s_idx], [states[i] for i in sampled])
        token_ids: list[int] = tokens.tolist()
        return SampleResult(token_ids, self._logprobs(x, tokens, token_ids, states))

    def process(
        self, logits: torch.Tensor, states: Sequence[SequenceSamplingState]
    ) -> torch.Tensor:
        """Penalties and structured-output masks applied to a float32 copy of ``logits``.

        This is what greedy rows take the argmax of and what logprobs are read from.
        """
        x = logits.to(torch.float32, copy=True, memory_format=torch.contiguous_format)  # [B, V]
        self._apply_penalties(x, states)
        self._apply_masks(x, states)
        return x

    def warp(self, x: torch.Tensor, states: Sequence[SequenceSamplingState]) -> torch.Tensor:
        """Temperature, top-k, top-p and min-p (HF order) on processed logits; returns a copy.

        Every row must be a sampling row (temperature > 0). Filtered tokens become -inf; the
        softmax of the result is the distribution a row is sampled from.
        """
        vocab = x.shape[1]
        params = [s.params for s in states]
        if any(p.temperature <= 0.0 for p in params):
            raise ValueError("warp() is for sampling rows; greedy rows take the argmax")
        x = x / _column([p.temperature for p in params], x.device)
        ks = [p.top_k if 0 < p.top_k < vocab else 0 for p in params]  # 0 = off
        if any(ks):
            _top_k(x, ks)
        if any(p.top_p < 1.0 for p in params):
            _top_p(x, [p.top_p for p in params])
        if any(p.min_p > 0.0 for p in params):
            _min_p(x, [p.min_p for p in params])
        return x

    # -- logits processors ----------------------------------------------------------------
    def _apply_penalties(self, x: torch.Tensor, states: Sequence[SequenceSamplingState]) -> None:
        """Repetition, presence and frequency penalties, in place, on the ids that occurred.

        HF's ``RepetitionPenaltyLogitsProcessor`` gathers the scores of the ids in the prompt and
        output, rescales them and scatters them back; this does the same for all rows at once
        through flat indices ``row * V + id`` (ids are unique per row, so scatters never clash).
        """
        rows = [i for i, s in enumerate(states) if s.has_penalties]
        if not rows:
            return
        dev, vocab = x.device, x.shape[1]
        flat_x = x.view(-1)
        stats = {i: states[i].penalty_stats(self.vocab_size, dev) for i in rows}

        rep_rows = [i for i in rows if states[i].params.repetition_penalty != 1.0]
        if rep_rows:
            ids = [stats[i].seen_ids for i in rep_rows]
            flat, owner = _flat_index(rep_rows, ids, vocab, dev)
            penalty = _column([states[i].params.repetition_penalty for i in rep_rows], dev)[:, 0]
            penalty = penalty[owner]
            scores = flat_x[flat]
            flat_x[flat] = torch.where(
                scores < 0, scores * penalty, _divide_like_hf(scores, penalty)
            )

        pf_rows = [
            i
            for i in rows
            if states[i].params.presence_penalty != 0.0 or states[i].params.frequency_penalty != 0.0
        ]
        if pf_rows:
            flat, owner = _flat_index(pf_rows, [stats[i].out_ids for i in pf_rows], vocab, dev)
            counts = torch.cat([stats[i].out_counts for i in pf_rows])
            presence = _column([states[i].params.presence_penalty for i in pf_rows], dev)[:, 0]
            frequency = _column([states[i].params.frequency_penalty for i in pf_rows], dev)[:, 0]
            flat_x[flat] -= presence[owner] + frequency[owner] * counts

    def _apply_masks(self, x: torch.Tensor, states: Sequence[SequenceSamplingState]) -> None:
        """Structured output: set the logits of disallowed tokens to -inf, in place."""
        rows = [i for i, s in enumerate(states) if s.allowed_mask is not None]
        if not rows:
            return
        vocab = x.shape[1]
        masks = []
        for i in rows:
            m = states[i].allowed_mask
            assert m is not None
            m = m.to(torch.bool).reshape(-1)
            if m.shape[0] < vocab:  # tokens the grammar's vocabulary lacks are never allowed
                m = torch.cat([m, m.new_zeros(vocab - m.shape[0])])
            masks.append(m[:vocab])
        allowed = torch.stack(masks).to(x.device, non_blocking=True)  # [M, V]
        idx = torch.tensor(rows, device=x.device)
        x[idx] = x[idx].masked_fill(~allowed, _NEG_INF)

    # -- sampling -------------------------------------------------------------------------
    def _sample(self, x: torch.Tensor, states: Sequence[SequenceSamplingState]) -> torch.Tensor:
        """Sample one token per row of processed logits ``x`` ([S, V]); a long tensor [S]."""
        probs = self.warp(x, states).softmax(dim=-1)  # [S, V]
        return _draw(probs, [s.generator for s in states])

    def _logprobs(
        self,
        x: torch.Tensor,
        tokens: torch.Tensor,
        token_ids: list[int],
        states: Sequence[SequenceSamplingState],
    ) -> list[TokenLogprob | None] | None:
        """Logprob of each chosen token and the top alternatives, for rows that asked."""
        rows = [i for i, s in enumerate(states) if s.params.logprobs is not None]
        if not rows:
            return None
        idx = torch.tensor(rows, device=x.device)
        lp = torch.log_softmax(x[idx], dim=-1)  # [L, V]
        chosen: list[float] = lp.gather(1, tokens[idx][:, None])[:, 0].tolist()
        k_max = max(states[i].params.logprobs or 0 for i in rows)
        top_vals: list[list[float]] = [[] for _ in rows]
        top_ids: list[list[int]] = [[] for _ in rows]
        if k_max > 0:
            values, indices = lp.topk(k_max, dim=-1)  # sorted, most likely first
            top_vals, top_ids = values.tolist(), indices.tolist()
        out: list[TokenLogprob | None] = [None] * len(states)
        for j, i in enumerate(rows):
            k = states[i].params.logprobs or 0
            top = [
                (t, self.decode_token(t), v)
                for t, v in zip(top_ids[j][:k], top_vals[j][:k], strict=True)
            ]
            tok = token_ids[i]
            out[i] = TokenLogprob(tok, self.decode_token(tok), chosen[j], top)
        return out


def _top_k(x: torch.Tensor, ks: list[int]) -> None:
    """HF ``TopKLogitsWarper`` per row, in place: drop tokens below the k-th largest (0 = off)."""
    k_max = max(ks)
    top = x.topk(k_max, dim=-1).values  # [S, k_max], descending
    pos = torch.tensor([max(k, 1) - 1 for k in ks], device=x.device)[:, None]
    active = torch.tensor([k > 0 for k in ks], device=x.device)[:, None]
    threshold = torch.where(active, top.gather(1, pos), _NEG_INF)
    x.masked_fill_(x < threshold, _NEG_INF)


def _top_p(x: torch.Tensor, ps: list[float]) -> None:
    """HF ``TopPLogitsWarper`` per row, in place (``ps`` 1 = off).

    HF removes a token when the mass of the tokens *below* it (ascending cumulative sum) is at
    most ``1 - top_p``, i.e. keeps it while the mass of the tokens *above* it is below
    ``top_p``, and always keeps the most likely one. Sorting all of ``[B, V]`` is slow on a CPU
    and the nucleus is usually small, so it is looked for among each row's few hundred (then
    few thousand) largest logits first; only rows whose nucleus is larger still are sorted.
    (Tokens tied with the last one of the nucleus are all kept; HF's sort keeps an arbitrary
    subset of such ties.)
    """
    dev, vocab = x.device, x.shape[1]
    pending = [i for i, p in enumerate(ps) if p < 1.0]
    log_total = x.logsumexp(dim=-1, keepdim=True)  # [S, 1]
    for n_cand in _TOP_P_CANDIDATES:
        if not pending or n_cand >= vocab:
            break
        idx = torch.tensor(pending, device=dev)
        rows = x[idx]  # [P, V]
        cand = rows.topk(n_cand, dim=-1).values  # [P, C], most likely first
        cumulative = (cand - log_total[idx]).exp().cumsum(dim=-1)
        above = torch.cat([torch.zeros_like(cumulative[:, :1]), cumulative[:, :-1]], dim=-1)
        keep = above < _column([ps[i] for i in pending], dev)  # a prefix of each row
        threshold = cand.gather(1, keep.sum(dim=-1, keepdim=True) - 1)
        decided: list[bool] = (~keep[:, -1]).tolist()  # the nucleus ends among the candidates
        done = [j for j, d in enumerate(decided) if d]
        if done:
            sel = torch.tensor(done, device=dev)
            kept = rows[sel]
            x[idx[sel]] = kept.masked_fill(kept < threshold[sel], _NEG_INF)
        pending = [i for i, d in zip(pending, decided, strict=True) if not d]
    if pending:
        idx = torch.tensor(pending, device=dev)
        x[idx] = _top_p_sorted(x[idx], [ps[i] for i in pending])


def _top_p_sorted(x: torch.Tensor, ps: list[float]) -> torch.Tensor:
    """HF ``TopPLogitsWarper`` verbatim (full ascending sort), one ``top_p`` per row."""
    sorted_x, order = x.sort(dim=-1)  # ascending, [S, V]
    cumulative = sorted_x.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= _column([1.0 - p for p in ps], x.device)
    remove[:, -1] = False  # always keep the most likely token
    return x.scatter(1, order, sorted_x.masked_fill(remove, _NEG_INF))


def _min_p(x: torch.Tensor, min_ps: list[float]) -> None:
    """HF ``MinPLogitsWarper`` per row, in place: drop tokens with p < min_p * max p."""
    probs = x.softmax(dim=-1)
    top = probs.amax(dim=-1, keepdim=True)
    min_p = _column(min_ps, x.device)
    x.masked_fill_(probs < min_p * top, _NEG_INF)


def _draw(probs: torch.Tensor, generators: list[torch.Generator | None]) -> torch.Tensor:
    """Draw one token per row of ``probs`` ([S, V]) by inverting its cumulative distribution.

    Each row needs a single uniform number: a seeded row takes it from its own generator (so its
    draw is the same whatever else is in the batch), unseeded rows from torch's global one. The
    cumulative sum is taken in float64 so even the tail of a 50k vocabulary keeps its mass.
    ``searchsorted(right=True)`` finds the first token whose cumulative mass exceeds
    ``u * total``, which can never be a token of probability zero.
    """
    u = torch.empty(probs.shape[0], 1, dtype=torch.float64, device=probs.device)
    if any(g is None for g in generators):
        u.uniform_()
    for i, g in enumerate(generators):
        if g is None:
            continue
        if g.device == u.device:
            u[i].uniform_(generator=g)
        else:  # e.g. a CPU generator with logits on a GPU: draw there, copy the one number
            u[i].copy_(torch.rand(1, dtype=torch.float64, generator=g, device=g.device))
    cdf = probs.to(torch.float64).cumsum_(dim=-1)  # [S, V]
    total = cdf[:, -1:]
    target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    tokens = torch.searchsorted(cdf, target, right=True)[:, 0]
    return tokens.clamp_max_(probs.shape[1] - 1)


def _flat_index(
    rows: list[int], ids: list[torch.Tensor], vocab: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat positions ``row * vocab + id`` of per-row id lists, and which of ``rows`` owns each."""
    lengths = [t.numel() for t in ids]
    owner = torch.repeat_interleave(
        torch.arange(len(rows), device=device),
        torch.tensor(lengths, device=device),
        output_size=sum(lengths),
    )
    row_of = torch.tensor(rows, device=device)[owner]
    return row_of * vocab + torch.cat(ids), owner
