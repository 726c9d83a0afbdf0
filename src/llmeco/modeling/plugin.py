"""The built-in model loaders, registered through the same hook as a plugin's.

A plugin's loaders are asked first (so one can claim references like ``s3://…``); these two
come last: ``default`` (the packaged chat model) and any existing local path.
"""

from __future__ import annotations

from llmeco.modeling import load
from llmeco.plugins import ModelLoaderSpec, hookimpl


@hookimpl
def register_model_loaders() -> list[ModelLoaderSpec]:
    """``default`` and local paths (HF directories with safetensors, GGUF files)."""
    return [
        ModelLoaderSpec("default", load.resolve_default, "the packaged SmolLM2-135M GGUF"),
        ModelLoaderSpec(
            "local", load.resolve_local, "a local HF safetensors directory or .gguf file"
        ),
    ]
