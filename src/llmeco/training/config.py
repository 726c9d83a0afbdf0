"""The run configuration: one pydantic model read from YAML plus ``--set key=value`` overrides.

Unknown keys and out-of-range values are rejected with messages that name the key
(``optim.lr: Input should be greater than 0``) so a typo never silently trains with a
default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmeco.errors import ConfigError

Task = Literal["pretrain", "sft", "classify"]

#: Linear layers of a Llama block (what LoRA adapts by default).
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Phi-3 keeps q/k/v and gate/up fused in one layer each; adapted by default too.
FUSED_LINEARS = ("qkv_proj", "gate_up_proj")

#: Llama size presets for pretraining: hidden, layers, heads, kv heads, intermediate.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {
        "hidden_size": 64,
        "num_layers": 2,
        "num_heads": 4,
        "num_kv_heads": 2,
        "intermediate_size": 128,
    },
    "small": {
        "hidden_size": 256,
        "num_layers": 4,
        "num_heads": 4,
        "num_kv_heads": 4,
        "intermediate_size": 688,
    },
    "10m": {
        "hidden_size": 320,
        "num_layers": 6,
        "num_heads": 5,
        "num_kv_heads": 5,
        "intermediate_size": 864,
    },
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """Which model to train."""

    base: str | None = Field(
        default=None,
        description="sft/classify: model reference to start from ('default', a HF dir, a .gguf).",
    )
    tokenizer: str | None = Field(
        default=None, description="pretrain: tokenizer directory (`llmeco tokenizer train`)."
    )
    preset: Literal["tiny", "small", "10m"] | None = Field(
        default="tiny", description="pretrain: size preset; explicit dims below override it."
    )
    hidden_size: int | None = Field(default=None, ge=8, description="Model width.")
    num_layers: int | None = Field(default=None, ge=1, le=128, description="Decoder layers.")
    num_heads: int | None = Field(default=None, ge=1, description="Attention heads.")
    num_kv_heads: int | None = Field(default=None, ge=1, description="Key/value heads (GQA).")
    intermediate_size: int | None = Field(default=None, ge=8, description="MLP width.")
    tie_embeddings: bool = Field(default=True, description="Share input and output embeddings.")
    freeze_base: bool = Field(
        default=False,
        description="classify: train only the classification head (the base stays frozen).",
    )

    def dims(self) -> dict[str, int]:
        """The preset's dims overridden by the explicit ones; checked for consistency."""
        dims = dict(PRESETS[self.preset]) if self.preset else {}
        for key in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size"):
            if getattr(self, key) is not None:
                dims[key] = getattr(self, key)
        missing = {"hidden_size", "num_layers", "num_heads", "intermediate_size"} - set(dims)
        if missing:
            raise ConfigError(f"model: set a preset or all of {', '.join(sorted(missing))}")
        dims.setdefault("num_kv_heads", dims["num_heads"])
        if dims["hidden_size"] % dims["num_heads"]:
            raise ConfigError("model.hidden_size must be a multiple of model.num_heads")
        if dims["num_heads"] % dims["num_kv_heads"]:
            raise ConfigError("model.num_heads must be a multiple of model.num_kv_heads")
        return dims


class DataSpec(_Strict):
    """Where the training data is."""

    dataset: Path = Field(
        description="A folder made by `llmeco data prepare`, or one JSONL/CSV file (such as "
        "`llmeco feedback export` writes) whose records all train; validation then comes "
        "from data.validation only."
    )
    validation: Path | None = Field(
        default=None,
        description="A held-out set used instead of the dataset's validation split: a JSONL/CSV "
        "file or another prepared dataset folder (all its records).",
    )
    max_records: int | None = Field(default=None, ge=1, description="Use only the first N.")
    labels: list[str] | None = Field(
        default=None,
        description="classify: label names in order (default: sorted labels of the train split).",
    )


class LoraSpec(_Strict):
    """LoRA adapters (peft) on the base model's linear layers; only they are trained."""

    r: int = Field(default=16, ge=1, le=1024, description="Rank of the update matrices.")
    alpha: float = Field(default=32.0, gt=0, description="Scaling numerator (update × alpha/r).")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: [*LLAMA_LINEARS, *FUSED_LINEARS],
        min_length=1,
        description="Names of the linear layers to adapt (q/k/v/o and the MLP's three, or "
        "Phi-3's fused qkv_proj and gate_up_proj; names a model lacks are skipped).",
    )


class EarlyStopSpec(_Strict):
    """Stop when the evaluation metric has not improved for ``patience`` evaluations."""

    patience: int = Field(default=0, ge=0, description="Evaluations without improvement; 0 = off.")
    metric: Literal["eval_loss", "eval_accuracy", "eval_macro_f1"] = Field(
        default="eval_loss",
        description="What to watch (loss: lower is better; accuracy/F1: higher). Also what "
        "`llmeco tune` optimises.",
    )
    min_delta: float = Field(default=0.0, ge=0, description="Smallest change that counts.")


class OptimSpec(_Strict):
    """AdamW with linear warmup then cosine decay."""

    lr: float = Field(default=3e-4, gt=0, le=1.0, description="Peak learning rate.")
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="Final lr / peak lr.")
    warmup_steps: int = Field(default=10, ge=0, description="Linear warmup steps.")
    weight_decay: float = Field(default=0.1, ge=0, description="On matrices only.")
    beta1: float = Field(default=0.9, ge=0, lt=1, description="AdamW beta1.")
    beta2: float = Field(default=0.95, ge=0, lt=1, description="AdamW beta2.")
    eps: float = Field(default=1e-8, gt=0, description="AdamW epsilon.")
    grad_clip: float = Field(default=1.0, ge=0, description="Max gradient norm; 0 = off.")


class TrainConfig(_Strict):
    """A whole run. ``batch_size`` is the micro-batch; one step sees batch_size × grad_accum."""

    task: Task = Field(description="pretrain, sft or classify (set by the CLI subcommand).")
    output_dir: Path = Field(description="HF model directory written at the end (+ checkpoints).")
    model: ModelSpec = Field(default_factory=ModelSpec, description="What to train.")
    data: DataSpec = Field(description="What to train on.")
    optim: OptimSpec = Field(default_factory=OptimSpec, description="Optimizer and schedule.")
    lora: LoraSpec | None = Field(
        default=None, description="sft/classify: train LoRA adapters instead of all weights."
    )
    early_stopping: EarlyStopSpec = Field(
        default_factory=EarlyStopSpec, description="Early stopping on an eval metric."
    )
    seed: int = Field(default=0, ge=0, description="Seeds init, shuffling and dropout.")
    max_steps: int = Field(default=100, ge=1, description="Optimizer steps (unless epochs).")
    epochs: float | None = Field(
        default=None,
        gt=0,
        description="Train this many passes over the train split instead of max_steps; with "
        "eval_every: 0 the model is evaluated after every epoch.",
    )
    batch_size: int = Field(default=8, ge=1, description="Sequences per micro-batch.")
    grad_accum: int = Field(default=1, ge=1, description="Micro-batches per optimizer step.")
    seq_len: int = Field(default=256, ge=8, le=131072, description="Block / max sequence length.")
    eval_every: int = Field(default=50, ge=0, description="Evaluate every N steps; 0 = end only.")
    eval_batches: int = Field(
        default=20,
        ge=0,
        description="Validation batches per eval, each of the global batch size (batch_size × "
        "grad_accum × processes), so the evaluated set does not depend on how a step is split; "
        "0 = the whole set (classify always uses the whole set).",
    )
    save_every: int = Field(default=0, ge=0, description="Checkpoint every N steps; 0 = never.")
    log_every: int = Field(default=1, ge=1, description="Log a JSONL line every N steps.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Where to train.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="bf16 autocast (weights and optimizer stay float32) or plain fp32; auto = "
        "bf16 on CUDA, fp32 on CPU.",
    )
    compile: bool = Field(default=False, description="torch.compile the model (slow to start).")
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in backward to save memory."
    )
    distributed: Literal["ddp", "fsdp"] = Field(
        default="ddp",
        description="With several processes (--nproc): replicate (ddp) or shard (fsdp) the model.",
    )
    tensorboard: bool = Field(default=True, description="Write TensorBoard logs under output_dir.")

    @model_validator(mode="after")
    def _check_task(self) -> TrainConfig:
        if self.task in ("sft", "classify") and not self.model.base:
            raise ValueError(f"{self.task} needs model.base (a model reference such as 'default')")
        if self.lora is not None and self.task == "pretrain":
            raise ValueError("lora applies to sft and classify; remove it for pretrain")
        if self.model.freeze_base and self.task != "classify":
            raise ValueError("model.freeze_base applies to classify only")
        if self.model.freeze_base and self.lora is not None:
            raise ValueError("set either model.freeze_base or lora, not both")
        if self.distributed == "fsdp" and self.lora is not None:
            raise ValueError("distributed: fsdp does not support lora; use ddp for LoRA runs")
        if self.task != "classify" and self.early_stopping.metric != "eval_loss":
            raise ValueError(
                f"early_stopping.metric {self.early_stopping.metric} needs task classify; "
                "use eval_loss"
            )
        if self.task == "pretrain" and not (self.model.tokenizer or self.model.base):
            raise ValueError(
                "pretrain needs model.tokenizer (a folder from `llmeco tokenizer train`)"
            )
        return self

    def fingerprint(self) -> str:
        """sha256 of the settings that shape the trajectory (resume refuses a different one)."""
        skip = {"eval_every", "save_every", "log_every", "tensorboard"}
        data = self.model_dump(mode="json", exclude=skip)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(path: Path | None, task: Task, overrides: list[str] | None = None) -> TrainConfig:
    """Read ``path`` (YAML), apply ``key=value`` overrides (values parsed as YAML), validate.

    Raises:
        ConfigError: unreadable YAML, a malformed override, a task mismatch, or validation
            errors (each listed as ``dotted.key: message``).
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read config ({exc})") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the config must be a mapping of keys to values")
        data = loaded or {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. optim.lr=1e-3")
        _set_dotted(data, key.strip(), yaml.safe_load(raw))
    if data.get("task", task) != task:
        raise ConfigError(f"the config says task: {data['task']} but you ran `train {task}`")
    data["task"] = task
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("invalid training config:\n  " + "\n  ".join(lines)) from exc
