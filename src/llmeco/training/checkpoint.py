"""Checkpoints in safetensors + JSON only (never pickle): weights, optimizer, scheduler,
RNG and data position — everything ``--resume`` needs to continue exactly.

Layout of ``OUTPUT/checkpoints/step-000123/`` (written to a temp folder, then renamed, so a
kill mid-write leaves the previous checkpoint as the newest complete one)::

    model.safetensors   weights: the whole model, or only the trained tensors (LoRA adapters,
                        a classifier's head) when the rest is a frozen base
    state.safetensors   optimizer moments and RNG states, flattened to named tensors
    state.json          step, optimizer param groups, scheduler, python RNG, data position,
                        early-stopping state, the config fingerprint, tied-weight aliases
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CHECKPOINTS = "checkpoints"
#: How many checkpoints to keep (older ones are deleted after a new one is complete).
KEEP = 2


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
    keyed_by_index = all(isinstance(k, int) for k in state["state"])
    return tensors, {
        "state": per_param,
        "param_groups": state["param_groups"],
        "int_keys": keyed_by_index,
    }


def _unflatten_optimizer(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[Any, dict[str, Any]] = {}
    for index, slots in meta["state"].items():
        key = int(index) if meta.get("int_keys", True) else index
        state[key] = {
            name: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
            for name, v in slots.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


def dedupe_tied(
    weights: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store tensors that share memory (tied embeddings) once: (tensors, alias → stored name)."""
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    by_storage: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for name, tensor in weights.items():
        key = (
            tensor.untyped_storage().data_ptr(),
            int(tensor.storage_offset()),
            tuple(int(d) for d in tensor.shape),
        )
        if tensor.numel() and key in by_storage:
            aliases[name] = by_storage[key]
            continue
        by_storage[key] = name
        out[name] = tensor.detach().contiguous().cpu()
    return out, aliases


def save_checkpoint(
    output_dir: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    scheduler_state: dict[str, Any],
    extra: dict[str, Any],
) -> Path:
    """Write the checkpoint of ``step`` (with this process's RNG state) and return its folder.

    ``extra`` (JSON-able: data position, fingerprint, early-stopping state …) is stored in
    ``state.json`` and returned by :func:`read_checkpoint`.
    """
    root = output_dir / CHECKPOINTS
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors_w, aliases = dedupe_tied(weights)
    save_file(tensors_w, str(tmp / "model.safetensors"))
    tensors, optim_meta = _flatten_optimizer(optimizer_state)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_file(tensors, str(tmp / "state.safetensors"))
    meta = {
        "step": step,
        "optimizer": optim_meta,
        "scheduler": scheduler_state,
        "python_rng": random.getstate(),
        "aliases": aliases,
        **extra,
    }
    (tmp / "state.json").write_text(json.dumps(meta))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    others = sorted(p for p in root.glob("step-*") if p != final)
    for old in others[: max(0, len(others) - (KEEP - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint folder under ``output_dir``, if any."""
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return None
    steps = sorted(p for p in root.glob("step-*") if (p / "state.json").is_file())
    return steps[-1] if steps else None


def read_meta(path: Path) -> dict[str, Any]:
    """``state.json`` of a checkpoint (cheap: check the fingerprint before loading tensors)."""
    meta: dict[str, Any] = json.loads((path / "state.json").read_text())
    return meta


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(weights, optimizer state_dict, meta) of a checkpoint, tensors on CPU.

    Tied weights come back under each of their names.
    """
    meta = read_meta(path)
    weights = load_file(str(path / "model.safetensors"))
    for alias, stored in meta.get("aliases", {}).items():
        weights[alias] = weights[stored]
    tensors = load_file(str(path / "state.safetensors"))
    optimizer = _unflatten_optimizer(meta["optimizer"], tensors)
    meta["_rng"] = {k: v for k, v in tensors.items() if k.startswith("rng.")}
    return weights, optimizer, meta


def restore_rng(meta: dict[str, Any]) -> None:
    """Put torch's and Python's RNGs back where the checkpoint left them."""
    rng = meta["_rng"]
    torch.set_rng_state(rng["rng.cpu"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, internal, gauss = meta["python_rng"]
    random.setstate((version, tuple(internal), gauss))
