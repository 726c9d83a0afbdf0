"""Checkpoints in safetensors + JSON only (never pickle): weights, optimizer, scheduler,
RNG and data position — everything ``--resume`` needs to continue exactly.

Layout of ``OUTPUT/checkpoints/step-000123/`` (written to a temp folder, then renamed)::

    model.safetensors   weights (shared/tied tensors stored once)
    state.safetensors   optimizer moments and RNG states, flattened to named tensors
    state.json          step, optimizer param groups, scheduler, python RNG, data position,
                        the config fingerprint
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from llmeco.errors import ConfigError

CHECKPOINTS = "checkpoints"


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state_dict → (named tensors, JSON part with tensor slots referenced)."""
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for index, slots in state["state"].items():
        meta: dict[str, Any] = {}
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                key = f"optim.{index}.{name}"
                tensors[key] = value.detach().contiguous().cpu()
                meta[name] = {"tensor": key}
            else:
                meta[name] = value
        per_param[str(index)] = meta
    return tensors, {"state": per_param, "param_groups": state["param_groups"]}


def _unflatten_optimizer(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for index, slots in meta["state"].items():
        state[int(index)] = {
            name: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
            for name, v in slots.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    output_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    data_state: dict[str, int],
    extra: dict[str, Any],
) -> Path:
    """Write the checkpoint of ``step`` and return its folder."""
    root = output_dir / CHECKPOINTS
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    tensors, optim_meta = _flatten_optimizer(optimizer.state_dict())
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_file(tensors, str(tmp / "state.safetensors"))
    meta = {
        "step": step,
        "optimizer": optim_meta,
        "scheduler": scheduler.state_dict(),
        "python_rng": random.getstate(),
        "data": data_state,
        **extra,
    }
    (tmp / "state.json").write_text(json.dumps(meta))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint folder under ``output_dir``, if any."""
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return None
    steps = sorted(p for p in root.glob("step-*") if (p / "state.json").is_file())
    return steps[-1] if steps else None


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG from ``path``; return ``state.json``.

    Raises:
        ConfigError: the checkpoint does not fit the model (different architecture).
    """
    try:
        load_model(model, str(path / "model.safetensors"), strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{path}: checkpoint does not match this model ({exc})") from exc
    meta: dict[str, Any] = json.loads((path / "state.json").read_text())
    device = next(model.parameters()).device
    tensors = load_file(str(path / "state.safetensors"), device=str(device))
    optimizer.load_state_dict(_unflatten_optimizer(meta["optimizer"], tensors))
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.cpu"].cpu())
    cuda = [tensors[k].cpu() for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    return meta
