"""Weight-only int8 quantization of a model's linear layers (``LLMECO_QUANTIZATION=int8``).

Decoding a small model on a CPU is bound by reading the weights: every token reads every
matrix once. Storing them as int8 with one bfloat16 scale per output channel reads a quarter
of float32's bytes, and PyTorch's ``_weight_int8pack_mm`` kernel multiplies bfloat16
activations by them directly (the same kernel torchao's ``int8_weight_only`` uses on CPU;
torchao itself is not a dependency). Activations, norms, attention and the KV cache stay in
bfloat16. Outputs are close to, not token-for-token equal to, the float32 model's: it is an
opt-in trade, like a Q8_0 GGUF in llama.cpp, measured in ``benchmarks/engine.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from llmeco.errors import ConfigError

#: Activation dtype the int8 kernel is fast with on CPU (float32 activations are ~7x slower).
ACTIVATION_DTYPE = torch.bfloat16
#: The kernel reads the reduction dimension in blocks of 16 and crashes the process on any
#: other width (PyTorch 2.13, batch > 1), so narrower or odd layers stay unquantized.
K_MULTIPLE = 16


def quantizable(linear: nn.Linear) -> bool:
    """Whether the int8 kernel can run ``linear`` (its input width is a multiple of 16)."""
    return linear.in_features % K_MULTIPLE == 0


class Int8Linear(nn.Module):
    """A linear layer with symmetric per-output-channel int8 weights and bfloat16 scales."""

    weight: torch.Tensor
    scales: torch.Tensor

    def __init__(self, linear: nn.Linear) -> None:
        """Quantize ``linear``'s weight (rounded to nearest, clipped to ±127).

        Raises:
            ConfigError: the layer's input width is not a multiple of :data:`K_MULTIPLE`.
        """
        super().__init__()
        if not quantizable(linear):
            raise ConfigError(
                f"int8 layers need an input width divisible by {K_MULTIPLE}, "
                f"not {linear.in_features}"
            )
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        w = linear.weight.detach().to(torch.float32)
        scales = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        q = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("weight", q.contiguous())
        self.register_buffer("scales", scales.to(ACTIVATION_DTYPE))
        self.bias = (
            None
            if linear.bias is None
            else nn.Parameter(linear.bias.detach().to(ACTIVATION_DTYPE), requires_grad=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ dequantized(weight).T (+ bias)`` without materializing the dequantized weight."""
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features).to(ACTIVATION_DTYPE)
        y = torch._weight_int8pack_mm(flat, self.weight, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        """Shown by ``print(model)``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_int8(model: nn.Module) -> int:
    """Replace each ``nn.Linear`` of ``model`` the kernel can run (:func:`quantizable`; every
    layer of the Llama shapes we serve) by an :class:`Int8Linear`, in place.

    The model must already be on the CPU in bfloat16. Returns how many layers were replaced.

    Raises:
        ConfigError: this PyTorch build has no int8 weight-only kernel, or the model is not
            a bfloat16 CPU model.
    """
    if not hasattr(torch, "_weight_int8pack_mm"):
        raise ConfigError(
            f"LLMECO_QUANTIZATION=int8 needs torch._weight_int8pack_mm, which torch "
            f"{torch.__version__} lacks; unset it to serve unquantized"
        )
    param = next(model.parameters())
    if param.device.type != "cpu" or param.dtype != ACTIVATION_DTYPE:
        raise ConfigError(
            "LLMECO_QUANTIZATION=int8 runs on the CPU in bfloat16 "
            f"(the model is {param.dtype} on {param.device}); set LLMECO_DTYPE=bfloat16 or auto"
        )
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear) and quantizable(child)
    ]
    for parent, name, child in targets:
        setattr(parent, name, Int8Linear(child))
    return len(targets)
