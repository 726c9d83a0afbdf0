"""Model references: the packaged default, HF directories, GGUF caching, refused pickles."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from llmeco.errors import NotFound, UnsafeFile
from llmeco.modeling.load import (
    eos_token_ids,
    load_config,
    load_state_dict,
    load_tokenizer,
    resolve_model,
    select_device,
    select_dtype,
)
from llmeco.settings import Settings


def test_default_is_converted_once_and_reused(cached_home: Path, default_model_dir: Path) -> None:
    stamp = (default_model_dir / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    again = resolve_model("default", Settings(home=cached_home))
    assert time.perf_counter() - start < 1.0
    assert again.path == default_model_dir and again.name == "default"
    assert (default_model_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list(default_model_dir.parent.glob(".convert-*"))  # no half-written leftovers


def test_default_has_chat_template_and_eos(default_model_dir: Path) -> None:
    tok = load_tokenizer(default_model_dir)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert eos_token_ids(default_model_dir, tok) == [2]
    cfg = load_config(default_model_dir)
    assert cfg.model_type == "llama" and cfg.num_hidden_layers == 30
    assert not hasattr(cfg, "quantization_config")


def test_state_dict_loads_from_safetensors(tiny_llama_dir: Path) -> None:
    sd = load_state_dict(tiny_llama_dir, torch.device("cpu"), torch.bfloat16)
    assert sd["model.embed_tokens.weight"].dtype == torch.bfloat16
    assert sd["model.layers.0.self_attn.q_proj.weight"].shape == (64, 64)


def test_hf_directory_is_used_as_is(tiny_llama_dir: Path, tmp_path: Path) -> None:
    src = resolve_model(str(tiny_llama_dir), Settings(home=tmp_path))
    assert src.path == tiny_llama_dir.resolve()
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("name", ["model.bin", "weights.pt", "ckpt.pth", "x.pkl", "y.ckpt"])
def test_pickled_files_are_refused(tmp_path: Path, name: str) -> None:
    f = tmp_path / name
    f.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(UnsafeFile, match="safetensors"):
        resolve_model(str(f), Settings(home=tmp_path))


def test_directory_with_only_pickles_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UnsafeFile):
        resolve_model(str(tmp_path), Settings(home=tmp_path / "home"))


def test_missing_model_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        resolve_model(str(tmp_path / "nope"), Settings(home=tmp_path))
    with pytest.raises(NotFound):
        resolve_model(str(tmp_path), Settings(home=tmp_path))  # no config.json


def test_device_and_dtype_defaults() -> None:
    s = Settings(device="cpu")
    assert select_device(s) == torch.device("cpu")
    assert select_dtype(s, torch.device("cpu")) == torch.float32
    assert select_dtype(s, torch.device("cuda")) == torch.bfloat16
    assert select_dtype(Settings(dtype="bfloat16"), torch.device("cpu")) == torch.bfloat16
