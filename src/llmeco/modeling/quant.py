"""Weight-only quantization of a model's linear layers (``LLMECO_QUANTIZATION=int8|int4``).

Decoding a small model on a CPU is bound by reading the weights: every token reads every
matrix once. Storing them as int8 with one bfloat16 scale per output channel reads a quarter
of float32's bytes, and PyTorch's ``_weight_int8pack_mm`` kernel multiplies bfloat16
activations by them directly (the same kernel torchao's ``int8_weight_only`` uses on CPU;
torchao itself is not a dependency). Activations, norms, attention and the KV cache stay in
bfloat16. Outputs are close to, not token-for-token equal to, the float32 model's: it is an
opt-in trade, like a Q8_0 GGUF in llama.cpp, measured in ``benchmarks/engine.py``.

int4 (:class:`Int4Linear`) halves the bytes again: 4-bit codes in groups of
:data:`INT4_GROUP_SIZE` input channels, each group with its own bfloat16 scale and zero
point (asymmetric, like a Q4_1 GGUF: ``w = (q - 8) * scale + zero``), multiplied by
PyTorch's CPU kernel ``_weight_int4pack_mm_for_cpu`` on the layout
``_convert_weight_to_int4pack_for_cpu`` packs (torchao's ``int4_weight_only`` on CPU uses
the same kernel). A Q4_1 GGUF de-quantized to float32 (the packaged default model) groups
its weights exactly so, in 32s along the input dimension, so quantizing it back with groups
of 32 recovers its 4-bit codes: the GGUF's own weights, served without float32 copies.
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


def _activations(x: torch.Tensor) -> torch.Tensor:
    """``x`` as the kernels take it: 2-D rows in :data:`ACTIVATION_DTYPE`. The engine's rows
    already are, and are passed through untouched (two operators fewer per layer call)."""
    if x.dim() == 2 and x.dtype == ACTIVATION_DTYPE:
        return x
    return x.reshape(-1, x.shape[-1]).to(ACTIVATION_DTYPE)


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
        flat = _activations(x)
        y = torch._weight_int8pack_mm(flat, self.weight, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y if flat is x else y.reshape(*x.shape[:-1], self.out_features)

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


#: Input channels sharing one int4 scale and zero point (a Q4_0/Q4_1 GGUF block is 32 wide).
INT4_GROUP_SIZE = 32
#: The int4 packer needs the output width to be a multiple of 16.
INT4_N_MULTIPLE = 16


def int4_quantizable(linear: nn.Linear, group_size: int = INT4_GROUP_SIZE) -> bool:
    """Whether the int4 kernel can run ``linear`` (input width a multiple of the group size,
    output width a multiple of :data:`INT4_N_MULTIPLE`)."""
    return linear.in_features % group_size == 0 and linear.out_features % INT4_N_MULTIPLE == 0


class Int4Linear(nn.Module):
    """A linear layer with group-wise asymmetric 4-bit weights (bfloat16 scales and zeros)."""

    weight: torch.Tensor
    scales_and_zeros: torch.Tensor

    def __init__(self, linear: nn.Linear, group_size: int = INT4_GROUP_SIZE) -> None:
        """Quantize ``linear``'s weight: per group of ``group_size`` inputs, the range
        [min, max] maps onto the 16 codes (round to nearest).

        Raises:
            ConfigError: the layer's shape does not fit the kernel (:func:`int4_quantizable`).
        """
        super().__init__()
        if not int4_quantizable(linear, group_size):
            raise ConfigError(
                f"int4 layers need an input width divisible by {group_size} and an output "
                f"width divisible by {INT4_N_MULTIPLE}, not {linear.in_features} -> "
                f"{linear.out_features}"
            )
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.group_size = group_size
        n, k = self.out_features, self.in_features
        w = linear.weight.detach().to(torch.float32).reshape(n, k // group_size, group_size)
        lo = w.amin(dim=-1, keepdim=True)
        hi = w.amax(dim=-1, keepdim=True)
        scale = ((hi - lo) / 15.0).clamp(min=1e-12)
        codes = torch.round((w - lo) / scale).clamp(0, 15).to(torch.int32).reshape(n, k)
        zero = lo + 8.0 * scale  # the kernel computes (q - 8) * scale + zero
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.contiguous(), 2)
        sz = torch.stack([scale.squeeze(-1), zero.squeeze(-1)], dim=-1)  # [n, groups, 2]
        self.register_buffer("weight", packed)
        self.register_buffer(
            "scales_and_zeros", sz.transpose(0, 1).contiguous().to(ACTIVATION_DTYPE)
        )
        self.bias = (
            None
            if linear.bias is None
            else nn.Parameter(linear.bias.detach().to(ACTIVATION_DTYPE), requires_grad=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ dequantized(weight).T (+ bias)`` without materializing the dequantized weight."""
        flat = _activations(x)
        y: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
            flat, self.weight, self.group_size, self.scales_and_zeros
        )
        if self.bias is not None:
            y = y + self.bias
        return y if flat is x else y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        """Shown by ``print(model)``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"int4 group={self.group_size}"
        )


def quantize_int4(model: nn.Module, group_size: int = INT4_GROUP_SIZE) -> int:
    """Replace each ``nn.Linear`` of ``model`` the int4 kernel can run by an
    :class:`Int4Linear`, in place; layers it cannot run get int8 when that fits.

    The model must already be on the CPU in bfloat16. Returns how many layers were made
    int4.

    Raises:
        ConfigError: this PyTorch build has no CPU int4 kernel, or the model is not a
            bfloat16 CPU model.
    """
    ops = torch.ops.aten
    if not (
        hasattr(ops, "_weight_int4pack_mm_for_cpu")
        and hasattr(ops, "_convert_weight_to_int4pack_for_cpu")
    ):
        raise ConfigError(
            f"LLMECO_QUANTIZATION=int4 needs torch's CPU int4 kernel, which torch "
            f"{torch.__version__} lacks; use int8 or unset it"
        )
    _check_cpu_bfloat16(model, "int4")
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear)
    ]
    made = 0
    for parent, name, child in targets:
        if int4_quantizable(child, group_size):
            setattr(parent, name, Int4Linear(child, group_size))
            made += 1
        elif quantizable(child) and hasattr(torch, "_weight_int8pack_mm"):
            setattr(parent, name, Int8Linear(child))
    return made


#: Values of ``LLMECO_QUANTIZATION`` that quantize weights (they run bfloat16 on the CPU).
QUANTIZED = ("int8", "int4")


def quantize(model: nn.Module, method: str) -> int:
    """Apply ``LLMECO_QUANTIZATION`` ``method`` (``int8``, ``int4``; ``none`` is a no-op) to
    ``model`` in place; returns how many layers were quantized.

    Raises:
        ConfigError: an unknown method, or one this model/PyTorch cannot run.
    """
    if method == "none":
        return 0
    if method == "int8":
        return quantize_int8(model)
    if method == "int4":
        return quantize_int4(model)
    raise ConfigError(f"unknown quantization {method!r}; use none, int8 or int4")


def _check_cpu_bfloat16(model: nn.Module, method: str) -> None:
    param = next(model.parameters())
    if param.device.type != "cpu" or param.dtype != ACTIVATION_DTYPE:
        raise ConfigError(
            f"LLMECO_QUANTIZATION={method} runs on the CPU in bfloat16 "
            f"(the model is {param.dtype} on {param.device}); set LLMECO_DTYPE=bfloat16 or auto"
        )
