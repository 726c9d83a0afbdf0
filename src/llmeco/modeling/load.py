"""Model references → local Hugging Face directories, and the pieces the engine loads from them.

A *reference* is what a user types after ``--model``:

``default``
    The packaged SmolLM2-135M-Instruct GGUF, converted once to safetensors.
``path/to/model.gguf`` (or a directory holding exactly one ``.gguf`` and no config.json)
    Converted once to a safetensors directory under ``settings.models_dir``.
``path/to/hf-dir``
    A directory with ``config.json``, ``*.safetensors`` (single or sharded) and a tokenizer;
    used as is.
``NAME@alias`` / ``NAME:version`` (when no such path exists)
    A version in the model registry; every file's sha256 is verified before it is used.
    This module does not know the registry: the caller passes a :data:`RefResolver` (the
    registry's :func:`~llmeco.registry.checkout.resolve_local`), and without one such a
    reference is just a path that does not exist.

Pickled checkpoints (``.bin``, ``.pt`` …) are refused with :class:`~llmeco.errors.UnsafeFile`.
Nothing here ever reaches a model hub: every transformers call gets a local path and
``local_files_only=True``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from rich.console import Console

from llmeco.errors import ConfigError, NotFound
from llmeco.modeling import gguf
from llmeco.plugins import get_registry
from llmeco.registry import model_files as files
from llmeco.settings import Settings

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

#: The reference that names the packaged default chat model.
DEFAULT_REF = "default"


@dataclass(frozen=True)
class ModelSource:
    """A resolved model reference: a local HF directory ready to load."""

    #: Served name, e.g. ``"default"`` or the directory / file stem.
    name: str
    #: Local HF directory with config.json, safetensors weights and tokenizer files.
    path: Path
    #: What the reference pointed at (the GGUF file or the directory), for status pages.
    origin: str
    #: Registry version served (``"support:3"``); empty for references outside the registry.
    version: str = ""


#: Resolves a model-registry reference (``NAME@alias`` / ``NAME:version``) for
#: :func:`resolve_model`: ``(exact version "NAME:VERSION", local model directory with every
#: file verified)``, or None when ``ref`` is not spelled like a registry reference. It may
#: raise NotFound (unknown model, alias or version) or UnsafeFile (a file fails its check).
RefResolver = Callable[[str, Settings], tuple[str, Path] | None]


def resolve_model(
    ref: str,
    settings: Settings,
    console: Console | None = None,
    *,
    resolve_ref: RefResolver | None = None,
) -> ModelSource:
    """Turn a model reference into a local safetensors directory, converting a GGUF once.

    The first resolve of a GGUF file takes seconds (with a status line on stderr); later
    ones only stat the file. See the module docstring for the accepted references; registry
    references are resolved by ``resolve_ref`` (callers that take them pass
    :func:`llmeco.registry.checkout.resolve_local`) when no such path exists.

    Raises:
        NotFound: the path does not exist or holds no weights.
        UnsafeFile: the reference is (or only has) a pickled checkpoint.
        ConfigError: a directory without config.json or tokenizer, or an unreadable GGUF.
    """
    target = Path(ref).expanduser()
    if files.is_pickle_path(target):
        raise files.refuse_pickle(target)
    for loader in get_registry().model_loaders():
        source = loader.resolve(ref, settings, console)
        if source is not None:
            return cast(ModelSource, source)
    if resolve_ref is not None:
        registered = resolve_ref(ref, settings)
        if registered is not None:
            version, path = registered
            name = version.rpartition(":")[0]
            return ModelSource(name, path, f"registry {version} ({ref})", version)
    raise NotFound(
        f"Model {ref!r} not found: it is neither 'default' nor an existing path. "
        "llmeco never downloads models; pass a local directory with config.json and "
        "safetensors weights, or a .gguf file."
    )


def resolve_default(ref: str, settings: Settings, console: Console | None) -> ModelSource | None:
    """``default``: the packaged SmolLM2 GGUF, converted once to safetensors."""
    if ref != DEFAULT_REF:
        return None
    path = gguf.ensure_converted(gguf.default_gguf_path(), settings.models_dir, console)
    return ModelSource(DEFAULT_REF, path, str(gguf.default_gguf_path()))


def resolve_local(ref: str, settings: Settings, console: Console | None) -> ModelSource | None:
    """An existing path: a ``.gguf`` file (converted once) or a model directory."""
    target = Path(ref).expanduser()
    if not target.exists():
        return None
    if target.is_file():
        if target.suffix.lower() != ".gguf":
            raise ConfigError(
                f"{target} is not a model llmeco can load: pass a .gguf file or the "
                "directory that holds config.json and the *.safetensors weights."
            )
        path = gguf.ensure_converted(target, settings.models_dir, console)
        return ModelSource(target.stem, path, str(target.resolve()))
    return _resolve_dir(target, settings, console)


def _resolve_dir(directory: Path, settings: Settings, console: Console | None) -> ModelSource:
    """A directory reference: an HF checkpoint as is, or a lone GGUF file inside it."""
    name = directory.resolve().name
    if not (directory / "config.json").is_file():
        ggufs = sorted(directory.glob("*.gguf"))
        if len(ggufs) == 1:
            path = gguf.ensure_converted(ggufs[0], settings.models_dir, console)
            return ModelSource(name, path, str(ggufs[0].resolve()))
        files.require_safetensors(directory)  # explains pickles / missing weights first
        raise ConfigError(f"{directory} has weights but no config.json; copy the whole model.")
    files.require_safetensors(directory)
    if not files.has_tokenizer(directory):
        raise ConfigError(
            f"{directory} has no tokenizer (tokenizer.json or tokenizer_config.json); save "
            "one there with `tokenizer.save_pretrained(dir)`."
        )
    return ModelSource(name, directory.resolve(), str(directory.resolve()))


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``path`` (with its chat template), read from local files only."""
    from transformers import AutoTokenizer

    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
        str(path), local_files_only=True
    )
    return tokenizer


def load_config(path: Path) -> PretrainedConfig:
    """The model configuration (``config.json``) in ``path``, read from local files only."""
    from transformers import AutoConfig

    config: PretrainedConfig = AutoConfig.from_pretrained(str(path), local_files_only=True)
    return config


def load_state_dict(
    path: Path, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors checkpoint in ``path``, on ``device``.

    Floating-point tensors are cast to ``dtype``; integer ones keep theirs. Sharded
    checkpoints are read through their index. Keys are as stored: with tied embeddings
    (``config.tie_word_embeddings``) there is usually no ``lm_head.weight``.

    Raises:
        UnsafeFile: the directory only has pickled weights.
        NotFound: it has no weights.
    """
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for file in files.require_safetensors(path):
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor: torch.Tensor = f.get_tensor(key)
                target = dtype if tensor.is_floating_point() else tensor.dtype
                state[key] = tensor.to(device=device, dtype=target)
    return state


def eos_token_ids(path: Path, tokenizer: Any) -> list[int]:
    """Token ids that end a generation: generation_config.json's eos ids plus the tokenizer's.

    Chat models often stop on several ids (e.g. ``<|im_end|>`` and ``<|endoftext|>``); the
    generation config lists them, and the tokenizer's own eos is added if it is missing.
    Falls back to config.json's ``eos_token_id`` when there is no generation config.
    Returned sorted and without duplicates.
    """
    ids: list[int] = []
    for name in ("generation_config.json", "config.json"):
        file = path / name
        if file.is_file():
            value = json.loads(file.read_text()).get("eos_token_id")
            ids.extend(_as_id_list(value))
            break
    ids.extend(_as_id_list(getattr(tokenizer, "eos_token_id", None)))
    return sorted(set(ids))


def _as_id_list(value: object) -> list[int]:
    """``eos_token_id`` may be absent, one int, or a list of ints."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return []


def select_device(settings: Settings) -> torch.device:
    """The device models run on: ``auto`` is CUDA when available, else CPU.

    Raises:
        ConfigError: ``LLMECO_DEVICE=cuda`` on a machine without a usable GPU.
    """
    if settings.device == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if settings.device == "cuda":
        raise ConfigError(
            "LLMECO_DEVICE=cuda but torch sees no CUDA device (torch "
            f"{torch.__version__}); set LLMECO_DEVICE=auto or cpu."
        )
    return torch.device("cpu")


_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def select_dtype(settings: Settings, device: torch.device) -> torch.dtype:
    """Weight dtype: ``auto`` is bfloat16 on CUDA (float16 where bf16 is unsupported) and
    float32 on CPU, where half precision is slower and less accurate — except with int8 or
    int4 quantization, whose CPU kernels take bfloat16 activations."""
    if settings.dtype != "auto":
        return _DTYPES[settings.dtype]
    if settings.quantization_for(device.type) in ("int8", "int4") and device.type == "cpu":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
