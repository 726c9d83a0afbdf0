"""Which decoder-only families the engine runs, and how each differs from Llama.

Every supported checkpoint is the same pre-norm transformer (embeddings → N × [attention,
gated MLP] → norm → LM head); the families differ in a handful of switches that are named
here once, read from the transformers config, and obeyed by :mod:`llmeco.modeling.decoder`:

=================  ===========================================================================
Llama / Mistral    the baseline (Mistral: sliding window on every layer when configured)
Qwen2 / Qwen2.5    bias on q/k/v projections
Qwen3              RMSNorm on each query and key head before RoPE
Gemma 2            embeddings × sqrt(hidden), (1 + w) RMSNorm, norms before *and* after attention
                   and MLP, tanh-GELU, ``query_pre_attn_scalar``, attention and final logit
                   soft-capping, sliding-window layers alternating with global ones
Gemma 3 (text)     Gemma 2 without soft-capping, plus q/k norm and a local RoPE base for
                   sliding layers
Phi-3              q/k/v and gate/up stored fused in the checkpoint; partial rotary
Mixtral            every MLP is a top-k mixture of experts (softmax, renormalised top-k)
Qwen2-MoE / Qwen3  mixture of experts (optional top-k renormalisation), Qwen2-MoE with a
-MoE               sigmoid-gated shared expert, dense MLP on ``mlp_only_layers``
=================  ===========================================================================

An architecture not in :data:`SUPPORTED` gets a :class:`~llmeco.errors.ConfigError` naming it
and listing the supported ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmeco.errors import ConfigError

#: ``config.model_type`` → family name used in :class:`FamilySpec`.
SUPPORTED: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "smollm": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma2": "gemma2",
    "gemma3_text": "gemma3",
    "phi3": "phi3",
    "mixtral": "mixtral",
    "qwen2_moe": "qwen2_moe",
    "qwen3_moe": "qwen3_moe",
}

#: Layer kind for ``config.layer_types`` entries that attend within a window.
SLIDING = "sliding_attention"


@dataclass(frozen=True)
class ModelDims:
    """The architecture numbers the forward pass and the runner need."""

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
    def from_config(cls, config: Any) -> ModelDims:
        """Read dims from a transformers config of any supported family."""
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


@dataclass(frozen=True)
class MoeSpec:
    """A sparse mixture-of-experts MLP: routing and expert sizes."""

    num_experts: int
    top_k: int
    #: Divide the chosen experts' probabilities by their sum (Mixtral always does).
    norm_topk_prob: bool
    expert_intermediate_size: int
    #: Qwen2-MoE: a dense expert every token goes through, scaled by a sigmoid gate (0: none).
    shared_intermediate_size: int
    #: Layer indices whose MLP is a mixture; the others are dense.
    sparse_layers: frozenset[int]


@dataclass(frozen=True)
class FamilySpec:
    """Everything that distinguishes one family's forward pass from Llama's."""

    family: str
    dims: ModelDims
    #: Bias on the q/k/v projections (Qwen2) and on the output projection.
    qkv_bias: bool
    o_bias: bool
    #: Per-head RMSNorm on queries and keys before RoPE (Qwen3, Gemma 3).
    qk_norm: bool
    #: Gemma's RMSNorm: ``norm(x.float()) * (1 + w)``, cast back after the product.
    gemma_norm: bool
    #: Norms after attention and around the MLP as well as before (Gemma 2/3).
    sandwich_norm: bool
    #: MLP activation: ``"silu"`` or ``"gelu_tanh"``.
    activation: str
    #: Multiply embeddings by this (Gemma: sqrt(hidden)); None for no scaling.
    embed_scale: float | None
    #: Softmax scale of attention scores (1/sqrt(head_dim) unless query_pre_attn_scalar).
    attn_scale: float
    #: ``cap * tanh(x / cap)`` on attention scores / final logits (Gemma 2); None for off.
    attn_softcap: float | None
    final_softcap: float | None
    #: Per layer: attention window in tokens (None = attend to the whole context).
    windows: tuple[int | None, ...]
    #: Per layer: which RoPE table it uses (a key of ``config.rope_parameters`` or "default").
    rope_keys: tuple[str, ...]
    #: Fraction of each head's dimensions that RoPE rotates (Phi-3 variants).
    partial_rotary_factor: float
    #: Checkpoint stores ``qkv_proj`` and ``gate_up_proj`` fused (Phi-3).
    fused_checkpoint: bool
    moe: MoeSpec | None

    @property
    def rotary_dim(self) -> int:
        """Leading dimensions of each head that RoPE rotates."""
        return int(self.dims.head_dim * self.partial_rotary_factor)


def supported_list() -> str:
    """The supported ``model_type`` values, for error messages and docs."""
    return ", ".join(sorted(SUPPORTED))


def family_spec(config: Any) -> FamilySpec:
    """The :class:`FamilySpec` for a transformers config.

    Raises:
        ConfigError: the architecture is not one the engine implements, or the config asks
            for a variant of a supported family that it does not (named in the message).
    """
    model_type = str(getattr(config, "model_type", "llama"))
    family = SUPPORTED.get(model_type)
    if family is None:
        arch = ", ".join(getattr(config, "architectures", None) or []) or "unknown"
        raise ConfigError(
            f"model type {model_type!r} (architectures: {arch}) is not supported by the "
            f"native engine; supported model types: {supported_list()}"
        )
    dims = ModelDims.from_config(config)
    gemma = family in {"gemma2", "gemma3"}
    activation = _activation(config, model_type)
    qkv_bias = dims.attention_bias
    if family == "qwen2":
        qkv_bias = True
    elif family == "qwen2_moe":
        qkv_bias = bool(getattr(config, "qkv_bias", True))
    o_bias = dims.attention_bias and family not in {"qwen2", "qwen2_moe"}
    scalar = getattr(config, "query_pre_attn_scalar", None) if gemma else None
    attn_scale = float(scalar if scalar is not None else dims.head_dim) ** -0.5
    return FamilySpec(
        family=family,
        dims=dims,
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        qk_norm=family in {"qwen3", "gemma3", "qwen3_moe"},
        gemma_norm=gemma,
        sandwich_norm=gemma,
        activation=activation,
        embed_scale=float(dims.hidden_size**0.5) if gemma else None,
        attn_scale=attn_scale,
        attn_softcap=_cap(getattr(config, "attn_logit_softcapping", None)),
        final_softcap=_cap(getattr(config, "final_logit_softcapping", None)),
        windows=_windows(config, dims.num_layers),
        rope_keys=_rope_keys(config, dims.num_layers),
        partial_rotary_factor=_partial_rotary(config),
        fused_checkpoint=family == "phi3",
        moe=_moe(config, family, dims.num_layers),
    )


def _activation(config: Any, model_type: str) -> str:
    """Map the config's activation name to one the decoder implements."""
    name = getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", "silu")
    if name == "silu":
        return "silu"
    if name in {"gelu_pytorch_tanh", "gelu_tanh"}:
        return "gelu_tanh"
    raise ConfigError(
        f"model type {model_type!r} with activation {name!r} is not supported by the native "
        "engine (silu and gelu_pytorch_tanh are)"
    )


def _cap(value: object) -> float | None:
    """A soft-capping value, or None when the config disables it (None or 0)."""
    return float(value) if isinstance(value, int | float) and value else None


def _windows(config: Any, num_layers: int) -> tuple[int | None, ...]:
    """Per-layer attention windows, as transformers' masks apply them.

    With ``layer_types`` (Qwen2/3, Gemma, Qwen2-MoE) only ``sliding_attention`` layers use
    ``config.sliding_window``; without (Mistral, Mixtral, Phi-3, Qwen3-MoE) a configured
    window applies to every layer.
    """
    window = getattr(config, "sliding_window", None)
    size = int(window) if isinstance(window, int) and window > 0 else None
    types = getattr(config, "layer_types", None)
    if types is None:
        return (size,) * num_layers
    return tuple(size if types[i] == SLIDING else None for i in range(num_layers))


def _rope_keys(config: Any, num_layers: int) -> tuple[str, ...]:
    """Which RoPE table each layer uses: per layer type when ``rope_parameters`` is keyed by
    layer type (Gemma 3's local and global bases), else one shared table."""
    params = getattr(config, "rope_parameters", None) or {}
    types = getattr(config, "layer_types", None)
    if types is not None and all(t in params for t in set(types[:num_layers])):
        return tuple(str(types[i]) for i in range(num_layers))
    return ("default",) * num_layers


def _partial_rotary(config: Any) -> float:
    """``partial_rotary_factor`` from the config or its rope parameters (1.0 when absent)."""
    params = getattr(config, "rope_parameters", None) or {}
    value = params.get("partial_rotary_factor") if isinstance(params, dict) else None
    if value is None:
        value = getattr(config, "partial_rotary_factor", None)
    return float(value) if value is not None else 1.0


def _moe(config: Any, family: str, num_layers: int) -> MoeSpec | None:
    """The mixture-of-experts layout of Mixtral / Qwen2-MoE / Qwen3-MoE configs."""
    if family == "mixtral":
        return MoeSpec(
            num_experts=int(config.num_local_experts),
            top_k=int(config.num_experts_per_tok),
            norm_topk_prob=True,
            expert_intermediate_size=int(config.intermediate_size),
            shared_intermediate_size=0,
            sparse_layers=frozenset(range(num_layers)),
        )
    if family not in {"qwen2_moe", "qwen3_moe"}:
        return None
    experts = int(config.num_experts)
    step = int(getattr(config, "decoder_sparse_step", 1) or 1)
    dense = set(getattr(config, "mlp_only_layers", None) or [])
    sparse = frozenset(
        i for i in range(num_layers) if i not in dense and experts > 0 and (i + 1) % step == 0
    )
    shared = int(getattr(config, "shared_expert_intermediate_size", 0) or 0)
    return MoeSpec(
        num_experts=experts,
        top_k=int(config.num_experts_per_tok),
        norm_topk_prob=bool(getattr(config, "norm_topk_prob", False)),
        expert_intermediate_size=int(config.moe_intermediate_size),
        shared_intermediate_size=shared if family == "qwen2_moe" else 0,
        sparse_layers=sparse,
    )
