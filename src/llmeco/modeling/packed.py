"""Float32 linear layers on the CPU through oneDNN's packed-weight kernel.

``nn.Linear`` runs float32 on the CPU through a GEMV for one row and MKL's sgemm for more,
and the few rows of a decode or speculative-verify step (2–16) are its worst case: each
costs about as much as one row again. oneDNN (PyTorch's ``mkldnn``) can reorder a weight
once into its blocked layout and then multiply against it; this is the kernel PyTorch's own
compiler (Inductor, with weight freezing) emits for CPU linears, called here directly so the
eager engine gets it without a compile step. The two ops are internal to PyTorch, which is
why the layer is used only where they exist (:func:`packing_available`) and the pinned
PyTorch is tested with it.

All 30 layers of SmolLM2-135M's linears, float32, weights out of cache, 2 AVX2 cores
(milliseconds per step, ``nn.Linear`` → packed): 1 row 44 → 23, 6 rows 50 → 20, 16 rows
61 → 30, 64 rows 143 → 85, 512 rows 765 → 581. Outputs differ from ``nn.Linear``'s by float
rounding (max |diff| about 1e-4 on these shapes), as any other GEMM kernel's would.
"""

from __future__ import annotations

import torch
from torch import nn

#: Rows the packed layout is chosen for; 8 served every step size from 1 to 512 rows best
#: of the hints measured (1, 8, 64).
BATCH_HINT = 8


def packing_available() -> bool:
    """Whether this PyTorch build has oneDNN and the packed-linear ops."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


class PackedLinear(nn.Module):
    """An inference-only ``nn.Linear`` whose float32 weight is kept in oneDNN's layout."""

    def __init__(self, linear: nn.Linear, batch_hint: int = BATCH_HINT) -> None:
        """Pack ``linear``'s weight (a float32 CPU ``nn.Linear``); the original is not kept."""
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint)
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ weight.T + bias`` for ``x`` [..., in_features]."""
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x.contiguous(), self.packed, self.bias, "none", [], ""
        )
        return out

    def extra_repr(self) -> str:
        """Shown by ``print(model)``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, packed"


def pack_linears(model: nn.Module) -> int:
    """Replace every float32 CPU ``nn.Linear`` of ``model`` by a :class:`PackedLinear`, in
    place, for inference; returns how many were replaced (0 when
    :func:`packing_available` is false). A weight tied to the embedding is copied, so the
    embedding keeps working."""
    if not packing_available():
        return 0
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear)
        and child.weight.dtype == torch.float32
        and child.weight.device.type == "cpu"
    ]
    for parent, name, child in targets:
        setattr(parent, name, PackedLinear(child))
    return len(targets)
