"""A lean Llama for the engine: flat token batches over a paged KV cache.

Why not the Hugging Face module: the engine batches requests of different lengths into one
flat list of tokens each step (chunked prefill and decode together) and keeps K/V in a paged
block pool. Hugging Face's forward expects padded rectangles and its own cache objects, and
its per-call overhead dominates decode of a small model on a CPU. The maths here follows
``transformers.models.llama.modeling_llama`` operation for operation (RMSNorm in float32,
rotate-half RoPE from transformers' own RoPE initialisers, SiLU-gated MLP) so greedy outputs
match ``generate`` token for token; the weights are the same safetensors.

Shapes: T = tokens in the step, H = query heads, Hkv = key/value heads, G = H // Hkv,
D = head dim, S = slots in the KV pool (blocks x block size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS


@dataclass(frozen=True)
class LlamaDims:
    """The architecture numbers the forward pass needs, read from a HF ``LlamaConfig``."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool
    mlp_bias: bool

    @classmethod
    def from_config(cls, config: Any) -> LlamaDims:
        """Read dims from a transformers config (Llama, Mistral-like and SmolLM2 layouts)."""
        heads = int(config.num_attention_heads)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(
            vocab_size=int(config.vocab_size),
            hidden_size=int(config.hidden_size),
            intermediate_size=int(config.intermediate_size),
            num_layers=int(config.num_hidden_layers),
            num_heads=heads,
            num_kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(head_dim),
            rms_norm_eps=float(config.rms_norm_eps),
            max_position_embeddings=int(config.max_position_embeddings),
            tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
            attention_bias=bool(getattr(config, "attention_bias", False)),
            mlp_bias=bool(getattr(config, "mlp_bias", False)),
        )


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


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in float32, as Hugging Face's LlamaRMSNorm."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaLayer(nn.Module):
    """One decoder block: attention over the paged cache, then the gated MLP."""

    def __init__(self, d: LlamaDims) -> None:
        super().__init__()
        self.dims = d
        qkv_out = (d.num_heads + 2 * d.num_kv_heads) * d.head_dim
        self.qkv = nn.Linear(d.hidden_size, qkv_out, bias=d.attention_bias)
        self.o_proj = nn.Linear(d.num_heads * d.head_dim, d.hidden_size, bias=d.attention_bias)
        self.gate_up = nn.Linear(d.hidden_size, 2 * d.intermediate_size, bias=d.mlp_bias)
        self.down = nn.Linear(d.intermediate_size, d.hidden_size, bias=d.mlp_bias)
        self.input_norm = RMSNorm(d.hidden_size, d.rms_norm_eps)
        self.post_norm = RMSNorm(d.hidden_size, d.rms_norm_eps)

    def forward(
        self,
        x: torch.Tensor,  # [T, hidden]
        cos: torch.Tensor,  # [T, D]
        sin: torch.Tensor,  # [T, D]
        batch: AttentionBatch,
        k_cache: torch.Tensor,  # [S, Hkv, D]
        v_cache: torch.Tensor,  # [S, Hkv, D]
    ) -> torch.Tensor:
        d = self.dims
        T = x.shape[0]
        h = self.input_norm(x)
        qkv = self.qkv(h)
        q_size, kv_size = d.num_heads * d.head_dim, d.num_kv_heads * d.head_dim
        q = qkv[:, :q_size].view(T, d.num_heads, d.head_dim)
        k = qkv[:, q_size : q_size + kv_size].view(T, d.num_kv_heads, d.head_dim)
        v = qkv[:, q_size + kv_size :].view(T, d.num_kv_heads, d.head_dim)
        c, s = cos.unsqueeze(1), sin.unsqueeze(1)
        q = q * c + _rotate_half(q) * s
        k = k * c + _rotate_half(k) * s
        k_cache.index_copy_(0, batch.slot_mapping, k)
        v_cache.index_copy_(0, batch.slot_mapping, v)

        out = torch.empty_like(q)  # [T, H, D]
        if batch.decode_rows is not None:
            out[batch.decode_rows] = self._decode_attention(q, batch, k_cache, v_cache)
        for span in batch.prefills:
            rows = slice(span.row_start, span.row_start + span.num_new)
            out[rows] = self._prefill_attention(q[rows], k[rows], v[rows], span, k_cache, v_cache)

        x = x + self.o_proj(out.view(T, -1))
        gate, up = self.gate_up(self.post_norm(x)).chunk(2, dim=-1)
        mlp: torch.Tensor = self.down(F.silu(gate) * up)
        return x + mlp

    def _decode_attention(
        self, q: torch.Tensor, batch: AttentionBatch, k_cache: torch.Tensor, v_cache: torch.Tensor
    ) -> torch.Tensor:
        """Single-token queries of many sequences, batched: GQA groups act as query rows."""
        d = self.dims
        assert batch.decode_rows is not None and batch.decode_gather is not None
        bd = batch.decode_rows.shape[0]
        groups = d.num_heads // d.num_kv_heads
        qd = q[batch.decode_rows].view(bd, d.num_kv_heads, groups, d.head_dim)
        keys = k_cache[batch.decode_gather].transpose(1, 2)  # [Bd, Hkv, L, D]
        values = v_cache[batch.decode_gather].transpose(1, 2)
        o = F.scaled_dot_product_attention(qd, keys, values, attn_mask=batch.decode_mask)
        return o.reshape(bd, d.num_heads, d.head_dim)

    def _prefill_attention(
        self,
        q: torch.Tensor,  # [n, H, D]
        k: torch.Tensor,  # [n, Hkv, D]
        v: torch.Tensor,
        span: PrefillSpan,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
    ) -> torch.Tensor:
        """Causal attention of a prompt chunk over its cached prefix and itself."""
        mask: torch.Tensor | None = None
        if span.gather is not None:
            k, v = k_cache[span.gather], v_cache[span.gather]
            total = span.start_pos + span.num_new
            qpos = torch.arange(span.start_pos, total, device=q.device)
            mask = torch.arange(total, device=q.device)[None, :] <= qpos[:, None]
        o = F.scaled_dot_product_attention(
            q.transpose(0, 1),
            k.transpose(0, 1),
            v.transpose(0, 1),
            attn_mask=mask,
            is_causal=mask is None,
            enable_gqa=True,
        )
        return o.transpose(0, 1)


class LlamaModel(nn.Module):
    """Embeddings, decoder layers, final norm and LM head."""

    def __init__(self, d: LlamaDims, rope_config: Any) -> None:
        super().__init__()
        self.dims = d
        self.embed = nn.Embedding(d.vocab_size, d.hidden_size)
        self.layers = nn.ModuleList(LlamaLayer(d) for _ in range(d.num_layers))
        self.norm = RMSNorm(d.hidden_size, d.rms_norm_eps)
        self.lm_head = nn.Linear(d.hidden_size, d.vocab_size, bias=False)
        if d.tie_word_embeddings:
            self.lm_head.weight = self.embed.weight
        self.rope_config = rope_config
        inv_freq, scaling = _rope_inv_freq(rope_config, d)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.rope_scaling = scaling

    def rope(
        self, positions: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin [T, D] for token positions, computed in float32 like transformers."""
        freqs = positions[:, None].float() * self.inv_freq.float()[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.rope_scaling).to(dtype), (emb.sin() * self.rope_scaling).to(dtype)

    def forward(
        self,
        input_ids: torch.Tensor,  # [T]
        positions: torch.Tensor,  # [T]
        batch: AttentionBatch,
        kv_cache: torch.Tensor,  # [layers, 2, S, Hkv, D]
    ) -> torch.Tensor:
        """Hidden states [T, hidden] after the final norm; K/V written into the cache."""
        x = self.embed(input_ids)
        cos, sin = self.rope(positions, x.dtype)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, batch, kv_cache[i, 0], kv_cache[i, 1])
        hidden: torch.Tensor = self.norm(x)
        return hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM-head scores [N, vocab] for the rows that sample."""
        scores: torch.Tensor = self.lm_head(hidden)
        return scores

    def load_hf_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Copy weights from a Hugging Face Llama state dict, fusing q/k/v and gate/up."""
        own: dict[str, torch.Tensor] = {
            "embed.weight": sd["model.embed_tokens.weight"],
            "norm.weight": sd["model.norm.weight"],
        }
        if not self.dims.tie_word_embeddings:
            own["lm_head.weight"] = sd["lm_head.weight"]
        for i in range(self.dims.num_layers):
            p, a = f"model.layers.{i}.", f"model.layers.{i}.self_attn."
            m = f"model.layers.{i}.mlp."
            own[f"layers.{i}.qkv.weight"] = torch.cat(
                [sd[a + "q_proj.weight"], sd[a + "k_proj.weight"], sd[a + "v_proj.weight"]]
            )
            if self.dims.attention_bias:
                own[f"layers.{i}.qkv.bias"] = torch.cat(
                    [sd[a + "q_proj.bias"], sd[a + "k_proj.bias"], sd[a + "v_proj.bias"]]
                )
                own[f"layers.{i}.o_proj.bias"] = sd[a + "o_proj.bias"]
            own[f"layers.{i}.o_proj.weight"] = sd[a + "o_proj.weight"]
            own[f"layers.{i}.gate_up.weight"] = torch.cat(
                [sd[m + "gate_proj.weight"], sd[m + "up_proj.weight"]]
            )
            own[f"layers.{i}.down.weight"] = sd[m + "down_proj.weight"]
            if self.dims.mlp_bias:
                own[f"layers.{i}.gate_up.bias"] = torch.cat(
                    [sd[m + "gate_proj.bias"], sd[m + "up_proj.bias"]]
                )
                own[f"layers.{i}.down.bias"] = sd[m + "down_proj.bias"]
            own[f"layers.{i}.input_norm.weight"] = sd[p + "input_layernorm.weight"]
            own[f"layers.{i}.post_norm.weight"] = sd[p + "post_attention_layernorm.weight"]
        if self.dims.tie_word_embeddings:  # re-tie: moving off the meta device unties
            self.lm_head.weight = self.embed.weight
        missing, unexpected = self.load_state_dict(own, strict=False)
        missing = [
            k for k in missing if not (k == "lm_head.weight" and self.dims.tie_word_embeddings)
        ]
        if missing or unexpected:
            raise ValueError(f"weights do not fit the model: missing={missing} extra={unexpected}")
        # RoPE frequencies stay float32 whatever the weights' dtype, as in transformers.
        inv_freq, _ = _rope_inv_freq(self.rope_config, self.dims)
        self.inv_freq = inv_freq.to(self.embed.weight.device)


def _rope_inv_freq(config: Any, d: LlamaDims) -> tuple[torch.Tensor, float]:
    """Inverse frequencies from transformers' own RoPE initialisers (default, llama3, …)."""
    params = getattr(config, "rope_parameters", None) or {}
    rope_type = params.get("rope_type", "default")
    if rope_type == "default":
        base = float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
        dim = d.head_dim
        inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        return inv, 1.0
    inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, None)
    return inv_freq, float(scaling)
