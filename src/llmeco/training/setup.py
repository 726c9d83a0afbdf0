"""Building what a run trains: the model, its tokenizer and the train/validation examples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmeco.data.pipeline import load_records
from llmeco.errors import ConfigError
from llmeco.settings import Settings
from llmeco.training.config import TrainConfig
from llmeco.training.objectives import Example, pack_blocks, sft_example


@dataclass
class RunParts:
    """The model, tokenizer and end-of-turn ids of a run, and where they came from."""

    model: Any
    tokenizer: Any
    end_ids: set[int]
    origin: str


def pick_device(config: TrainConfig) -> torch.device:
    """``auto`` → CUDA when available; ``cuda`` without one is a ConfigError."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda but torch sees no CUDA device; use auto or cpu")
    if config.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


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


def build_parts(config: TrainConfig, settings: Settings, device: torch.device) -> RunParts:
    """A fresh pretraining model (seeded init) or the base model to fine-tune."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from llmeco.modeling.load import load_tokenizer, resolve_model

    if config.task == "sft" or (config.model.base and not config.model.tokenizer):
        assert config.model.base is not None
        source = resolve_model(config.model.base, settings)
        tokenizer = load_tokenizer(source.path)
        if config.task == "sft":
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(source.path), local_files_only=True, dtype=torch.float32
            )
            return RunParts(
                model.to(device), tokenizer, _end_ids(tokenizer, source.path), source.origin
            )
        origin = f"tokenizer of {source.origin}"
    else:
        assert config.model.tokenizer is not None
        tok_dir = Path(config.model.tokenizer).expanduser()
        if not tok_dir.is_dir():
            raise ConfigError(f"model.tokenizer: {tok_dir} is not a folder")
        tokenizer = load_tokenizer(tok_dir)
        origin = f"tokenizer {tok_dir.resolve()}"
    dims = config.model.dims()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
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
    torch.manual_seed(config.seed)
    scratch: Any = LlamaForCausalLM(llama)
    return RunParts(scratch.to(device), tokenizer, _end_ids(tokenizer, None), origin)


def build_examples(config: TrainConfig, parts: RunParts, split: str) -> list[Example]:
    """Training examples of one split: packed blocks (pretrain) or masked chats (sft)."""
    records = load_records(config.data.dataset, split)
    if config.data.max_records is not None:
        records = records[: config.data.max_records]
    if not records:
        return []
    if config.task == "pretrain":
        return pack_blocks(records, parts.tokenizer, config.seq_len)
    chats = [r["messages"] for r in records if "messages" in r]
    if not chats and split == "train":
        raise ConfigError(f"{config.data.dataset}: sft needs chat records (messages) in train")
    examples = [sft_example(m, parts.tokenizer, parts.end_ids, config.seq_len) for m in chats]
    return [e for e in examples if e is not None]
