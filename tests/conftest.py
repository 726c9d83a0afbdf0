"""Shared fixtures: the packaged default model (converted once) and a tiny random Llama."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llmeco.modeling.load import load_tokenizer, resolve_model
from llmeco.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cached_home() -> Path:
    """An LLMECO_HOME kept between local runs so the GGUF is converted once per checkout."""
    home = ROOT / ".pytest_cache" / "llmeco-home"
    home.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope="session")
def default_model_dir(cached_home: Path) -> Path:
    """The packaged SmolLM2-135M-Instruct as a safetensors directory."""
    return resolve_model("default", Settings(home=cached_home)).path


@pytest.fixture(scope="session")
def tiny_llama_dir(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random-weight Llama sharing SmolLM2's tokenizer and chat template."""
    tokenizer = load_tokenizer(default_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger logits than the default init: fewer near-ties
        model.lm_head.weight.normal_(0.0, 0.5)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
