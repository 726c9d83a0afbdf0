"""The output of a run: a Hugging Face model directory plus ``training.json``.

``llmeco generate --model DIR``, the server and the registry read it as is. A LoRA run also
keeps its adapter alone in ``DIR/adapter`` (mergeable again with ``llmeco train merge``),
while ``DIR`` itself holds the merged model so it serves like any other.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import torch

from llmeco import __version__
from llmeco.data.pipeline import file_sha256
from llmeco.training.config import TrainConfig
from llmeco.training.setup import RunParts

TRAINING_RECORD = "training.json"
ADAPTER_DIR = "adapter"


@functools.cache
def code_version() -> dict[str, Any]:
    """llmeco's version and, when it runs from a git checkout, the commit and dirtiness."""
    here = Path(__file__).resolve().parent
    info: dict[str, Any] = {"llmeco": __version__, "git_sha": None, "git_dirty": None}
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return info
    info.update(git_sha=sha or None, git_dirty=bool(dirty))
    return info


def data_fingerprint(config: TrainConfig) -> dict[str, str | None]:
    """sha256 of the dataset's manifest, or of the data file when the run trained on one
    (``data_sha256``), and of the validation set when separate."""
    dataset = Path(config.data.dataset)
    if dataset.is_file():
        out: dict[str, str | None] = {"data_sha256": file_sha256(dataset)}
    else:
        manifest = dataset / "manifest.json"
        out = {"data_manifest_sha256": file_sha256(manifest) if manifest.is_file() else None}
    if config.data.validation is not None:
        path = Path(config.data.validation)
        target = path / "manifest.json" if path.is_dir() else path
        out["validation_sha256"] = file_sha256(target) if target.is_file() else None
    return out


def write_output(
    config: TrainConfig,
    parts: RunParts,
    weights: dict[str, torch.Tensor] | None,
    metrics: dict[str, Any],
    run_info: dict[str, Any],
) -> Path:
    """Save the servable model, tokenizer, generation config and ``training.json``.

    ``weights`` is the whole-model state gathered from FSDP shards (None: read them from
    ``parts.model``). Runs on the main process only.
    """
    from llmeco.modeling.lora import is_peft_model, save_adapter

    out = config.output_dir
    model = parts.model
    if is_peft_model(model):
        extra = {"labels": parts.labels, "pad_token_id": parts.pad_id} if parts.labels else {}
        save_adapter(
            model,
            out / ADAPTER_DIR,
            parts.origin,
            "classify" if config.task == "classify" else "causal",
            extra,
        )
        model = model.merge_and_unload()
    if config.task != "classify":
        model.generation_config.eos_token_id = sorted(parts.end_ids)
        model.generation_config.pad_token_id = parts.pad_id
    model.config.pad_token_id = parts.pad_id
    if weights is not None:
        model.save_pretrained(str(out), state_dict=_without_tied_copies(model, weights))
    else:
        model.save_pretrained(str(out))
    if config.task == "pretrain" or config.task == "classify":
        parts.tokenizer.model_max_length = config.seq_len
    parts.tokenizer.save_pretrained(str(out))
    record = {
        "task": config.task,
        "config": config.model_dump(mode="json"),
        "config_fingerprint": config.fingerprint(),
        **data_fingerprint(config),
        "code_version": code_version(),
        "torch_version": torch.__version__,
        "origin": parts.origin,
        "parameters": sum(p.numel() for p in model.parameters()),
        "labels": parts.labels or None,
        "adapter": ADAPTER_DIR if (out / ADAPTER_DIR).is_dir() else None,
        **run_info,
        "final_metrics": metrics,
    }
    (out / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return out


def _without_tied_copies(model: Any, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the second name of each tied parameter (gathered shards no longer share memory,
    so ``save_pretrained`` cannot see the tie by itself)."""
    first: dict[int, str] = {}
    out = dict(weights)
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            out.pop(name, None)
        else:
            first[id(param)] = name
    return out
