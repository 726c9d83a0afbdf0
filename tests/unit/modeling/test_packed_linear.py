"""oneDNN packed linears: the same outputs as nn.Linear up to float rounding, in place of
every float32 CPU linear, with a tied embedding left intact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmeco.modeling.packed import PackedLinear, pack_linears, packing_available

pytestmark = pytest.mark.skipif(not packing_available(), reason="this PyTorch has no oneDNN")


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("rows", [1, 2, 6, 17, 300])
def test_packed_equals_linear_up_to_rounding(rows: int, bias: bool) -> None:
    torch.manual_seed(rows)
    linear = nn.Linear(96, 200, bias=bias)
    x = torch.randn(rows, 96)
    with torch.inference_mode():
        want = linear(x)
        got = PackedLinear(linear)(x)
    assert got.shape == want.shape == (rows, 200)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_non_contiguous_input_is_read_correctly() -> None:
    linear = nn.Linear(32, 8)
    x = torch.randn(32, 10).t()  # [10, 32], not contiguous
    with torch.inference_mode():
        torch.testing.assert_close(PackedLinear(linear)(x), linear(x), rtol=1e-5, atol=1e-5)


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.proj = nn.Linear(16, 16)
        self.bf16 = nn.Linear(16, 16).to(torch.bfloat16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight


def test_pack_linears_replaces_float32_layers_and_keeps_a_tied_embedding() -> None:
    model = _Tied()
    ids = torch.tensor([3, 7, 11])
    with torch.inference_mode():
        before_embed = model.embed(ids).clone()
        before = model.head(model.proj(before_embed))
        assert pack_linears(model) == 2  # proj and head; the bfloat16 layer stays as it is
        assert isinstance(model.proj, PackedLinear) and isinstance(model.head, PackedLinear)
        assert isinstance(model.bf16, nn.Linear)
        torch.testing.assert_close(model.embed(ids), before_embed)
        torch.testing.assert_close(model.head(model.proj(model.embed(ids))), before)
