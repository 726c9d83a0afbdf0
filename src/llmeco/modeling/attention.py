"""Attention of a flat token batch over the paged KV cache, with optional windows and capping.

The runner describes where each token's K/V go and which cache slots each sequence reads
(:class:`AttentionBatch`); :class:`StepMasks` turns that, once per step, into the masks each
distinct attention window needs (a sliding layer attends to the last ``window`` positions,
``kv_pos > q_pos - window`` as transformers' ``sliding_window_overlay``); :func:`attend`
runs one layer's attention for every sequence of the step.

Without soft-capping attention goes through ``scaled_dot_product_attention``; with it
(Gemma 2) scores are computed explicitly as transformers' eager path does: scale, cap with
``cap * tanh(s / cap)``, mask, float32 softmax, weighted sum.

Shapes: T = tokens in the step, H = query heads, Hkv = key/value heads, G = H // Hkv,
D = head dim, S = slots in the KV pool (blocks x block size), L = gathered context length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class PrefillSpan:
    """One sequence with several new tokens this step (a prompt or a chunk of one)."""

    row_start: int  # first row of this sequence in the flat batch
    num_new: int  # rows it owns
    start_pos: int  # tokens already in the cache before this step
    gather: torch.Tensor | None  # [start_pos + num_new] cache slots; None when start_pos == 0


@dataclass
class AttentionBatch:
    """Where each token of a flat batch reads and writes K/V in the paged cache."""

    slot_mapping: torch.Tensor  # [T] cache slot receiving each token's K/V
    decode_rows: torch.Tensor | None = None  # [Bd] rows that are single-token decodes
    decode_gather: torch.Tensor | None = None  # [Bd, L] slots each decode attends to
    decode_mask: torch.Tensor | None = None  # [Bd, 1, 1, L] True where a slot is real
    prefills: list[PrefillSpan] = field(default_factory=list)
    #: Every row is a decode, in row order (``decode_rows == arange(T)``): attention then
    #: skips picking the rows out and scattering them back, a third of a decode step's
    #: indexing on a small model.
    decode_only: bool = False


@dataclass
class WindowMasks:
    """Masks for one attention window: decodes' and each prefill span's (None = causal)."""

    decode: torch.Tensor | None
    prefill: list[torch.Tensor | None]
    #: ``decode`` as an additive mask (0 / -inf) in the activations' dtype, what
    #: ``scaled_dot_product_attention`` turns a boolean mask into on every call: built once a
    #: step instead of once per layer.
    decode_bias: torch.Tensor | None = None


class StepMasks:
    """The masks of one step, built once per distinct window and shared by its layers."""

    def __init__(
        self,
        batch: AttentionBatch,
        positions: torch.Tensor,
        windows: set[int | None],
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.batch = batch
        self._by_window = {w: self._build(batch, positions, w, dtype) for w in windows}

    def get(self, window: int | None) -> WindowMasks:
        """Masks for layers attending within ``window`` tokens (None: whole context)."""
        return self._by_window[window]

    @staticmethod
    def _build(
        batch: AttentionBatch, positions: torch.Tensor, window: int | None, dtype: torch.dtype
    ) -> WindowMasks:
        decode = batch.decode_mask
        if window is not None and decode is not None and batch.decode_rows is not None:
            assert batch.decode_gather is not None
            qpos = positions[batch.decode_rows]  # [Bd]
            kpos = torch.arange(batch.decode_gather.shape[1], device=positions.device)
            recent = kpos[None, :] > (qpos[:, None] - window)
            decode = decode & recent[:, None, None, :]
        prefill: list[torch.Tensor | None] = []
        for span in batch.prefills:
            if span.gather is None and window is None:
                prefill.append(None)  # plain causal over the span itself
                continue
            total = span.start_pos + span.num_new
            first = 0 if span.gather is not None else span.start_pos  # keys: cache or own rows
            qpos = torch.arange(span.start_pos, total, device=positions.device)
            kpos = torch.arange(first, total, device=positions.device)
            mask = kpos[None, :] <= qpos[:, None]
            if window is not None:
                mask = mask & (kpos[None, :] > qpos[:, None] - window)
            prefill.append(mask)
        bias = None
        if decode is not None:
            bias = torch.zeros(decode.shape, dtype=dtype, device=decode.device)
            bias.masked_fill_(~decode, float("-inf"))
        return WindowMasks(decode, prefill, bias)


def attend(
    q: torch.Tensor,  # [T, H, D], rotated
    k: torch.Tensor,  # [T, Hkv, D], rotated, already written to the cache
    v: torch.Tensor,  # [T, Hkv, D]
    masks: WindowMasks,
    batch: AttentionBatch,
    kv_cache: torch.Tensor,  # [2, S, Hkv, D]: this layer's keys then values
    scale: float,
    softcap: float | None,
) -> torch.Tensor:
    """Attention output [T, H, D] for every token of the step."""
    if batch.decode_only:
        return _decode(q, batch, masks, kv_cache, scale, softcap)
    out = torch.empty_like(q)
    if batch.decode_rows is not None:
        out[batch.decode_rows] = _decode(q, batch, masks, kv_cache, scale, softcap)
    for span, mask in zip(batch.prefills, masks.prefill, strict=True):
        rows = slice(span.row_start, span.row_start + span.num_new)
        keys, values = k[rows], v[rows]
        if span.gather is not None:
            keys, values = kv_cache[:, span.gather].unbind(0)
        o = _sdpa(
            q[rows].transpose(0, 1),
            keys.transpose(0, 1),
            values.transpose(0, 1),
            mask,
            scale,
            softcap,
        )
        out[rows] = o.transpose(0, 1)
    return out


def _decode(
    q: torch.Tensor,
    batch: AttentionBatch,
    masks: WindowMasks,
    kv_cache: torch.Tensor,  # [2, S, Hkv, D]
    scale: float,
    softcap: float | None,
) -> torch.Tensor:
    """Single-token queries of many sequences, batched: GQA groups act as query rows."""
    assert batch.decode_rows is not None and batch.decode_gather is not None
    bd = batch.decode_rows.shape[0]
    heads, hkv, dim = q.shape[1], kv_cache.shape[2], q.shape[2]
    qd = (q if batch.decode_only else q[batch.decode_rows]).reshape(bd, hkv, heads // hkv, dim)
    # Keys and values of every decode in one gather: [2, Bd, L, Hkv, D] -> [Bd, Hkv, L, D] each.
    keys, values = kv_cache[:, batch.decode_gather].transpose(2, 3).unbind(0)
    if softcap is None:
        o = F.scaled_dot_product_attention(
            qd, keys, values, attn_mask=masks.decode_bias, scale=scale
        )
    else:
        o = _eager(qd, keys, values, masks.decode, scale, softcap)
    return o.reshape(bd, heads, dim)


def _sdpa(
    q: torch.Tensor,  # [H, n, D]
    k: torch.Tensor,  # [Hkv, m, D]
    v: torch.Tensor,
    mask: torch.Tensor | None,  # [n, m] bool, or None for causal n == m
    scale: float,
    softcap: float | None,
) -> torch.Tensor:
    """Attention of one sequence's queries over its keys (GQA heads shared)."""
    if softcap is None:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None, scale=scale, enable_gqa=True
        )
    groups = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(groups, dim=0), v.repeat_interleave(groups, dim=0)
    if mask is None:
        n = q.shape[1]
        ar = torch.arange(n, device=q.device)
        mask = ar[None, :] <= ar[:, None]
    return _eager(q, k, v, mask, scale, softcap)


def _eager(
    q: torch.Tensor,  # [..., n, D]
    k: torch.Tensor,  # [..., m, D]
    v: torch.Tensor,
    mask: torch.Tensor | None,  # broadcastable to [..., n, m], True where allowed
    scale: float,
    softcap: float,
) -> torch.Tensor:
    """Explicit attention with score soft-capping, as transformers' eager attention."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = torch.tanh(scores / softcap) * softcap
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v)
