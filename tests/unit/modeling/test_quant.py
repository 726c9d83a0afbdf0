"""Weight-only int8 layers: the kernel computes what the quantized weights say, the error
against float32 is small, and the model-level swap refuses what it cannot run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmeco.errors import ConfigError
from llmeco.modeling.quant import Int8Linear, quantize_int8


def test_int8_linear_matches_its_dequantized_weights() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 96, bias=True)
    q = Int8Linear(linear)
    assert q.weight.dtype == torch.int8 and q.weight.abs().max() <= 127
    x = torch.randn(5, 3, 64)
    dequant = q.weight.float() * q.scales.float()[:, None]
    ref = x.to(torch.bfloat16).float() @ dequant.T + linear.bias.detach()
    got = q(x).float()
    assert got.shape == (5, 3, 96)
    torch.testing.assert_close(got, ref, rtol=2e-2, atol=2e-2)
    # and close to the float32 layer it replaced (quantization error ~1% of the output scale)
    exact = linear(x).detach()
    rel = (got - exact).norm() / exact.norm()
    assert rel < 0.02, rel


def test_quantize_replaces_every_linear_and_needs_bf16() -> None:
    model = nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Sequential(nn.Linear(32, 24), nn.Linear(24, 4))
    )
    with pytest.raises(ConfigError, match="bfloat16"):
        quantize_int8(model)
    model = model.to(torch.bfloat16)
    # the last layer's input width (24) is not one the kernel can run: it stays bfloat16
    assert quantize_int8(model) == 2
    kinds = [type(m).__name__ for m in model.modules() if hasattr(m, "in_features")]
    assert kinds == ["Int8Linear", "Int8Linear", "Linear"]
    assert model(torch.randn(3, 16)).shape == (3, 4)
    with pytest.raises(ConfigError, match="divisible by 16"):
        Int8Linear(nn.Linear(24, 4))
