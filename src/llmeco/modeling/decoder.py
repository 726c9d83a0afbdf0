"""One lean decoder for every supported family: flat token batches over a paged KV cache.

Why not the Hugging Face modules: the engine batches requests of different lengths into one
flat list of tokens each step (chunked prefill and decode together) and keeps K/V in a paged
block pool. Hugging Face's forward expects padded rectangles and its own cache objects, and
its per-call overhead dominates decode of a small model on a CPU.

The maths follows transformers' ``modeling_llama`` / ``qwen2`` / ``qwen3`` / ``gemma2`` /
``gemma3`` / ``phi3`` / ``mixtral`` / ``qwen2_moe`` / ``qwen3_moe`` operation for operation
(RMSNorm in float32, rotate-half RoPE from transformers' own RoPE initialisers, gated MLP)
so greedy outputs match ``generate`` token for token on the same safetensors. What differs
between families is a :class:`~llmeco.modeling.families.FamilySpec` read from the config;
this module obeys its switches and :mod:`llmeco.modeling.weights` maps checkpoint names.

Shapes: T = tokens in the step, H = query heads, Hkv = key/value heads, D = head dim,
S = slots in the KV pool (blocks x block size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from llmeco.modeling.attention import AttentionBatch, PrefillSpan, StepMasks, attend
from llmeco.modeling.families import FamilySpec, ModelDims, family_spec
from llmeco.modeling.moe import GatedMLP, SparseMoe

if TYPE_CHECKING:
    from llmeco.modeling.fused import FusedDecode

__all__ = [
    "AttentionBatch",
    "DecoderLayer",
    "DecoderModel",
    "ModelDims",
    "PrefillSpan",
    "build_model",
]


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in float32, as Hugging Face's LlamaRMSNorm."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``w * normalize(x)``, normalised in float32 and cast back before the product.

        ``F.rms_norm`` without a weight computes ``x * rsqrt(mean(x²) + eps)`` bit for bit
        as transformers writes it out, in one operator instead of five.
        """
        normed = F.rms_norm(x.float(), self.weight.shape, None, self.eps)
        return self.weight * normed.to(x.dtype)


class GemmaRMSNorm(nn.Module):
    """Gemma's RMSNorm: scale by ``1 + w`` (zero-centred weight), in float32 throughout."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``normalize(x) * (1 + w)`` in float32, cast back after the product."""
        out = F.rms_norm(x.float(), self.weight.shape, None, self.eps)
        return (out * (1.0 + self.weight.float())).type_as(x)


def _apply_rope(
    x: torch.Tensor,  # [T, heads, D]
    cos: torch.Tensor,  # [T, 1, rotary_dim]
    signed_sin: torch.Tensor,  # [T, 1, rotary_dim]: sin with its first half negated
    rotary_dim: int,
) -> torch.Tensor:
    """Rotate the first ``rotary_dim`` dims of each head (all of them unless partial).

    transformers computes ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) =
    cat(-x2, x1)``; ``roll(x) * signed_sin = cat(x2 * -sin1, x1 * sin2)`` is the same product
    bit for bit (negation is exact), in one kernel instead of four.
    """
    if rotary_dim == x.shape[-1]:
        return x * cos + x.roll(rotary_dim // 2, dims=-1) * signed_sin
    rot, keep = x[..., :rotary_dim], x[..., rotary_dim:]
    rotated = rot * cos + rot.roll(rotary_dim // 2, dims=-1) * signed_sin
    return torch.cat((rotated, keep), dim=-1)


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "gelu_tanh":
        return lambda x: F.gelu(x, approximate="tanh")
    return F.silu


def _softcap(x: torch.Tensor, cap: float | None) -> torch.Tensor:
    return x if cap is None else torch.tanh(x / cap) * cap


class DecoderLayer(nn.Module):
    """One decoder block: attention over the paged cache, then the (gated or sparse) MLP."""

    def __init__(self, spec: FamilySpec, index: int) -> None:
        super().__init__()
        d = spec.dims
        self.spec = spec
        self.window = spec.windows[index]
        self.rope_key = spec.rope_keys[index]
        qkv_out = (d.num_heads + 2 * d.num_kv_heads) * d.head_dim
        self.qkv = nn.Linear(d.hidden_size, qkv_out, bias=spec.qkv_bias)
        self.o_proj = nn.Linear(d.num_heads * d.head_dim, d.hidden_size, bias=spec.o_bias)
        norm = GemmaRMSNorm if spec.gemma_norm else RMSNorm
        self.input_norm = norm(d.hidden_size, d.rms_norm_eps)
        # Llama: the norm before the MLP; Gemma: the norm after attention.
        self.post_norm = norm(d.hidden_size, d.rms_norm_eps)
        self.pre_ff_norm: nn.Module | None = None
        self.post_ff_norm: nn.Module | None = None
        if spec.sandwich_norm:
            self.pre_ff_norm = norm(d.hidden_size, d.rms_norm_eps)
            self.post_ff_norm = norm(d.hidden_size, d.rms_norm_eps)
        self.q_norm: nn.Module | None = None
        self.k_norm: nn.Module | None = None
        if spec.qk_norm:
            self.q_norm = norm(d.head_dim, d.rms_norm_eps)
            self.k_norm = norm(d.head_dim, d.rms_norm_eps)
        act = _activation(spec.activation)
        self.mlp: nn.Module
        if spec.moe is not None and index in spec.moe.sparse_layers:
            self.mlp = SparseMoe(d.hidden_size, spec.moe, act)
        else:
            self.mlp = GatedMLP(d.hidden_size, d.intermediate_size, act, bias=d.mlp_bias)

    def forward(
        self,
        x: torch.Tensor,  # [T, hidden]
        cos: torch.Tensor,  # [T, 1, rotary_dim]
        sin: torch.Tensor,  # [T, 1, rotary_dim], first half negated (see _apply_rope)
        batch: AttentionBatch,
        masks: StepMasks,
        kv_cache: torch.Tensor,  # [2, S, Hkv, D]: this layer's keys then values
    ) -> torch.Tensor:
        """The block's output [T, hidden]; this layer's K/V are written into the cache."""
        spec, d = self.spec, self.spec.dims
        T = x.shape[0]
        qkv = self.qkv(self.input_norm(x))
        q_size, kv_size = d.num_heads * d.head_dim, d.num_kv_heads * d.head_dim
        v = qkv[:, q_size + kv_size :].reshape(T, d.num_kv_heads, d.head_dim)
        if self.q_norm is not None and self.k_norm is not None:
            q = self.q_norm(qkv[:, :q_size].reshape(T, d.num_heads, d.head_dim))
            k = self.k_norm(qkv[:, q_size : q_size + kv_size].reshape(T, d.num_kv_heads, -1))
            q = _apply_rope(q, cos, sin, spec.rotary_dim)
            k = _apply_rope(k, cos, sin, spec.rotary_dim)
        else:  # queries and keys are adjacent columns: rotate them together
            qk = qkv[:, : q_size + kv_size].reshape(T, d.num_heads + d.num_kv_heads, d.head_dim)
            qk = _apply_rope(qk, cos, sin, spec.rotary_dim)
            q, k = qk[:, : d.num_heads], qk[:, d.num_heads :]
        kv_cache[0].index_copy_(0, batch.slot_mapping, k)
        kv_cache[1].index_copy_(0, batch.slot_mapping, v)
        out = attend(
            q, k, v, masks.get(self.window), batch, kv_cache, spec.attn_scale, spec.attn_softcap
        )
        attn: torch.Tensor = self.o_proj(out.view(T, -1))
        if self.pre_ff_norm is not None and self.post_ff_norm is not None:  # Gemma
            x = x + self.post_norm(attn)
            mlp: torch.Tensor = self.post_ff_norm(self.mlp(self.pre_ff_norm(x)))
            return x + mlp
        x = x + attn
        out_mlp: torch.Tensor = self.mlp(self.post_norm(x))
        return x + out_mlp


class DecoderModel(nn.Module):
    """Embeddings, decoder layers, final norm and LM head of any supported family."""

    def __init__(self, spec: FamilySpec, rope_config: Any) -> None:
        super().__init__()
        d = spec.dims
        self.spec = spec
        self.dims: ModelDims = d
        self.embed = nn.Embedding(d.vocab_size, d.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(spec, i) for i in range(d.num_layers))
        self.norm = (GemmaRMSNorm if spec.gemma_norm else RMSNorm)(d.hidden_size, d.rms_norm_eps)
        self.lm_head = nn.Linear(d.hidden_size, d.vocab_size, bias=False)
        if d.tie_word_embeddings:
            self.lm_head.weight = self.embed.weight
        self.rope_config = rope_config
        self.rope_tables: dict[str, tuple[torch.Tensor, float]] = _rope_tables(rope_config, spec)
        self._windows = set(spec.windows)
        #: All-decode steps through the compiled loop (:func:`llmeco.modeling.fused.fuse_decode`).
        self.fused_decode: FusedDecode | None = None

    def rope(
        self, positions: torch.Tensor, dtype: torch.dtype, key: str = "default"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and signed sin [T, 1, rotary_dim] for token positions, computed in float32 like
        transformers; the sine's first half is negated, as :func:`_apply_rope` takes it."""
        inv_freq, scaling = self.rope_tables[key]
        freqs = positions[:, None].float() * inv_freq.to(positions.device)[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = (emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)
        half = freqs.shape[-1]
        signed = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)
        return cos[:, None, :], signed[:, None, :]

    def forward(
        self,
        input_ids: torch.Tensor,  # [T]
        positions: torch.Tensor,  # [T]
        batch: AttentionBatch,
        kv_cache: torch.Tensor,  # [layers, 2, S, Hkv, D]
    ) -> torch.Tensor:
        """Hidden states [T, hidden] after the final norm; K/V written into the cache."""
        x = self.embed(input_ids)
        if self.spec.embed_scale is not None:
            x = x * torch.tensor(self.spec.embed_scale).to(x.dtype)
        tables = {key: self.rope(positions, x.dtype, key) for key in self.rope_tables}
        masks = StepMasks(batch, positions, self._windows, x.dtype)
        if self.fused_decode is not None and batch.decode_only:
            cos, sin = tables[self.spec.rope_keys[0]]
            x = self.fused_decode(x, cos, sin, batch, masks.get(None), kv_cache)
            return self.norm(x)  # type: ignore[no-any-return]
        for i, layer in enumerate(self.layers):
            cos, sin = tables[self.spec.rope_keys[i]]
            x = layer(x, cos, sin, batch, masks, kv_cache[i])
        hidden: torch.Tensor = self.norm(x)
        return hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM-head scores [N, vocab] for the rows that sample (soft-capped for Gemma 2)."""
        scores: torch.Tensor = self.lm_head(hidden)
        return _softcap(scores, self.spec.final_softcap)

    def load_hf_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Copy weights from a Hugging Face state dict of this family (names mapped, q/k/v and
        gate/up fused, Phi-3's fused matrices split where our layout differs).

        Raises:
            ValueError: the checkpoint lacks tensors the model needs or has extra ones.
        """
        from llmeco.modeling.weights import own_state_dict

        own = own_state_dict(self.spec, sd)
        tied = self.dims.tie_word_embeddings
        if tied:  # re-tie: moving off the meta device unties
            self.lm_head.weight = self.embed.weight
        missing, unexpected = self.load_state_dict(own, strict=False)
        missing = [k for k in missing if not (k == "lm_head.weight" and tied)]
        if missing or unexpected:
            raise ValueError(f"weights do not fit the model: missing={missing} extra={unexpected}")
        # RoPE frequencies stay float32 whatever the weights' dtype, as in transformers.
        device = self.embed.weight.device
        self.rope_tables = {
            key: (inv.to(device), scaling)
            for key, (inv, scaling) in _rope_tables(self.rope_config, self.spec).items()
        }


def build_model(config: Any, device: torch.device, dtype: torch.dtype) -> DecoderModel:
    """An empty (uninitialised) decoder for ``config`` on ``device`` in ``dtype``.

    Built on the meta device first so no memory is spent on random initialisation; call
    :meth:`DecoderModel.load_hf_state_dict` next.

    Raises:
        ConfigError: the architecture is not supported (the message lists those that are).
    """
    spec = family_spec(config)
    with torch.device("meta"):
        model = DecoderModel(spec, config)
    model = model.to_empty(device=device).to(dtype)
    model.rope_tables = _rope_tables(config, spec)
    return model


def _rope_tables(config: Any, spec: FamilySpec) -> dict[str, tuple[torch.Tensor, float]]:
    """Inverse frequencies and attention scaling per RoPE key, from transformers' own RoPE
    initialisers (default, llama3, linear, yarn …), in float32 on the CPU."""
    with torch.device("cpu"):
        return {key: _inv_freq(config, spec, key) for key in sorted(set(spec.rope_keys))}


def _inv_freq(config: Any, spec: FamilySpec, key: str) -> tuple[torch.Tensor, float]:
    params = getattr(config, "rope_parameters", None) or {}
    layer_type = None if key == "default" else key
    if layer_type is not None:
        params = params[layer_type]
    rope_type = params.get("rope_type", "default")
    if rope_type == "default":
        base = float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
        dim = spec.rotary_dim
        inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        return inv, 1.0
    init = ROPE_INIT_FUNCTIONS[rope_type]
    if layer_type is None:
        inv_freq, scaling = init(config, None)
    else:
        inv_freq, scaling = init(config, None, layer_type=layer_type)
    return inv_freq.float(), float(scaling)
