"""Group-wise int4 layers: the kernel computes what the 4-bit codes say, a Q4_1-style
weight (16 levels per group of 32) survives the round trip, and the model-level swap falls
back to int8 / float for shapes the kernel cannot run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmeco.errors import ConfigError
from llmeco.modeling.quant import Int4Linear, quantize, quantize_int4


def dequantized(q: Int4Linear, linear: nn.Linear) -> torch.Tensor:
    """The weight the int4 layer stands for, rebuilt from the kernel's own outputs."""
    eye = torch.eye(q.in_features, dtype=torch.bfloat16)
    bias = 0 if linear.bias is None else linear.bias.detach().to(torch.bfloat16).float()
    return (q(eye).float() - bias).T


def test_int4_linear_is_close_to_the_float_layer() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 96, bias=True)
    q = Int4Linear(linear)
    x = torch.randn(5, 3, 64)
    got = q(x).float()
    assert got.shape == (5, 3, 96) and got.dtype == torch.float32
    exact = linear(x).detach()
    rel = (got - exact).norm() / exact.norm()
    # 16 levels per group of 32 uniform weights: ~6% error, far from the output's scale
    assert rel < 0.1, rel
    # the kernel agrees with the dequantized weight it was given
    ref = x.to(torch.bfloat16).float() @ dequantized(q, linear).T + linear.bias.detach()
    torch.testing.assert_close(got, ref, rtol=3e-2, atol=3e-2)


def test_weights_on_a_q4_grid_come_back_exactly() -> None:
    torch.manual_seed(1)
    n, k, g = 32, 64, 32
    codes = torch.randint(0, 16, (n, k)).float()
    codes[:, ::g] = 0  # every group spans the full 0..15 range, as Q4_1 blocks do
    codes[:, 1::g] = 15
    scale = torch.rand(n, k // g, 1) * 0.1 + 0.01
    low = torch.randn(n, k // g, 1) * 0.1
    # scales and minimums representable in bfloat16, as a GGUF's fp16 ones nearly are
    scale, low = scale.bfloat16().float(), low.bfloat16().float()
    w = (codes.reshape(n, k // g, g) * scale + low).reshape(n, k)
    linear = nn.Linear(k, n, bias=False)
    with torch.no_grad():
        linear.weight.copy_(w)
    q = Int4Linear(linear, group_size=g)
    err = (dequantized(q, linear) - w).abs().max() / w.abs().max()
    assert err < 1e-2, err  # only bfloat16 rounding of the zero point and outputs


def test_quantize_int4_swaps_what_fits_and_needs_bf16() -> None:
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 48), nn.Linear(48, 8))
    with pytest.raises(ConfigError, match="bfloat16"):
        quantize_int4(model)
    model = model.to(torch.bfloat16)
    assert quantize(model, "int4") == 2
    kinds = [type(m).__name__ for m in model.modules() if hasattr(m, "in_features")]
    # 48 -> 8: output width not a multiple of 16; input 48 is a multiple of 16 so int8 runs it
    assert kinds == ["Int4Linear", "Int4Linear", "Int8Linear"]
    assert model(torch.randn(3, 64)).shape == (3, 8)
    with pytest.raises(ConfigError, match="divisible"):
        Int4Linear(nn.Linear(40, 16))
    with pytest.raises(ConfigError, match="unknown quantization"):
        quantize(model, "int3")


def test_auto_quantizes_on_the_cpu_only() -> None:
    from llmeco.settings import CPU_DEFAULT_QUANTIZATION, Settings

    assert Settings.model_fields["quantization"].default == "auto"
    assert CPU_DEFAULT_QUANTIZATION in ("int8", "int4")
    auto = Settings(quantization="auto")
    assert auto.quantization_for("cpu") == CPU_DEFAULT_QUANTIZATION
    assert auto.quantization_for("cuda") == "none"
    # float32 is one setting away, either of two
    assert Settings(quantization="none").quantization_for("cpu") == "none"
    assert Settings(quantization="auto", dtype="float32").quantization_for("cpu") == "none"
    assert Settings(quantization="int4").quantization_for("cpu") == "int4"
