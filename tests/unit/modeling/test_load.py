"""Model references: the packaged default, HF directories, refused pickles, loading pieces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from llmeco.errors import ConfigError, NotFound, UnsafeFile
from llmeco.modeling import gguf
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


def _no_conversion(*_args: object) -> None:
    raise AssertionError("the GGUF was converted again")


def test_default_is_converted_once_and_reused(
    cached_home: Path, default_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = (default_model_dir / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(gguf, "write_hf_dir", _no_conversion)
    again = resolve_model("default", Settings(home=cached_home))  # no conversion (patched)
    assert again.path == default_model_dir and again.name == "default"
    assert again.origin.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (default_model_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list(default_model_dir.parent.glob(".*.tmp-*"))  # no half-written leftovers


def test_default_has_chat_template_and_eos(default_model_dir: Path) -> None:
    tok = load_tokenizer(default_model_dir)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert tok.eos_token == "<|im_end|>"
    assert eos_token_ids(default_model_dir, tok) == [2]
    assert (
        json.loads((default_model_dir / "generation_config.json").read_text())["eos_token_id"] == 2
    )
    text: Any = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    cfg = load_config(default_model_dir)
    assert cfg.model_type == "llama" and cfg.num_hidden_layers == 30
    assert cfg.tie_word_embeddings and cfg.vocab_size == len(tok) == 49152
    assert not hasattr(cfg, "quantization_config")
    assert tok.model_max_length == cfg.max_position_embeddings == 8192


def test_default_weights_are_float32_and_tied(default_model_dir: Path) -> None:
    sd = load_state_dict(default_model_dir, torch.device("cpu"), torch.float32)
    assert len(sd) == 272 and "lm_head.weight" not in sd  # tied to the embeddings
    assert sd["model.embed_tokens.weight"].shape == (49152, 576)
    assert sd["model.layers.29.self_attn.k_proj.weight"].shape == (192, 576)  # 3 KV heads × 64
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in sd.values())


@pytest.mark.slow
def test_converted_default_answers_like_smollm2(default_model_dir: Path) -> None:
    """The conversion is faithful: transformers' greedy answer from our directory is right."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(default_model_dir)
    model = AutoModelForCausalLM.from_pretrained(default_model_dir, local_files_only=True)
    ids: Any = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


def test_state_dict_loads_from_safetensors(tiny_llama_dir: Path) -> None:
    sd = load_state_dict(tiny_llama_dir, torch.device("cpu"), torch.bfloat16)
    assert sd["model.embed_tokens.weight"].dtype == torch.bfloat16
    assert sd["model.embed_tokens.weight"].shape == (49152, 64)
    assert sd["model.layers.0.self_attn.q_proj.weight"].shape == (64, 64)
    assert sd["model.layers.1.self_attn.k_proj.weight"].shape == (32, 64)  # 2 KV heads × 16
    assert sd["model.layers.1.mlp.down_proj.weight"].shape == (64, 128)
    assert sd["lm_head.weight"].shape == (49152, 64)
    assert {k.split(".")[2] for k in sd if k.startswith("model.layers.")} == {"0", "1"}


def test_sharded_checkpoint_loads_through_its_index(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, local_files_only=True)
    model.save_pretrained(tmp_path, max_shard_size="4MB")
    load_tokenizer(tiny_llama_dir).save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    assert resolve_model(str(tmp_path), Settings(home=tmp_path / "home")).path == tmp_path
    sharded = load_state_dict(tmp_path, torch.device("cpu"), torch.float32)
    whole = load_state_dict(tiny_llama_dir, torch.device("cpu"), torch.float32)
    assert sharded.keys() == whole.keys()
    assert all(torch.equal(sharded[k], whole[k]) for k in whole)

    next(tmp_path.glob("model-00001-*.safetensors")).unlink()
    with pytest.raises(NotFound, match="shards"):
        load_state_dict(tmp_path, torch.device("cpu"), torch.float32)


def test_hf_directory_is_used_as_is(tiny_llama_dir: Path, tmp_path: Path) -> None:
    src = resolve_model(str(tiny_llama_dir), Settings(home=tmp_path))
    assert src.path == tiny_llama_dir.resolve() and src.name == tiny_llama_dir.name
    assert src.origin == str(tiny_llama_dir.resolve())
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("name", ["model.bin", "weights.pt", "ckpt.pth", "x.pkl", "y.ckpt"])
def test_pickled_files_are_refused(tmp_path: Path, name: str) -> None:
    f = tmp_path / name
    f.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(UnsafeFile, match="safetensors"):
        resolve_model(str(f), Settings(home=tmp_path))
    with pytest.raises(UnsafeFile):  # refused by name, before looking at the disk
        resolve_model(str(tmp_path / "missing" / name), Settings(home=tmp_path))


def test_directory_with_only_pickles_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UnsafeFile, match=r"pytorch_model\.bin.*safetensors"):
        resolve_model(str(tmp_path), Settings(home=tmp_path / "home"))
    with pytest.raises(UnsafeFile):
        load_state_dict(tmp_path, torch.device("cpu"), torch.float32)
    (tmp_path / "config.json").unlink()  # no config either: still the pickle explanation
    with pytest.raises(UnsafeFile):
        resolve_model(str(tmp_path), Settings(home=tmp_path / "home"))


def test_missing_model_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        resolve_model(str(tmp_path / "nope"), Settings(home=tmp_path))
    with pytest.raises(NotFound, match="never downloads"):
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", Settings(home=tmp_path))
    with pytest.raises(NotFound, match="no model weights"):
        resolve_model(str(tmp_path), Settings(home=tmp_path))  # an empty directory


def test_registry_references_go_through_the_injected_resolver(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """``load`` does not know the registry: the caller hands it a resolver for ``NAME@alias`` /
    ``NAME:N``; without one such a reference is a path that does not exist."""
    settings = Settings(home=tmp_path)
    asked: list[str] = []

    def resolver(ref: str, given: Settings) -> tuple[str, Path] | None:
        assert given is settings
        asked.append(ref)
        return ("sup:3", tiny_llama_dir) if ref == "sup@production" else None

    src = resolve_model("sup@production", settings, resolve_ref=resolver)
    assert (src.name, src.path, src.version) == ("sup", tiny_llama_dir, "sup:3")
    assert src.origin == "registry sup:3 (sup@production)"
    with pytest.raises(NotFound, match="neither 'default' nor an existing path"):
        resolve_model("some/dir", settings, resolve_ref=resolver)
    with pytest.raises(NotFound, match="neither 'default' nor an existing path"):
        resolve_model("sup@production", settings)
    # an existing path is never handed to the resolver
    assert resolve_model(str(tiny_llama_dir), settings, resolve_ref=resolver).version == ""
    assert asked == ["sup@production", "some/dir"]


def test_incomplete_directories_say_what_is_missing(tiny_llama_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes((tiny_llama_dir / "config.json").read_bytes())
    (tmp_path / "model.safetensors").write_bytes(
        (tiny_llama_dir / "model.safetensors").read_bytes()
    )
    with pytest.raises(ConfigError, match="tokenizer"):
        resolve_model(str(tmp_path), Settings(home=tmp_path / "home"))
    (tmp_path / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"config\.json"):
        resolve_model(str(tmp_path), Settings(home=tmp_path / "home"))
    with pytest.raises(ConfigError, match=r"\.gguf file"):  # a lone weights file is not a model
        resolve_model(str(tmp_path / "model.safetensors"), Settings(home=tmp_path / "home"))


def test_eos_ids_union_generation_config_and_tokenizer(tmp_path: Path) -> None:
    class Tok:
        eos_token_id = 7

    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 9}))
    assert eos_token_ids(tmp_path, Tok()) == [7, 9]  # no generation config: config.json's
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 7, 3]}))
    assert eos_token_ids(tmp_path, Tok()) == [2, 3, 7]
    Tok.eos_token_id = None  # type: ignore[assignment]
    (tmp_path / "generation_config.json").write_text("{}")
    assert eos_token_ids(tmp_path, Tok()) == []


def test_device_and_dtype_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert select_device(Settings(device="cpu")) == cpu
    assert select_dtype(Settings(), cpu) == torch.float32
    assert select_dtype(Settings(dtype="bfloat16"), cpu) == torch.bfloat16
    assert select_dtype(Settings(dtype="float16"), cuda) == torch.float16

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device(Settings(device="auto")) == cpu
    with pytest.raises(ConfigError, match="LLMECO_DEVICE"):
        select_device(Settings(device="cuda"))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device(Settings(device="auto")) == cuda
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert select_dtype(Settings(), cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert select_dtype(Settings(), cuda) == torch.float16
