"""What is on disk: which files hold weights, and which of them we refuse to read.

llmeco only ever reads weights from safetensors files. Pickled checkpoints
(``pytorch_model.bin``, ``*.pt``, ``*.ckpt`` …) can run arbitrary code when loaded, so
they are refused with :class:`~llmeco.errors.UnsafeFile` and a message saying how to
convert them. This module has no torch or transformers import: it only looks at paths.

It sits in the registry package, the lower of its two users: the registry applies these
rules to every directory it registers (:mod:`llmeco.registry.scan`), and
:mod:`llmeco.modeling.load` applies them to every directory it loads.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmeco.errors import NotFound, UnsafeFile

#: Suffixes of pickle-based checkpoint files; loading one may execute code.
PICKLE_SUFFIXES: frozenset[str] = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})

#: Index file of a sharded safetensors checkpoint (maps tensor name → shard file).
SAFETENSORS_INDEX = "model.safetensors.index.json"

#: Files any one of which means a directory carries a tokenizer.
TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
)

_CONVERT_HINT = (
    "llmeco only loads safetensors, because unpickling a checkpoint can run arbitrary code. "
    "If you trust the file, convert it once in Python: "
    "`AutoModelForCausalLM.from_pretrained(src).save_pretrained(dst)` "
    "(safetensors is the default), then pass the new directory."
)


def is_pickle_path(path: Path) -> bool:
    """True when the file name says it is a pickled checkpoint (``.bin``, ``.pt`` …)."""
    return path.suffix.lower() in PICKLE_SUFFIXES


def refuse_pickle(path: Path) -> UnsafeFile:
    """The error for a pickled checkpoint: what was refused, why, and what to do instead."""
    return UnsafeFile(f"Refusing to load pickled checkpoint {path}. {_CONVERT_HINT}")


def safetensors_files(directory: Path) -> list[Path]:
    """Weight files of a Hugging Face directory, in load order.

    A sharded checkpoint is read through its ``model.safetensors.index.json`` (every shard
    it names must exist); otherwise ``model.safetensors``, otherwise any ``*.safetensors``.
    Returns ``[]`` when the directory has none.

    Raises:
        NotFound: the index names a shard that is missing.
    """
    index = directory / SAFETENSORS_INDEX
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        shards = [directory / name for name in sorted(set(weight_map.values()))]
        missing = [s.name for s in shards if not s.is_file()]
        if missing:
            raise NotFound(
                f"{index} names shards that are not there: {', '.join(missing)}. "
                "Copy the whole checkpoint directory."
            )
        return shards
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    return sorted(p for p in directory.glob("*.safetensors") if p.is_file())


def pickle_files(directory: Path) -> list[Path]:
    """Pickled checkpoint files directly inside ``directory`` (which we will not read)."""
    return sorted(p for p in directory.iterdir() if p.is_file() and is_pickle_path(p))


def require_safetensors(directory: Path) -> list[Path]:
    """Safetensors weight files of ``directory``, or the error that explains why there are none.

    Raises:
        UnsafeFile: the directory only has pickled weights.
        NotFound: it has no weights at all.
    """
    files = safetensors_files(directory)
    if files:
        return files
    pickles = pickle_files(directory)
    if pickles:
        names = ", ".join(p.name for p in pickles)
        raise UnsafeFile(
            f"{directory} only has pickled weights ({names}) and no *.safetensors. {_CONVERT_HINT}"
        )
    raise NotFound(
        f"{directory} has no model weights: expected model.safetensors, "
        f"{SAFETENSORS_INDEX} with its shards, or a .gguf file."
    )


def has_tokenizer(directory: Path) -> bool:
    """True when ``directory`` carries tokenizer files transformers can load."""
    return any((directory / name).is_file() for name in TOKENIZER_FILES)
