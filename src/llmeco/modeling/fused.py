"""The decoder layers of an all-decode step in one C++ call (``LLMECO_FUSED_DECODE``).

Why: decoding a small model on a CPU is bound by overhead, not arithmetic. A step of
SmolLM2-135M is ~1,000 PyTorch operators from Python (30 layers of norm, projections, RoPE,
cache writes, attention, MLP), each paying Python argument parsing and tensor wrapping on top
of its dispatch; with int4 weights the matrix products are under half of the step. The loop
in ``csrc/fused_decode.cpp`` makes the same ATen calls, in the same order with the same
arguments, from C++, so the outputs are bit-identical to the Python layers (which stay the
reference and serve every step that has a prefill in it) and the step costs what its
operators cost.

The extension is compiled once per source and PyTorch version by
``torch.utils.cpp_extension`` (gcc or clang, and ninja, from the lock file) into
``LLMECO_BUILD_CACHE``; a later start loads the built module in well under a second. Where
it cannot be built (no compiler, say) or the model is not Llama-shaped (soft-capping,
q/k norms, sandwich norms, sliding windows, partial RoPE, mixtures of experts, unknown
linear layers), the engine logs why and keeps the Python layers. Float32 (plain or
oneDNN-packed), int8 and int4 linear layers are covered.

Why not ``torch.compile``: measured here, compiling the decode step took over 15 minutes for
the whole model, and per-layer graphs ran no faster than eager, their guards costing what
the fused element-wise kernels saved.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from llmeco.errors import ConfigError
from llmeco.modeling.packed import PackedLinear
from llmeco.modeling.quant import Int4Linear, Int8Linear

if TYPE_CHECKING:
    from llmeco.modeling.attention import AttentionBatch, WindowMasks
    from llmeco.modeling.decoder import DecoderModel

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "fused_decode.cpp"
#: Linear-layer kinds, as the C++ loop numbers them.
KIND_FLOAT, KIND_INT8, KIND_INT4, KIND_PACKED = 0, 1, 2, 3
#: A layer's linear layers, in the order the loop takes their tensors.
LINEARS = ("qkv", "o_proj", "mlp.gate_up", "mlp.down")

_lock = threading.Lock()
_loaded: dict[Path, Any] = {}


def unsupported_reason(model: DecoderModel) -> str | None:
    """Why ``model``'s decode steps cannot go through the fused loop, or None when they can."""
    spec = model.spec
    checks = [
        (spec.qk_norm, "q/k norms"),
        (spec.gemma_norm or spec.sandwich_norm, "Gemma norms"),
        (spec.activation != "silu", f"the {spec.activation} activation"),
        (spec.attn_softcap is not None, "attention soft-capping"),
        (any(w is not None for w in spec.windows), "sliding-window layers"),
        (len(set(spec.rope_keys)) != 1, "per-layer RoPE tables"),
        (spec.rotary_dim != spec.dims.head_dim, "partial RoPE"),
        (spec.moe is not None, "mixture-of-experts layers"),
    ]
    for failed, what in checks:
        if failed:
            return f"{spec.family} has {what}"
    param = next(model.parameters())
    if param.device.type != "cpu":
        return f"the model is on {param.device.type}, the fused loop is for CPUs"
    for i, layer in enumerate(model.layers):
        for name in LINEARS:
            linear = layer.get_submodule(name)
            if _kind(linear) is None:
                return f"layer {i} {name} is a {type(linear).__name__}"
    group_sizes = _int4_group_sizes(model)
    if len(group_sizes) > 1:
        return f"int4 layers of several group sizes {sorted(group_sizes)}"
    return None


def _int4_group_sizes(model: DecoderModel) -> set[int]:
    """Group sizes of the int4 linears the loop runs (the LM head is not among them)."""
    return {
        linear.group_size
        for layer in model.layers
        for name in LINEARS
        if isinstance(linear := layer.get_submodule(name), Int4Linear)
    }


def _kind(linear: nn.Module) -> int | None:
    if isinstance(linear, Int4Linear):
        return KIND_INT4
    if isinstance(linear, Int8Linear):
        return KIND_INT8
    if isinstance(linear, PackedLinear):
        return KIND_PACKED
    if type(linear) is nn.Linear:
        return KIND_FLOAT
    return None


def _parameter(module: nn.Module, name: str) -> torch.Tensor | None:
    value = getattr(module, name, None)
    return value.detach() if isinstance(value, torch.Tensor) else None


def _linear_tensors(linear: nn.Module) -> list[torch.Tensor | None]:
    """(weight, scales, bias) as the C++ loop takes them."""
    scales = "scales_and_zeros" if isinstance(linear, Int4Linear) else "scales"
    weight = "packed" if isinstance(linear, PackedLinear) else "weight"
    return [
        _parameter(linear, weight),
        _parameter(linear, scales),
        _parameter(linear, "bias"),
    ]


def load_extension(cache_dir: Path) -> Any:
    """The compiled fused-decode module, built into ``cache_dir`` on first use (a minute or
    so) and loaded from there afterwards; one build per source and PyTorch version.

    Raises:
        ConfigError: the extension could not be built or loaded (the message says why).
    """
    digest = hashlib.sha256(SOURCE.read_bytes() + torch.__version__.encode()).hexdigest()[:16]
    build_dir = cache_dir / "extensions" / f"fused_decode-{digest}"
    with _lock:
        if build_dir in _loaded:
            return _loaded[build_dir]
        from torch.utils import cpp_extension

        _put_ninja_on_path()
        build_dir.mkdir(parents=True, exist_ok=True)
        log.info("loading the fused CPU decode loop", extra={"build_dir": str(build_dir)})
        try:
            module = cpp_extension.load(
                name=f"llmeco_fused_decode_{digest}",
                sources=[str(SOURCE)],
                extra_cflags=["-O2"],
                build_directory=str(build_dir),
                verbose=False,
            )
        except (RuntimeError, OSError, ImportError, SystemExit) as exc:
            raise ConfigError(f"could not build the fused CPU decode loop: {exc}") from exc
        _loaded[build_dir] = module
        return module


def _put_ninja_on_path() -> None:
    """torch runs ``ninja`` from PATH; the locked ``ninja`` wheel's binary sits in the
    environment's bin directory, which is not on PATH when the environment is not activated
    (``.venv/bin/llmeco serve``)."""
    try:
        import ninja
    except ImportError:
        return
    path = os.environ.get("PATH", "")
    if ninja.BIN_DIR not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, path])


@dataclass
class FusedDecode:
    """A model's all-decode steps through the compiled loop (see the module docstring)."""

    module: Any
    weights: list[torch.Tensor | None]
    kinds: list[int]
    group_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    eps: float
    scale: float

    def __call__(
        self,
        x: torch.Tensor,  # [B, hidden]
        cos: torch.Tensor,  # [B, 1, D]
        signed_sin: torch.Tensor,  # [B, 1, D]
        batch: AttentionBatch,
        masks: WindowMasks,
        kv_cache: torch.Tensor,  # [layers, 2, S, Hkv, D]
    ) -> torch.Tensor:
        """Hidden states [B, hidden] after the last layer; K/V written into the cache."""
        assert batch.decode_gather is not None and masks.decode_bias is not None
        out: torch.Tensor = self.module.decode_layers(
            x,
            cos,
            signed_sin,
            batch.slot_mapping,
            batch.decode_gather,
            masks.decode_bias,
            kv_cache,
            self.weights,
            self.kinds,
            self.group_size,
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
            self.eps,
            self.scale,
        )
        return out


def fuse_decode(model: DecoderModel, cache_dir: Path) -> bool:
    """Route ``model``'s all-decode steps through the compiled loop when it supports the
    model and can be built; returns whether it does (the reason is logged when not)."""
    reason = unsupported_reason(model)
    if reason is None:
        try:
            module = load_extension(cache_dir)
        except ConfigError as exc:
            reason = str(exc)
    if reason is not None:
        log.info("decode steps stay in Python", extra={"reason": reason})
        return False
    weights: list[torch.Tensor | None] = []
    kinds: list[int] = []
    for layer in model.layers:
        for name in ("input_norm", *LINEARS[:2], "post_norm", *LINEARS[2:]):
            part = layer.get_submodule(name)
            if name.endswith("norm"):
                weights.append(_parameter(part, "weight"))
            else:
                weights += _linear_tensors(part)
                kinds.append(_kind(part) or KIND_FLOAT)
    group_sizes = _int4_group_sizes(model)
    d = model.dims
    model.fused_decode = FusedDecode(
        module=module,
        weights=weights,
        kinds=kinds,
        group_size=group_sizes.pop() if group_sizes else 0,
        num_heads=d.num_heads,
        num_kv_heads=d.num_kv_heads,
        head_dim=d.head_dim,
        eps=model.dims.rms_norm_eps,
        scale=model.spec.attn_scale,
    )
    return True
