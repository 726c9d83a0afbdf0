"""Building what a run trains: the model (fresh, fine-tuned, LoRA-adapted or with a
classification head), its tokenizer, the objective and the train/validation examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from llmeco.data.clean import normalize_text
from llmeco.data.packed import PackedBlocks, is_packed
from llmeco.data.pipeline import load_records, read_manifest
from llmeco.data.readers import Record, read_file
from llmeco.errors import ConfigError
from llmeco.settings import Settings
from llmeco.training.config import TrainConfig
from llmeco.training.objectives import CausalObjective, Objective, pack_blocks, sft_example


@dataclass
class RunParts:
    """The model, tokenizer and objective of a run, and where they came from."""

    model: Any
    tokenizer: Any
    end_ids: set[int]
    origin: str
    pad_id: int
    objective: Objective
    base_path: Path | None = None
    labels: list[str] = field(default_factory=list)


def pick_device(config: TrainConfig, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available (GPU ``local_rank``); ``cuda`` without one is an error."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda but torch sees no CUDA device; use auto or cpu")
    if config.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def _end_ids(tokenizer: Any, path: Path | None) -> set[int]:
    """Ids that end an assistant turn: eos, ``<|im_end|>`` and the model's eos list."""
    from llmeco.modeling.load import eos_token_ids

    ids = set(eos_token_ids(path, tokenizer)) if path else set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return ids


def _pad_id(tokenizer: Any) -> int:
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ConfigError("the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return int(tokenizer.pad_token_id)


def _read_data_file(path: Path) -> list[Record]:
    """A JSONL/CSV file's records, text normalised like ``prepare`` does (no dedup or
    redaction: the file is taken as its author wrote it)."""
    if not path.is_file():
        raise ConfigError(f"{path} is neither a prepared dataset folder nor a data file")
    records = []
    for record in read_file(path):
        if "text" in record:
            record["text"] = normalize_text(record["text"])
        records.append(record)
    return records


def load_split(config: TrainConfig, split: str) -> list[Record]:
    """Records of ``split``; ``validation`` comes from ``data.validation`` when it is set.

    A validation *file* is read with the dataset readers and normalised like ``prepare``
    does (no dedup or redaction: it is someone's fixed held-out set); a validation *folder*
    is a prepared dataset whose records of both splits are used.

    ``data.dataset`` may itself be a file (``llmeco feedback export`` writes one): all its
    records train, and the only validation set is ``data.validation`` (none without it).
    """
    if split == "validation" and config.data.validation is not None:
        path = Path(config.data.validation)
        if path.is_dir():
            read_manifest(path)
            return load_records(path, "train") + load_records(path, "validation")
        return _read_data_file(path)
    dataset = Path(config.data.dataset)
    if dataset.is_dir():
        records = load_records(dataset, split)
    else:
        records = _read_data_file(dataset) if split == "train" else []
    if config.data.max_records is not None and split == "train":
        records = records[: config.data.max_records]
    return records


def _apply_lora(model: Any, config: TrainConfig, kind: str) -> Any:
    from llmeco.modeling.lora import apply_lora

    assert config.lora is not None
    spec = config.lora
    return apply_lora(
        model,
        r=spec.r,
        alpha=spec.alpha,
        dropout=spec.dropout,
        target_modules=spec.target_modules,
        kind="classify" if kind == "classify" else "causal",
    )


def build_parts(config: TrainConfig, settings: Settings, device: torch.device) -> RunParts:
    """A fresh pretraining model (seeded init), the base to fine-tune, or a classifier.

    Every random initialisation (a fresh model, LoRA matrices, a classification head) is
    seeded with ``config.seed``, so every process of a distributed run builds the same model.
    """
    from transformers import AutoModelForCausalLM

    from llmeco.modeling.load import load_tokenizer, resolve_model
    from llmeco.registry.checkout import resolve_local

    torch.manual_seed(config.seed)
    if config.task in ("sft", "classify") or (config.model.base and not config.model.tokenizer):
        assert config.model.base is not None
        source = resolve_model(config.model.base, settings, resolve_ref=resolve_local)
        tokenizer = load_tokenizer(source.path)
        pad_id = _pad_id(tokenizer)
        if config.task == "classify":
            return _classify_parts(config, source.path, source.origin, tokenizer, pad_id, device)
        if config.task == "sft":
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(source.path), local_files_only=True, dtype=torch.float32
            )
            if config.lora is not None:
                model = _apply_lora(model, config, "causal")
            return RunParts(
                model.to(device),
                tokenizer,
                _end_ids(tokenizer, source.path),
                source.origin,
                pad_id,
                CausalObjective(pad_id),
                source.path,
            )
        origin = f"tokenizer of {source.origin}"
    else:
        assert config.model.tokenizer is not None
        tok_dir = Path(config.model.tokenizer).expanduser()
        if not tok_dir.is_dir():
            raise ConfigError(f"model.tokenizer: {tok_dir} is not a folder")
        tokenizer = load_tokenizer(tok_dir)
        pad_id = _pad_id(tokenizer)
        origin = f"tokenizer {tok_dir.resolve()}"
    scratch = _fresh_llama(config, tokenizer)
    return RunParts(
        scratch.to(device),
        tokenizer,
        _end_ids(tokenizer, None),
        origin,
        pad_id,
        CausalObjective(pad_id),
    )


def _fresh_llama(config: TrainConfig, tokenizer: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    dims = config.model.dims()
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=dims["hidden_size"],
        intermediate_size=dims["intermediate_size"],
        num_hidden_layers=dims["num_layers"],
        num_attention_heads=dims["num_heads"],
        num_key_value_heads=dims["num_kv_heads"],
        max_position_embeddings=config.seq_len,
        rms_norm_eps=1e-5,
        tie_word_embeddings=config.model.tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)


def _classify_parts(
    config: TrainConfig,
    base: Path,
    origin: str,
    tokenizer: Any,
    pad_id: int,
    device: torch.device,
) -> RunParts:
    from llmeco.training.classify import ClassifyObjective, build_classifier, label_names

    labels = label_names(load_split(config, "train"), config.data.labels)
    model = build_classifier(base, labels, pad_id, torch.float32)
    if config.model.freeze_base:
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith("score.")
    elif config.lora is not None:
        model = _apply_lora(model, config, "classify")
    return RunParts(
        model.to(device),
        tokenizer,
        set(),
        origin,
        pad_id,
        ClassifyObjective(pad_id, labels),
        base,
        labels,
    )


def build_examples(config: TrainConfig, parts: RunParts, split: str) -> list[Any]:
    """Examples of one split: packed blocks (pretrain), masked chats (sft) or labelled texts.

    A pretraining ``data.dataset`` made by ``llmeco data pack`` is read block by block from
    its memory-mapped token shards instead of being loaded and tokenized here.
    """
    if config.task == "pretrain" and is_packed(Path(config.data.dataset)):
        blocks = PackedBlocks(Path(config.data.dataset), split, config.seq_len)
        blocks.check_tokenizer(parts.tokenizer)
        if split == "train" and not len(blocks):
            raise ConfigError(f"{config.data.dataset}: fewer train tokens than one block")
        return blocks  # type: ignore[return-value]  # a lazy Sequence of examples
    records = load_split(config, split)
    if not records:
        return []
    if config.task == "pretrain":
        return pack_blocks(records, parts.tokenizer, config.seq_len)
    if config.task == "classify":
        from llmeco.training.classify import classify_examples

        examples = classify_examples(records, parts.tokenizer, parts.labels, config.seq_len)
        if not examples and split == "train":
            raise ConfigError(f"{config.data.dataset}: no labelled records in train")
        return examples
    chats = [r for r in records if "messages" in r]
    if not chats and split == "train":
        raise ConfigError(f"{config.data.dataset}: sft needs chat records (messages) in train")
    built = [
        sft_example(
            r["messages"], parts.tokenizer, parts.end_ids, config.seq_len, tools=r.get("tools")
        )
        for r in chats
    ]
    return [e for e in built if e is not None]
