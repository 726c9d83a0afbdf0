"""LoRA adapters with peft: attach them for training, save them alone, merge them into a base.

An adapter directory is what peft writes (``adapter_config.json`` and
``adapter_model.safetensors``, never a pickle) plus ``llmeco_adapter.json`` naming the base
it was trained on. :func:`merge_adapter` folds it into the base's weights and writes a plain
Hugging Face model directory that the engine and ``llmeco generate`` load like any other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from rich.console import Console

from llmeco.errors import ConfigError, NotFound, UnsafeFile
from llmeco.settings import Settings

if TYPE_CHECKING:
    from llmeco.modeling.load import RefResolver

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_META = "llmeco_adapter.json"

Kind = Literal["causal", "classify"]


def apply_lora(
    model: Any,
    *,
    r: int,
    alpha: float,
    dropout: float,
    target_modules: Sequence[str],
    kind: Kind,
) -> Any:
    """Wrap ``model`` with fresh LoRA adapters; only they (and a classifier's head) train.

    Raises:
        ConfigError: none of ``target_modules`` exists in the model.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if not names & set(target_modules):
        raise ConfigError(
            f"lora.target_modules {list(target_modules)} match no layer of this model "
            f"(it has e.g. {', '.join(sorted(n for n in names if 'proj' in n)[:8]) or 'none'})"
        )
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft annotates int; floats work
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type=TaskType.CAUSAL_LM if kind == "causal" else TaskType.SEQ_CLS,
    )
    return get_peft_model(model, config)


def is_peft_model(model: Any) -> bool:
    """Whether ``model`` carries peft adapters."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def save_adapter(
    model: Any,
    directory: Path,
    base_origin: str,
    kind: Kind,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the adapter alone (safetensors) to ``directory`` and return it.

    ``extra`` is recorded in ``llmeco_adapter.json`` (a classifier's ``labels`` and
    ``pad_token_id``, which merging needs to rebuild the head).
    """
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory), safe_serialization=True)
    meta = {"base": base_origin, "kind": kind, "format": "peft-lora", **(extra or {})}
    (directory / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def adapter_kind(directory: Path) -> Kind:
    """``causal`` or ``classify``: what the adapter in ``directory`` was trained for.

    Raises:
        NotFound: no adapter there. UnsafeFile: only pickled adapter weights.
    """
    if not (directory / ADAPTER_CONFIG).is_file():
        raise NotFound(f"{directory} holds no LoRA adapter ({ADAPTER_CONFIG} missing)")
    if not (directory / ADAPTER_WEIGHTS).is_file():
        if (directory / "adapter_model.bin").is_file():
            raise UnsafeFile(
                f"{directory}: the adapter is pickled (adapter_model.bin); llmeco loads only "
                "safetensors. Re-save it with save_pretrained(safe_serialization=True)."
            )
        raise NotFound(f"{directory} has no {ADAPTER_WEIGHTS}")
    task = json.loads((directory / ADAPTER_CONFIG).read_text()).get("task_type")
    return "classify" if task == "SEQ_CLS" else "causal"


def merge_adapter(
    base: str,
    adapter: Path,
    out: Path,
    settings: Settings,
    *,
    overwrite: bool = False,
    console: Console | None = None,
    resolve_ref: RefResolver | None = None,
) -> Path:
    """Fold ``adapter`` into the model ``base`` (a reference) and save a HF directory to ``out``.

    ``resolve_ref`` resolves a registry reference ``base`` (see
    :func:`llmeco.modeling.load.resolve_model`).

    Raises:
        ConfigError: ``out`` is not empty (without ``overwrite``), or the adapter does not fit
            the base (different architecture or sizes).
        NotFound / UnsafeFile: as :func:`adapter_kind` and
            :func:`llmeco.modeling.load.resolve_model`.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from llmeco.modeling.load import eos_token_ids, load_tokenizer, resolve_model

    kind = adapter_kind(adapter)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} is not empty; pick another --out or pass --overwrite")
    source = resolve_model(base, settings, console, resolve_ref=resolve_ref)
    tokenizer = load_tokenizer(source.path)
    if kind == "classify":
        labels, pad_id = _adapter_labels(adapter)
        model: Any = AutoModelForSequenceClassification.from_pretrained(
            str(source.path),
            local_files_only=True,
            dtype=torch.float32,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)},
        )
        model.config.pad_token_id = pad_id if pad_id is not None else tokenizer.pad_token_id
    else:
        model = AutoModelForCausalLM.from_pretrained(
            str(source.path), local_files_only=True, dtype=torch.float32
        )
    try:
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{adapter} does not fit base {base!r}: {exc}") from exc
    if kind == "causal":
        merged.generation_config.eos_token_id = eos_token_ids(source.path, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    record = {"merged": {"base": source.origin, "adapter": str(adapter.resolve()), "kind": kind}}
    trained = adapter.parent / "training.json"
    if trained.is_file():
        record["training"] = json.loads(trained.read_text())
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return out


def _adapter_labels(adapter: Path) -> tuple[list[str], int | None]:
    """A classifier adapter's label names and pad id, from ``llmeco_adapter.json``."""
    meta_path = adapter / ADAPTER_META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    labels = meta.get("labels")
    if not labels:
        raise ConfigError(f"{adapter}: a classifier adapter needs its labels in {ADAPTER_META}")
    pad = meta.get("pad_token_id")
    return [str(label) for label in labels], int(pad) if pad is not None else None
