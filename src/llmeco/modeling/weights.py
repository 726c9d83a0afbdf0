"""Hugging Face checkpoint names → the engine decoder's parameter names, per family.

The decoder keeps q/k/v in one matrix and gate/up in another (one matmul each per layer);
checkpoints of most families store them separately and are concatenated here, while Phi-3
stores them already fused in the same order and is copied as is. Mixture-of-experts weights
are read in both on-disk layouts: per-expert matrices (``experts.N.w1`` in Mixtral,
``experts.N.gate_proj`` in Qwen-MoE, as published checkpoints and ``save_pretrained`` store
them) and the stacked ``experts.gate_up_proj`` / ``experts.down_proj`` tensors.
"""

from __future__ import annotations

import torch

from llmeco.modeling.families import FamilySpec


def own_state_dict(spec: FamilySpec, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The decoder's state dict built from checkpoint tensors ``sd``.

    Raises:
        ValueError: a tensor the family needs is not in the checkpoint (named).
    """
    try:
        return _map(spec, sd)
    except KeyError as exc:
        raise ValueError(
            f"the {spec.family} checkpoint has no tensor {exc.args[0]!r}; is config.json from "
            "the same model as the weights?"
        ) from None


def _map(spec: FamilySpec, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    d = spec.dims
    own: dict[str, torch.Tensor] = {
        "embed.weight": sd["model.embed_tokens.weight"],
        "norm.weight": sd["model.norm.weight"],
    }
    if not d.tie_word_embeddings:
        own["lm_head.weight"] = sd["lm_head.weight"]
    for i in range(d.num_layers):
        p, o = f"model.layers.{i}.", f"layers.{i}."
        own.update(_attention(spec, sd, p + "self_attn.", o))
        own[o + "input_norm.weight"] = sd[p + "input_layernorm.weight"]
        own[o + "post_norm.weight"] = sd[p + "post_attention_layernorm.weight"]
        if spec.sandwich_norm:
            own[o + "pre_ff_norm.weight"] = sd[p + "pre_feedforward_layernorm.weight"]
            own[o + "post_ff_norm.weight"] = sd[p + "post_feedforward_layernorm.weight"]
        if spec.moe is not None and i in spec.moe.sparse_layers:
            own.update(_moe(spec, sd, p, o + "mlp."))
        else:
            own.update(_dense_mlp(spec, sd, p + "mlp.", o + "mlp."))
    return own


def _attention(
    spec: FamilySpec, sd: dict[str, torch.Tensor], a: str, o: str
) -> dict[str, torch.Tensor]:
    """q/k/v (fused), output projection and q/k norms of one layer."""
    out: dict[str, torch.Tensor] = {o + "o_proj.weight": sd[a + "o_proj.weight"]}
    if spec.fused_checkpoint:
        out[o + "qkv.weight"] = sd[a + "qkv_proj.weight"]
        if spec.qkv_bias:
            out[o + "qkv.bias"] = sd[a + "qkv_proj.bias"]
    else:
        out[o + "qkv.weight"] = torch.cat(
            [sd[a + "q_proj.weight"], sd[a + "k_proj.weight"], sd[a + "v_proj.weight"]]
        )
        if spec.qkv_bias:
            out[o + "qkv.bias"] = torch.cat(
                [sd[a + "q_proj.bias"], sd[a + "k_proj.bias"], sd[a + "v_proj.bias"]]
            )
    if spec.o_bias:
        out[o + "o_proj.bias"] = sd[a + "o_proj.bias"]
    if spec.qk_norm:
        out[o + "q_norm.weight"] = sd[a + "q_norm.weight"]
        out[o + "k_norm.weight"] = sd[a + "k_norm.weight"]
    return out


def _dense_mlp(
    spec: FamilySpec, sd: dict[str, torch.Tensor], m: str, o: str
) -> dict[str, torch.Tensor]:
    """A gated MLP: ``gate_up`` is [gate; up] as Phi-3 stores it fused."""
    out: dict[str, torch.Tensor] = {o + "down.weight": sd[m + "down_proj.weight"]}
    if spec.fused_checkpoint:
        out[o + "gate_up.weight"] = sd[m + "gate_up_proj.weight"]
    else:
        out[o + "gate_up.weight"] = torch.cat(
            [sd[m + "gate_proj.weight"], sd[m + "up_proj.weight"]]
        )
    if spec.dims.mlp_bias:
        out[o + "gate_up.bias"] = torch.cat([sd[m + "gate_proj.bias"], sd[m + "up_proj.bias"]])
        out[o + "down.bias"] = sd[m + "down_proj.bias"]
    return out


def _moe(spec: FamilySpec, sd: dict[str, torch.Tensor], p: str, o: str) -> dict[str, torch.Tensor]:
    """Router, experts and (Qwen2-MoE) shared expert of one sparse layer."""
    assert spec.moe is not None
    mixtral = spec.family == "mixtral"
    m = p + (
        "block_sparse_moe." if mixtral and p + "block_sparse_moe.gate.weight" in sd else "mlp."
    )
    gate_key = m + "gate.weight"
    out: dict[str, torch.Tensor] = {o + "router": sd[gate_key]}
    stacked = m + "experts.gate_up_proj"
    for e in range(spec.moe.num_experts):
        x, ex = f"{m}experts.{e}.", f"{o}experts.{e}."
        if stacked in sd:
            out[ex + "gate_up.weight"] = sd[stacked][e]
            out[ex + "down.weight"] = sd[m + "experts.down_proj"][e]
        elif mixtral:
            out[ex + "gate_up.weight"] = torch.cat([sd[x + "w1.weight"], sd[x + "w3.weight"]])
            out[ex + "down.weight"] = sd[x + "w2.weight"]
        else:
            out[ex + "gate_up.weight"] = torch.cat(
                [sd[x + "gate_proj.weight"], sd[x + "up_proj.weight"]]
            )
            out[ex + "down.weight"] = sd[x + "down_proj.weight"]
    if spec.moe.shared_intermediate_size:
        s = m + "shared_expert."
        out[o + "shared.gate_up.weight"] = torch.cat(
            [sd[s + "gate_proj.weight"], sd[s + "up_proj.weight"]]
        )
        out[o + "shared.down.weight"] = sd[s + "down_proj.weight"]
        out[o + "shared_gate"] = sd[m + "shared_expert_gate.weight"]
    return out
