"""Sparse mixture-of-experts MLP (Mixtral, Qwen2-MoE, Qwen3-MoE) for the engine's decoder.

Routing follows transformers' ``*TopKRouter`` operation for operation: router logits in the
activations' dtype, softmax in float32 over all experts, top-k, optional renormalisation of
the chosen probabilities (always for Mixtral). Each expert then runs once over the tokens
routed to it — a plain loop in expert order, accumulating with ``index_add_`` like the
reference — which on a CPU is as fast as any grouped kernel at the batch sizes served.

Experts are ordinary ``nn.Linear`` pairs so weight quantization applies to them too; the
router and the shared expert's gate are bare parameters, left in full precision so that
quantization never changes which experts a token goes to.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from llmeco.modeling.families import MoeSpec


class GatedMLP(nn.Module):
    """``down(act(gate(x)) * up(x))`` with gate and up fused into one matrix."""

    def __init__(
        self,
        hidden: int,
        intermediate: int,
        act: Callable[[torch.Tensor], torch.Tensor],
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.gate_up = nn.Linear(hidden, 2 * intermediate, bias=bias)
        self.down = nn.Linear(intermediate, hidden, bias=bias)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's output for rows ``x`` [N, hidden]."""
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        out: torch.Tensor = self.down(self.act(gate) * up)
        return out


class SparseMoe(nn.Module):
    """Top-k routed experts, plus Qwen2-MoE's sigmoid-gated shared expert when configured."""

    def __init__(
        self, hidden: int, spec: MoeSpec, act: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        super().__init__()
        self.spec = spec
        self.router = nn.Parameter(torch.empty(spec.num_experts, hidden))
        self.experts = nn.ModuleList(
            GatedMLP(hidden, spec.expert_intermediate_size, act) for _ in range(spec.num_experts)
        )
        self.shared: GatedMLP | None = None
        self.shared_gate: nn.Parameter | None = None
        if spec.shared_intermediate_size:
            self.shared = GatedMLP(hidden, spec.shared_intermediate_size, act)
            self.shared_gate = nn.Parameter(torch.empty(1, hidden))

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights [N, k], expert ids [N, k]) for rows ``x`` [N, hidden]."""
        logits = F.linear(x, self.router)
        probs = torch.softmax(logits.float(), dim=-1)
        top, ids = torch.topk(probs, self.spec.top_k, dim=-1)
        if self.spec.norm_topk_prob:
            top = top / top.sum(dim=-1, keepdim=True)
        return top.to(logits.dtype), ids

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture output [N, hidden] for rows ``x`` [N, hidden]."""
        weights, ids = self.route(x)
        out = torch.zeros_like(x)
        hit = torch.unique(ids).tolist()  # sorted: experts in the reference's order
        for e in hit:
            token_idx, slot = torch.where(ids == e)
            y = self.experts[e](x[token_idx]) * weights[token_idx, slot, None]
            out.index_add_(0, token_idx, y.to(out.dtype))
        if self.shared is not None and self.shared_gate is not None:
            out = out + torch.sigmoid(F.linear(x, self.shared_gate)) * self.shared(x)
        return out
